"""World-model training: the debug preset end to end, exact resume, the 2-process DDP path, bundles."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest
import torch

import fog_envs  # noqa: F401
from fog_envs.data.collect import CollectConfig, collect
from fog_envs.wm import stages as st
from fog_envs.wm.bundle import BundleError, weights_fingerprint
from fog_envs.wm.edm import EDMConfig
from fog_envs.wm.model import WorldModel
from fog_envs.wm.train import WMTrainConfig, train_world_model

ROOT = Path(__file__).resolve().parent.parent


def _weights(bundle: Path) -> dict[str, torch.Tensor]:
    from safetensors.torch import load_file

    return load_file(str(bundle / "weights.safetensors"))


def test_debug_training_writes_a_loadable_bundle(debug_bundle):
    card = json.loads((debug_bundle / "card.json").read_text())
    assert card["task"] == "pusht" and len(card["dataset_fingerprint"]) == 64
    assert set(card["steps"]) == {"autoencoder", "denoiser", "reward", "rssm", "probe"}
    for stage, metrics in card["final_metrics"].items():
        assert all(np.isfinite(v) for v in metrics.values()), stage
    model = WorldModel.load(debug_bundle)
    assert model.start_latents.shape[0] > 0 and model.start_latents.shape[1] == model.context_len
    assert (debug_bundle.parent / "tb").is_dir()


def test_update_card_sets_entries_and_keeps_the_rest(debug_bundle, tmp_path):
    import shutil

    from fog_envs.wm.bundle import update_card

    copy = tmp_path / "copy"
    shutil.copytree(debug_bundle, copy)
    before = json.loads((copy / "card.json").read_text())
    card = update_card(copy, fidelity={"nfe": 2}, note="x")
    assert card == {**before, "fidelity": {"nfe": 2}, "note": "x"}
    assert json.loads((copy / "card.json").read_text()) == card and not (copy / "card.json.tmp").exists()
    assert WorldModel.load(copy).card["fidelity"] == {"nfe": 2}
    with pytest.raises(BundleError, match="no world-model bundle"):
        update_card(tmp_path / "missing", note="x")


def test_init_from_a_bundle_reuses_the_named_stages(tiny_dataset, debug_bundle, tmp_path):
    """``init_from`` + ``reuse``: those stages' weights are the source's, the others are trained anew with
    the source's model configuration (and the motion-weight, contact-sampling and denoiser-size overrides); the
    card says what was reused."""
    reuse = ("autoencoder", "reward", "rssm", "probe")
    bundle = train_world_model(WMTrainConfig(task="pusht", data=str(tiny_dataset), out=str(tmp_path / "v2"),
                                             preset="debug", threads=2, init_from=str(debug_bundle), reuse=reuse,
                                             motion_weight=2.0, denoiser_channels=24, denoiser_blocks=2, seed=1,
                                             contact_sampling=3.0),
                               progress_bar=False)
    old, new = _weights(debug_bundle), _weights(bundle)
    for key in old:
        stage = key.split(".")[0]
        if stage in reuse:
            assert torch.equal(old[key], new[key]), key
    assert any(not torch.equal(old[k], new[k]) for k in old if k.startswith("denoiser."))
    model = WorldModel.load(bundle)
    assert model.config.edm.motion_weight == 2.0 and model.config.edm.contact_sampling == 3.0
    assert (model.config.denoiser.channels, model.config.denoiser.num_blocks) == (24, 2)
    assert model.config.autoencoder == WorldModel.load(debug_bundle).config.autoencoder
    card = json.loads((bundle / "card.json").read_text())
    src_steps = json.loads((debug_bundle / "card.json").read_text())["steps"]
    assert set(card["reused"]) == set(reuse) and card["steps"]["rssm"] == src_steps["rssm"]
    assert card["reused"]["rssm"]["from"] == str(debug_bundle)
    source = WorldModel.load(debug_bundle)
    for stage in reuse:  # the card names the exact weights taken, whatever later happens to the source
        assert card["reused"][stage]["weights_sha256"] == weights_fingerprint(getattr(source, stage).state_dict())
    assert len({card["reused"][stage]["weights_sha256"] for stage in reuse}) == len(reuse)


def test_weights_fingerprint_names_exact_weights():
    """Equal for equal weights (whatever the insertion order), different after a one-ulp change, a renamed
    tensor or another dtype."""
    state = {"b": torch.arange(6.0).reshape(2, 3), "a": torch.tensor([0.5, -1.0])}
    base = weights_fingerprint(state)
    assert len(base) == 64 and base == weights_fingerprint({"a": state["a"].clone(), "b": state["b"].clone()})
    nudged = dict(state, a=torch.nextafter(state["a"], torch.full_like(state["a"], 2.0)))
    assert weights_fingerprint(nudged) != base
    assert weights_fingerprint({"c": state["b"], "a": state["a"]}) != base
    assert weights_fingerprint(dict(state, a=state["a"].double())) != base


def test_warm_start_self_forcing_and_state_head(tiny_dataset, debug_bundle, tmp_path, monkeypatch):
    """``warm_start``: the denoiser starts from the source's weights (its first loss equals the source's on the
    same batch) and is then trained with self-generated context; the RSSM gets a state head; the card and
    the config record both."""
    from fog_envs.wm import stages

    seen = []
    real_rollout = stages.rollout_context

    def spy(model, latents, actions, generated, context_len, cfg, generator=None):
        seen.append((latents.shape[1], int(generated.max()), context_len))
        return real_rollout(model, latents, actions, generated, context_len, cfg, generator)

    monkeypatch.setattr(stages, "rollout_context", spy)
    bundle = train_world_model(WMTrainConfig(task="pusht", data=str(tiny_dataset), out=str(tmp_path / "ws"),
                                             preset="debug", threads=2, init_from=str(debug_bundle),
                                             reuse=("autoencoder", "reward", "probe"), warm_start=("denoiser",),
                                             rollout_prob=1.0, rollout_steps=3, rssm_state_weight=10.0,
                                             predict_delta=0.4, context_noise_prob=0.5, context_sigma_max=0.2,
                                             start_sigma=0.5, start_prob=0.5),
                               progress_bar=False)
    model = WorldModel.load(bundle)
    assert model.config.edm.rollout_prob == 1.0 and model.config.edm.rollout_steps == 3
    assert model.config.edm.predict_delta and model.config.edm.delta_scale == 0.4
    assert (model.config.edm.context_noise_prob, model.config.edm.context_sigma_max) == (0.5, 0.2)
    assert (model.config.edm.start_sigma, model.config.edm.start_prob) == (0.5, 0.5)
    assert model.config.rssm.state_dim == 6 and model.config.rssm.state_weight == 10.0
    assert model.rssm.state(torch.zeros(2, model.local_state_dim)).shape == (2, 6)
    # every batch generated context: windows of L + 3 + 1, at most 3 generated, the context length L
    L = model.context_len
    assert seen and all(t == L + 4 and 1 <= k <= 3 and c == L for t, k, c in seen)
    card = json.loads((bundle / "card.json").read_text())
    assert card["warm_start"]["denoiser"]["from"] == str(debug_bundle)
    assert "rssm/state_mse_prior" in card["final_metrics"]["rssm"]
    old, new = _weights(debug_bundle), _weights(bundle)
    assert any(not torch.equal(old[k], new[k]) for k in old if k.startswith("denoiser."))
    # warm-started, not trained anew: the fine-tuned denoiser is closer to the source than a fresh one is
    fresh = _weights(train_world_model(WMTrainConfig(
        task="pusht", data=str(tiny_dataset), out=str(tmp_path / "fresh"), preset="debug", threads=2,
        init_from=str(debug_bundle), reuse=("autoencoder", "reward", "probe", "rssm"), seed=5), progress_bar=False))
    dist = lambda w: sum(float((w[k] - old[k]).pow(2).sum()) for k in old if k.startswith("denoiser."))  # noqa: E731
    assert dist(new) < 0.5 * dist(fresh)


def test_reuse_from_composes_stages_of_two_bundles(tiny_dataset, debug_bundle, tmp_path):
    """``reuse_from rssm=B``: the RSSM's weights and config come from B (here with a state head), everything
    else from ``init_from``; the card names both sources; a bundle on another autoencoder is refused."""
    common = dict(task="pusht", data=str(tiny_dataset), preset="debug", threads=2)
    other = train_world_model(WMTrainConfig(**common, out=str(tmp_path / "b"), init_from=str(debug_bundle),
                                            reuse=("autoencoder", "denoiser", "reward", "probe"),
                                            rssm_state_weight=5.0, seed=2), progress_bar=False)
    composed = train_world_model(WMTrainConfig(**common, out=str(tmp_path / "c"), init_from=str(debug_bundle),
                                               reuse=("autoencoder", "denoiser", "reward", "probe"),
                                               reuse_from=(f"rssm={other}",)), progress_bar=False)
    w_src, w_other, w_new = _weights(debug_bundle), _weights(other), _weights(composed)
    for key, value in w_new.items():
        if key.startswith("start."):
            continue
        expected = w_other if key.startswith("rssm.") else w_src
        assert torch.equal(value, expected[key]), key
    model = WorldModel.load(composed)
    assert model.config.rssm.state_dim == 6 and model.config.rssm.state_weight == 5.0
    card = json.loads((composed / "card.json").read_text())
    assert card["reused"]["rssm"]["from"] == str(other) and card["reused"]["denoiser"]["from"] == str(debug_bundle)
    stranger = train_world_model(WMTrainConfig(**common, out=str(tmp_path / "s"), seed=9), progress_bar=False)
    with pytest.raises(ValueError, match="different autoencoder"):
        train_world_model(WMTrainConfig(**common, out=str(tmp_path / "x"), init_from=str(debug_bundle),
                                        reuse_from=(f"rssm={stranger}",)), progress_bar=False)
    # the probe reads frames, not latents: it may come from a bundle with another autoencoder
    probed = train_world_model(WMTrainConfig(**common, out=str(tmp_path / "p"), init_from=str(debug_bundle),
                                             reuse=("autoencoder", "denoiser", "reward", "rssm"),
                                             reuse_from=(f"probe={stranger}",)), progress_bar=False)
    w_probed, w_stranger = _weights(probed), _weights(stranger)
    for key, value in w_probed.items():
        if not key.startswith("start."):
            assert torch.equal(value, (w_stranger if key.startswith("probe.") else w_src)[key]), key
    for bad, words in (("rssm", "expected STAGE=BUNDLE"), (f"autoencoder={other}", "cannot come from another")):
        with pytest.raises(ValueError, match=words):
            train_world_model(WMTrainConfig(**common, out=str(tmp_path / "y"), init_from=str(debug_bundle),
                                            reuse_from=(bad,)), progress_bar=False)
    with pytest.raises(ValueError, match="reuse_from needs init_from"):
        train_world_model(WMTrainConfig(**common, out=str(tmp_path / "z"), reuse_from=(f"rssm={other}",)),
                          progress_bar=False)


def test_init_from_errors_name_the_problem(tiny_dataset, debug_bundle, tmp_path):
    with pytest.raises(ValueError, match="unknown stages"):
        train_world_model(WMTrainConfig(task="pusht", data=str(tiny_dataset), out=str(tmp_path / "a"), preset="debug",
                                        init_from=str(debug_bundle), reuse=("encoder",)), progress_bar=False)
    with pytest.raises(ValueError, match="both reused and warm-started"):
        train_world_model(WMTrainConfig(task="pusht", data=str(tiny_dataset), out=str(tmp_path / "c"), preset="debug",
                                        init_from=str(debug_bundle), reuse=("denoiser",), warm_start=("denoiser",)),
                          progress_bar=False)
    with pytest.raises(ValueError, match="warm_start needs init_from"):
        train_world_model(WMTrainConfig(task="pusht", data=str(tiny_dataset), out=str(tmp_path / "d"), preset="debug",
                                        warm_start=("denoiser",)), progress_bar=False)
    with pytest.raises(ValueError, match="autoencoder cannot be warm-started"):
        train_world_model(WMTrainConfig(task="pusht", data=str(tiny_dataset), out=str(tmp_path / "e"), preset="debug",
                                        init_from=str(debug_bundle), reuse=(), warm_start=("autoencoder",)),
                          progress_bar=False)
    with pytest.raises(ValueError, match=r"autoencoder is trained anew in this run, so its latents are not the "
                                         r"ones \['denoiser'\] were trained on"):
        train_world_model(WMTrainConfig(task="pusht", data=str(tiny_dataset), out=str(tmp_path / "k"), preset="debug",
                                        init_from=str(debug_bundle), reuse=("denoiser", "probe")), progress_bar=False)
    with pytest.raises(ValueError, match="rssm_state_weight must be >= 0"):
        train_world_model(WMTrainConfig(task="pusht", data=str(tiny_dataset), out=str(tmp_path / "f"), preset="debug",
                                        rssm_state_weight=-1.0), progress_bar=False)
    with pytest.raises(ValueError, match="need a denoiser trained anew"):
        train_world_model(WMTrainConfig(task="pusht", data=str(tiny_dataset), out=str(tmp_path / "h"), preset="debug",
                                        init_from=str(debug_bundle), reuse=("autoencoder", "denoiser"),
                                        denoiser_channels=8), progress_bar=False)
    with pytest.raises(ValueError, match="a reused denoiser keeps its own parameterisation"):
        train_world_model(WMTrainConfig(task="pusht", data=str(tiny_dataset), out=str(tmp_path / "i"), preset="debug",
                                        init_from=str(debug_bundle), reuse=("autoencoder", "denoiser"),
                                        predict_delta=0.4), progress_bar=False)
    with pytest.raises(ValueError, match="start_prob trains the denoiser"):
        train_world_model(WMTrainConfig(task="pusht", data=str(tiny_dataset), out=str(tmp_path / "j"), preset="debug",
                                        init_from=str(debug_bundle), reuse=("autoencoder", "denoiser"),
                                        start_sigma=0.5, start_prob=0.5), progress_bar=False)
    with pytest.raises(ValueError, match="withhold_context changes what the denoiser reads"):
        train_world_model(WMTrainConfig(task="pusht", data=str(tiny_dataset), out=str(tmp_path / "l"), preset="debug",
                                        init_from=str(debug_bundle), reuse=("autoencoder", "denoiser"),
                                        withhold_context=True), progress_bar=False)
    with pytest.raises(ValueError, match="withhold_context needs state guidance"):
        train_world_model(WMTrainConfig(task="pusht", data=str(tiny_dataset), out=str(tmp_path / "m"), preset="debug",
                                        withhold_context=True), progress_bar=False)
    with pytest.raises(ValueError, match="silhouette changes the denoiser's inputs"):
        train_world_model(WMTrainConfig(task="pusht", data=str(tiny_dataset), out=str(tmp_path / "n"), preset="debug",
                                        init_from=str(debug_bundle), reuse=("autoencoder", "denoiser"),
                                        silhouette="pusht"), progress_bar=False)
    with pytest.raises(ValueError, match="silhouette needs state guidance"):
        train_world_model(WMTrainConfig(task="pusht", data=str(tiny_dataset), out=str(tmp_path / "o"), preset="debug",
                                        silhouette="pusht"), progress_bar=False)
    with pytest.raises(ValueError, match="predict_delta must be >= 0"):
        train_world_model(WMTrainConfig(task="pusht", data=str(tiny_dataset), out=str(tmp_path / "g"), preset="debug",
                                        predict_delta=-0.4), progress_bar=False)
    with pytest.raises(ValueError, match="is a 'pusht' model, not 'cube'"):
        train_world_model(WMTrainConfig(task="cube", data=str(tiny_dataset), out=str(tmp_path / "b"), preset="debug",
                                        init_from=str(debug_bundle)), progress_bar=False)


def test_bundle_round_trip_is_exact(debug_bundle, tmp_path):
    model = WorldModel.load(debug_bundle)
    model.save(tmp_path / "copy")
    a, b = _weights(debug_bundle), _weights(tmp_path / "copy")
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), k


def test_bundle_errors_name_the_problem(debug_bundle, tmp_path):
    with pytest.raises(BundleError, match="no world-model bundle"):
        WorldModel.load(tmp_path / "missing")
    broken = tmp_path / "broken"
    broken.mkdir()
    for f in ("config.json", "card.json"):
        (broken / f).write_text((debug_bundle / f).read_text())
    (broken / "weights.safetensors").write_bytes(b"\x00garbage" * 10)
    with pytest.raises(BundleError, match="corrupt"):
        WorldModel.load(broken)
    (broken / "weights.safetensors").unlink()
    with pytest.raises(BundleError, match="weights.safetensors is missing"):
        WorldModel.load(broken)
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    (foreign / "config.json").write_text(json.dumps({"hello": 1}))
    (foreign / "card.json").write_text("{}")
    (foreign / "weights.safetensors").write_bytes((debug_bundle / "weights.safetensors").read_bytes())
    with pytest.raises(BundleError, match="not a fog-world-model config"):
        WorldModel.load(foreign)
    mismatched = tmp_path / "mismatched"
    mismatched.mkdir()
    cfg = json.loads((debug_bundle / "config.json").read_text())
    cfg["rssm"]["deter"] = cfg["rssm"]["deter"] * 2
    (mismatched / "config.json").write_text(json.dumps(cfg))
    (mismatched / "card.json").write_text("{}")
    (mismatched / "weights.safetensors").write_bytes((debug_bundle / "weights.safetensors").read_bytes())
    with pytest.raises(BundleError, match="rssm weights do not match"):
        WorldModel.load(mismatched)


def test_resume_after_a_kill_equals_an_uninterrupted_run(tiny_dataset, debug_bundle, tmp_path):
    out = tmp_path / "resumed"
    cfg = WMTrainConfig(task="pusht", data=str(tiny_dataset), out=str(out), preset="debug", threads=2)
    from dataclasses import replace

    from fog_envs.wm.trainer import StopRequested

    for stop in (4, 5, 7):  # kills inside the autoencoder, in the denoiser, and in the reward stage
        with pytest.raises(StopRequested):
            train_world_model(replace(cfg, stop_after=stop), progress_bar=False)
    bundle = train_world_model(cfg, progress_bar=False)
    a, b = _weights(debug_bundle), _weights(bundle)
    for k in a:
        assert torch.equal(a[k], b[k]), k


def test_ddp_two_cpu_processes(tiny_dataset, tmp_path):
    out = tmp_path / "ddp"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
           "-m", "fog_envs.wm.cli", "--task", "pusht", "--data", str(tiny_dataset), "--out", str(out),
           "--preset", "debug", "--threads", "1", "--no-progress"]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr[-3000:]
    card = json.loads((out / "bundle" / "card.json").read_text())
    assert card["world_size"] == 2
    WorldModel.load(out / "bundle")


def test_learned_env_on_the_debug_bundle(debug_bundle):
    from gymnasium.utils.env_checker import check_env

    for obs_type in ("pixels", "latent"):
        env = gym.make("WMPushT-v0", world_model=str(debug_bundle), obs_type=obs_type)
        check_env(env.unwrapped)
    env = gym.make("WMPushT-v0", world_model=str(debug_bundle))
    obs, _ = env.reset(seed=0)
    assert obs.shape == (64, 64, 3) and obs.dtype == np.uint8
    a = [env.reset(seed=5)[0]] + [env.step(np.full(2, 0.3, np.float32))[0] for _ in range(3)]
    b = [env.reset(seed=5)[0]] + [env.step(np.full(2, 0.3, np.float32))[0] for _ in range(3)]
    for x, y in zip(a, b):
        np.testing.assert_array_equal(x, y)
    with pytest.raises(BundleError, match="trained for task 'pusht'"):
        gym.make("WMPushCube-v0", world_model=str(debug_bundle))


def test_diffusion_bptt_env_gradients_flow(debug_bundle):
    envs = gym.make_vec("WMPushT-v0", num_envs=3, vectorization_mode="vector_entry_point", obs_type="latent",
                        world_model=str(debug_bundle), gradient_model="diffusion")
    diff = envs.unwrapped.diff
    diff.reset(seed=0)
    a = torch.full((3, 2), 0.2, requires_grad=True)
    _, r1, *_ = diff.step(a)
    _, r2, *_ = diff.step(torch.zeros(3, 2))
    (g,) = torch.autograd.grad(r2.sum(), a)  # reaches a through the generated context frame
    assert torch.isfinite(g).all() and g.abs().sum() > 0
    with pytest.raises(ValueError, match="gradient_model"):
        gym.make_vec("WMPushT-v0", num_envs=2, vectorization_mode="vector_entry_point",
                     world_model=str(debug_bundle), gradient_model="magic")


def test_agent_debug_run_on_a_bundle_and_zero_shot_eval(debug_bundle, tmp_path):
    from fog_agent.evaluate import EvalConfig, run_evaluation
    from fog_agent.train import AgentTrainConfig, train_agent

    run = tmp_path / "agent"
    cfg = AgentTrainConfig(env_id="WMPushT-v0", preset="debug", run_dir=str(run), world_model=str(debug_bundle),
                           eval_env_id="auto", eval_every=1, eval_episodes=1, final_eval_episodes=1,
                           video_episodes=1)
    from dataclasses import replace

    train_agent(replace(cfg, iterations=2), progress=False)
    rows = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]
    assert len(rows) == 2 and all(np.isfinite(v) for r in rows for v in r.values())
    result = run_evaluation(EvalConfig(run_dir=str(run), episodes=2, video_episodes=1))
    assert result["env_id"] == "RealPushT-v0" and result["episodes"] == 2
    assert 0.0 <= result["success_rate"] <= 1.0 and result["mean_max_coverage"] is not None
    assert (run / "eval_RealPushT-v0.json").exists() and list((run / "videos").glob("*.mp4"))
    assert (run / "learning_curve.png").exists()
    sampled = run_evaluation(EvalConfig(run_dir=str(run), episodes=1, video_episodes=0, stochastic=True))
    assert sampled["stochastic"] and not result["stochastic"]
    assert (run / "eval_RealPushT-v0_stochastic.json").exists()


def test_local_model_refresh_changes_the_rssm(debug_bundle):
    envs = gym.make_vec("WMPushT-v0", num_envs=2, vectorization_mode="vector_entry_point", obs_type="latent",
                        world_model=str(debug_bundle))
    vec = envs.unwrapped
    vec.reset(seed=0)
    assert vec.refresh_local_model(2) == {}  # nothing imagined yet
    for _ in range(20):
        vec.step(np.zeros((2, 2), np.float32))
    before = {k: v.clone() for k, v in vec.backend.model.rssm.state_dict().items()}
    metrics = vec.refresh_local_model(2)
    assert np.isfinite(metrics["refresh/rssm_loss"])
    after = vec.backend.model.rssm.state_dict()
    assert any(not torch.equal(before[k], after[k]) for k in before)
    assert not any(p.requires_grad for p in vec.backend.model.rssm.parameters())


def test_agent_resume_with_refresh_on_a_bundle_is_exact(debug_bundle, tmp_path):
    from dataclasses import replace

    from fog_agent.train import AgentTrainConfig, train_agent

    common = AgentTrainConfig(env_id="WMPushT-v0", preset="debug", world_model=str(debug_bundle), iterations=4,
                              local_refresh_steps=1, eval_env_id=None, checkpoint_every=100)
    train_agent(replace(common, run_dir=str(tmp_path / "a")), progress=False)
    train_agent(replace(common, run_dir=str(tmp_path / "b"), stop_after=2), progress=False)
    train_agent(replace(common, run_dir=str(tmp_path / "b")), progress=False)
    a = torch.load(tmp_path / "a" / "checkpoints" / "latest.pt", weights_only=False)
    b = torch.load(tmp_path / "b" / "checkpoints" / "latest.pt", weights_only=False)
    for k, v in a["agent"]["model"].items():
        assert torch.equal(v, b["agent"]["model"][k]), k
    refreshed = a["env"]["backend"]["rssm"]
    for k, v in refreshed.items():
        assert torch.equal(v, b["env"]["backend"]["rssm"][k]), k
    original = WorldModel.load(debug_bundle).rssm.state_dict()
    assert any(not torch.equal(original[k], refreshed[k]) for k in original)  # the refresh did train


@pytest.mark.parametrize("obs_type, policy", [("pixels", "CnnPolicy"), ("latent", "MlpPolicy")])
def test_sb3_ppo_learns_on_a_tiny_bundle(debug_bundle, obs_type, policy):
    """SB3 PPO runs a few hundred steps through the VecEnv adapter on a user's (tiny) bundle and updates."""
    from stable_baselines3 import PPO

    from baselines.vec_env import make_learned_vec_env

    env = make_learned_vec_env("WMPushT-v0", 4, obs_type=obs_type, max_episode_steps=20,
                               world_model=str(debug_bundle))
    model = PPO(policy, env, n_steps=64, batch_size=64, n_epochs=1, seed=0, device="cpu")
    before = [p.detach().clone() for p in model.policy.parameters()]
    model.learn(256)
    assert model.num_timesteps >= 256
    assert any(not torch.equal(a, b) for a, b in zip(before, model.policy.parameters()))
    env.close()


def test_autoencoder_overrides_reshape_every_latent_reader(tiny_dataset, debug_bundle, tmp_path):
    """Two stride-2 stages give 16×16 latents: the denoiser (folded by its patch), the RSSM, the reward model
    and the start windows all follow the autoencoder; the bundle loads and samples; reusing any stage of
    another bundle with a new autoencoder is refused by name."""
    bundle = train_world_model(WMTrainConfig(task="pusht", data=str(tiny_dataset), out=str(tmp_path / "ae16"),
                                             preset="debug", threads=2, ae_channels=(8, 16), ae_latent_channels=4,
                                             denoiser_patch=2), progress_bar=False)
    model = WorldModel.load(bundle)
    assert model.latent_shape == (4, 16, 16) == model.config.rssm.latent_shape
    assert (model.config.denoiser.latent_size, model.config.denoiser.patch_size) == (16, 2)
    assert tuple(model.start_latents.shape[2:]) == (4, 16, 16)
    ctx, act = model.start_latents[:2], model.start_actions[:2]
    z = model.next_latent(ctx, act, torch.Generator().manual_seed(0))
    assert z.shape == (2, 4, 16, 16) and torch.isfinite(model.reward(z)["reward"]).all()
    with pytest.raises(ValueError, match="autoencoder overrides"):
        train_world_model(WMTrainConfig(task="pusht", data=str(tiny_dataset), out=str(tmp_path / "x"), preset="debug",
                                        init_from=str(debug_bundle), reuse=("reward",), ae_channels=(8, 16)),
                          progress_bar=False)


class _KeepLast(torch.nn.Module):
    """An EDM network whose denoised estimate is 0 at every σ: with delta targets, the next latent is the last."""

    def forward(self, x_in, c_noise, context, actions, c_noise_cond=None):  # noqa: ANN001, ANN201
        from fog_envs.wm.edm import EDMConfig, preconditioners

        sigma = (4 * c_noise).exp()
        c_in, c_skip, c_out, _ = preconditioners(sigma, EDMConfig())
        return -(c_skip / (c_out * c_in)).reshape(-1, 1, 1, 1) * x_in


def test_hold_still_reads_zero_drift_for_a_model_that_keeps_the_scene(tiny_dataset, debug_bundle):
    """A scene at rest under zero actions: a model that copies its last latent drifts 0 px / 0° at every
    horizon (PSNR at the 100 dB cap); the trained debug model reports finite figures for both models."""
    from fog_envs.wm.fidelity import FidelityConfig, hold_still
    from fog_envs.wm.train import load_play_arrays

    model = WorldModel.load(debug_bundle)
    data = load_play_arrays(tiny_dataset, "pusht")
    cfg = FidelityConfig(horizons=(1, 3), num_windows=4, batch=3)
    out = hold_still(model, data, cfg)
    assert out["windows"] == 4
    for kind in ("diffusion", "rssm"):
        assert set(out[kind]) == {"1", "3"}
        assert all(np.isfinite(v) for m in out[kind].values() for v in m.values())
    model.denoiser = _KeepLast()
    model.set_sampler(predict_delta=True)
    kept = hold_still(model, data, cfg)["diffusion"]
    for m in kept.values():
        assert m["psnr_median"] == pytest.approx(100.0)
        assert all(v == pytest.approx(0.0, abs=1e-3) for k, v in m.items() if k.startswith("probe_"))


def test_set_sampler_overrides_and_names_bad_fields(debug_bundle):
    model = WorldModel.load(debug_bundle)
    weights = {k: v.clone() for k, v in model.state_dict().items()}
    model.set_sampler(start_sigma=0.5, num_steps=3)
    assert (model.config.edm.start_sigma, model.config.edm.num_steps) == (0.5, 3)
    assert all(torch.equal(v, model.state_dict()[k]) for k, v in weights.items())
    with pytest.raises(ValueError, match="unknown EDMConfig field"):
        model.set_sampler(start_sigm=0.5)
    with pytest.raises(ValueError, match="start_sigma"):
        model.set_sampler(start_sigma=-1.0)


def test_fidelity_open_loop_and_gradient_cosine_on_the_debug_bundle(tiny_dataset, debug_bundle):
    """The fidelity benchmark's two measurements run on a bundle and real windows: every horizon and source
    has finite figures, the autoencoder floor is the real frames' own, and the gradient cosine is a cosine,
    over the asked number of windows, and reproducible."""
    from fog_envs.wm.fidelity import FidelityConfig, gradient_cosine, open_loop
    from fog_envs.wm.train import load_play_arrays

    torch.set_num_threads(2)
    model = WorldModel.load(debug_bundle)
    data = load_play_arrays(tiny_dataset, "pusht")
    cfg = FidelityConfig(horizons=(1, 4), num_windows=4, batch=2, grad_windows=3, grad_horizon=2)
    fid = open_loop(model, data, cfg)
    assert fid["windows"] == 4
    for kind in ("diffusion", "rssm", "persist", "autoencoder", "real"):
        assert set(fid[kind]) == {"1", "4"}
        assert all(np.isfinite(v) for m in fid[kind].values() for v in m.values()), kind
    assert {"psnr_median", "reward_abs_err_median", "probe_block_px_median"} <= set(fid["diffusion"]["4"])
    # "persist" is the last real context frame (through the autoencoder) held still, read against frame t+h
    from fog_envs.wm.fidelity import _psnr, _windows

    L = model.context_len
    starts = _windows(data, L, 4, cfg)
    with torch.no_grad():
        last = model.autoencoder.encode(torch.from_numpy(data.frames[starts + L - 1])[:, None])[:, 0]
        held = model.autoencoder.decode(last)
    for h in (1, 4):
        expected = np.median(_psnr(held.numpy(), data.frames[starts + L + h - 1]))
        assert fid["persist"][str(h)]["psnr_median"] == pytest.approx(expected, rel=1e-5)
        # "autoencoder" is the true frame t+h through the autoencoder: its PSNR is the "real" row's ae_psnr
        assert fid["autoencoder"][str(h)]["psnr_median"] == pytest.approx(fid["real"][str(h)]["ae_psnr_median"],
                                                                          rel=1e-6)
    assert set(fid["windows_moved"]) == {"1", "4"} and all(0 <= n <= 4 for n in fid["windows_moved"].values())
    grad = gradient_cosine(model, data, cfg)
    assert grad["grad_windows"] == 3 and grad["grad_horizon"] == 2
    assert -1.0 <= grad["grad_cosine_mean"] <= 1.0 and -1.0 <= grad["grad_cosine_median"] <= 1.0
    assert gradient_cosine(model, data, cfg) == grad


def test_contact_sampling_probabilities_by_hand():
    """Windows are drawn ``∝ 1 + C·m/mean(m)``, m the passive object's motion into the target row; uniform when
    C is 0 or nothing moved; the batch sampler draws exactly from the given probabilities."""
    probe = np.array([[0, 0.0, 0.0], [0, 0.0, 0.0], [0, 3.0, 4.0], [0, 3.0, 4.0], [9, 3.0, 6.0]])
    m = st.passive_motion(probe, np.array([1, 2, 3, 4]), dims=(1, 2))
    np.testing.assert_allclose(m, [0.0, 5.0, 0.0, 2.0])  # dim 0 (the agent) is not passive
    p = st.window_probabilities(m, 2.0)  # mean m = 1.75: weights 1, 1 + 2·5/1.75, 1, 1 + 2·2/1.75
    w = np.array([1.0, 1 + 10 / 1.75, 1.0, 1 + 4 / 1.75])
    np.testing.assert_allclose(p, w / w.sum())
    assert st.window_probabilities(m, 0.0) is None and st.window_probabilities(np.zeros(4), 2.0) is None
    with pytest.raises(ValueError, match="contact_sampling must be >= 0"):
        EDMConfig(contact_sampling=-1.0)
    data = st.PlayArrays(frames=np.zeros((12, 2, 2, 3), np.uint8), actions=np.arange(24, dtype=np.float32).reshape(12, 2),
                         rewards=np.zeros(12, np.float32), is_success=np.zeros(12, bool), state=np.zeros((12, 5)),
                         episode_ends=np.array([12]), aux=np.zeros((12, 1), np.float32),
                         probe=np.zeros((12, 6), np.float32), latents=torch.arange(12.0).reshape(12, 1, 1, 1))
    starts = np.arange(8)
    only = np.zeros(8)
    only[5] = 1.0
    batch = st.denoiser_batch(data, 2, np.random.default_rng(0), 16, starts, EDMConfig(), only)
    assert (batch["latents"][:, 0, 0, 0, 0] == 5.0).all()


def test_passive_response_by_hand():
    """Gain and cosine of the predicted passive displacement along the true one, over the rows that moved."""
    from fog_envs.wm.fidelity import passive_response

    start = np.zeros((5, 3))
    true = np.array([[0, 3.0, 4.0], [0, 3.0, 4.0], [0, 3.0, 4.0], [0, 0.0, 2.0], [0, 0.001, 0.0]])
    pred = np.array([[9.0, 3.0, 4.0],  # as far, same direction (dim 0 is not passive)
                     [0, 0.0, 0.0],  # not moved at all: "persist"
                     [0, 1.5, 2.0],  # half as far
                     [0, 2.0, 0.0]])  # orthogonal
    pred = np.vstack([pred, [[0, 5.0, 5.0]]])  # row 4: the true object barely moved, so it does not count
    gain, cos = passive_response(pred + 1.0, np.full((5, 3), 1.0), true, start, dims=(1, 2), tol=0.01)
    np.testing.assert_allclose(gain, [1.0, 0.0, 0.5, 0.0])
    np.testing.assert_allclose(cos, [1.0, 0.0, 1.0, 0.0])
    gain, _ = passive_response(-true, start, true, start, dims=(1, 2), tol=0.01)
    np.testing.assert_allclose(gain, [-1.0] * 4)


def test_central_differences_are_exact_on_a_quadratic():
    from fog_envs.wm.fidelity import _central_differences

    gen = torch.Generator().manual_seed(0)
    c, w = torch.rand(3, 2, generator=gen), torch.randn(3, 2, generator=gen)
    future = torch.randn(4, 3, 2, generator=gen)
    ret = lambda f: (c * f.pow(2) + w * f).sum((1, 2))  # noqa: E731
    fd = _central_differences(ret, future, 0.05)
    torch.testing.assert_close(fd, (2 * c * future + w).reshape(4, -1), atol=1e-4, rtol=1e-4)


def test_surrogate_gradient_along_any_frames_and_against_the_reference_system(tiny_dataset, debug_bundle):
    """FoG's surrogate gradient is the RSSM's along the diffusion samples (recorded samples fed back give the
    same gradient); the true gradient is hand-checkable central differences through RealPushT-v0 restarted
    at the window's state; the reference benchmark returns cosines on the same windows as gradient_cosine."""
    import gymnasium as gym

    from fog_envs.wm.fidelity import (FidelityConfig, _gradient_problem, _reference_differences, gradient_cosine,
                                      reference_gradient_cosine)
    from fog_envs.wm.train import load_play_arrays

    torch.set_num_threads(2)
    model = WorldModel.load(debug_bundle)
    data = load_play_arrays(tiny_dataset, "pusht")
    cfg = FidelityConfig(grad_windows=3, grad_horizon=2)
    p = _gradient_problem(model, data, cfg)
    recorded = []

    def sampled(k, ctx, ctx_act):
        recorded.append(model.next_latent_fixed(ctx, ctx_act, p.noise[k], p.ctx_noise[k]))
        return recorded[-1]

    fog = model.surrogate_action_gradient(p.ctx, p.ctx_actions, p.future, p.noise, p.ctx_noise)
    torch.testing.assert_close(model.surrogate_gradient_along(p.ctx, p.ctx_actions, p.future, sampled), fog)
    torch.testing.assert_close(model.surrogate_gradient_along(p.ctx, p.ctx_actions, p.future,
                                                              lambda k, c, a: recorded[k]), fog)

    true_fd, latents, states = _reference_differences(model, data, p, cfg)
    assert true_fd.shape == (3, 4) and latents.shape == (3, 2, *model.latent_shape) and states.shape == (3, 3, 6)
    start = model.task.probe_targets(data.state[p.rows[:, model.context_len - 1]])
    np.testing.assert_allclose(states[:, 0].numpy(), start, atol=1e-6)  # restarted at the window's true state
    env = gym.make("RealPushT-v0")
    start = data.state[p.rows[1, model.context_len - 1]]

    def true_return(a0: np.ndarray) -> float:
        env.reset(options={"reset_to_state": start})
        return env.step(a0)[1] + env.step(p.future[1, 1].numpy())[1]

    a0, eps = p.future[1, 0].numpy().copy(), cfg.fd_eps
    bump = np.array([0.0, eps], dtype=np.float32)  # the second action dimension of the first step
    expected = (true_return(np.clip(a0 + bump, -1, 1)) - true_return(np.clip(a0 - bump, -1, 1))) / (2 * eps)
    assert true_fd[1, 1].item() == pytest.approx(expected, rel=1e-5, abs=1e-6)

    result = reference_gradient_cosine(model, data, cfg)
    assert result["grad_cosine_mean"] == gradient_cosine(model, data, cfg)["grad_cosine_mean"]
    for key in ("true_cos_fog", "true_cos_rssm_on_reference", "true_cos_diffusion_fd"):
        assert -1.0 <= result[f"{key}_mean"] <= 1.0 and -1.0 <= result[f"{key}_median"] <= 1.0
    assert result["grad_windows"] == 3 and result["true_grad_norm_median"] >= 0.0


def test_probe_batch_shows_the_asked_fraction_through_the_autoencoder(tiny_dataset):
    """``decoded_fraction``: that many random rows of each batch are the autoencoder's drawing of the row's
    latent, the rest the real frames; the targets are the rows' own either way."""
    from fog_envs.wm import stages
    from fog_envs.wm.train import load_play_arrays

    data = load_play_arrays(tiny_dataset, "pusht")
    data.latents = torch.arange(len(data.frames), dtype=torch.float32)[:, None]  # a latent that names its row
    decode = lambda z: z[:, 0].to(torch.uint8)[:, None, None, None].expand(-1, *data.frames.shape[1:])  # noqa: E731
    plain = stages.probe_batch(data, np.random.default_rng(0), 16)
    mixed = stages.probe_batch(data, np.random.default_rng(0), 16, decode, 0.25)
    assert torch.equal(plain["targets"], mixed["targets"])
    drawn = [i for i in range(16) if not torch.equal(mixed["frames"][i], plain["frames"][i])]
    assert len(drawn) == 4
    rows = np.sort(np.random.default_rng(0).integers(0, len(data.frames), size=16))
    for i in drawn:
        assert torch.all(mixed["frames"][i] == int(rows[i]) % 256)
    with pytest.raises(ValueError, match="decode"):
        stages.probe_batch(data, np.random.default_rng(0), 16, None, 0.5)


def test_probe_decoded_fraction_is_recorded_and_checked(tiny_dataset, debug_bundle, tmp_path):
    """``probe_decoded_fraction`` trains the probe with that mix and records it in the bundle's config; it
    cannot apply to a reused probe; the config refuses fractions outside [0, 1]."""
    from fog_envs.wm.probe import ProbeConfig

    common = dict(task="pusht", data=str(tiny_dataset), preset="debug", threads=2, init_from=str(debug_bundle))
    bundle = train_world_model(WMTrainConfig(**common, out=str(tmp_path / "p"),
                                             reuse=("autoencoder", "denoiser", "reward", "rssm"),
                                             probe_decoded_fraction=0.5), progress_bar=False)
    model = WorldModel.load(bundle)
    assert model.config.probe.decoded_fraction == 0.5
    old, new = _weights(debug_bundle), _weights(bundle)
    assert any(not torch.equal(old[k], new[k]) for k in old if k.startswith("probe."))
    with pytest.raises(ValueError, match="reuses it"):
        train_world_model(WMTrainConfig(**common, out=str(tmp_path / "x"), reuse=("autoencoder", "probe"),
                                        probe_decoded_fraction=0.5), progress_bar=False)
    with pytest.raises(ValueError, match="decoded_fraction"):
        ProbeConfig(decoded_fraction=1.5)


def test_probe_batch_draws_half_from_the_extra_frames(tiny_dataset):
    """``extra``: the first half of the batch is the play rows' (as without it), the second half extra rows with
    their own targets."""
    from fog_envs.wm import stages
    from fog_envs.wm.train import load_play_arrays

    data = load_play_arrays(tiny_dataset, "pusht")
    n = 5
    frames = np.stack([np.full(data.frames.shape[1:], 200 + i, dtype=np.uint8) for i in range(n)])
    targets = np.arange(n * data.probe.shape[1], dtype=np.float64).reshape(n, -1)
    plain = stages.probe_batch(data, np.random.default_rng(0), 4)
    mixed = stages.probe_batch(data, np.random.default_rng(0), 8, extra=(frames, targets))
    assert mixed["frames"].shape[0] == 8 and mixed["targets"].dtype == torch.float32
    assert torch.equal(mixed["frames"][:4], plain["frames"]) and torch.equal(mixed["targets"][:4], plain["targets"])
    for frame, target in zip(mixed["frames"][4:], mixed["targets"][4:]):
        i = int(frame[0, 0, 0]) - 200
        assert 0 <= i < n and torch.equal(target, torch.from_numpy(targets[i].astype(np.float32)))


def test_probe_goal_frames_train_the_probe_and_are_recorded(tiny_dataset, debug_bundle, tmp_path):
    common = dict(task="pusht", data=str(tiny_dataset), preset="debug", threads=2, init_from=str(debug_bundle),
                  reuse=("autoencoder", "denoiser", "reward", "rssm"))
    bundle = train_world_model(WMTrainConfig(**common, out=str(tmp_path / "g"), probe_goal_frames=6),
                               progress_bar=False)
    card = json.loads((bundle / "card.json").read_text())
    assert card["probe_goal_frames"] == 6
    old, new = _weights(debug_bundle), _weights(bundle)
    assert any(not torch.equal(old[k], new[k]) for k in old if k.startswith("probe."))
    with pytest.raises(ValueError, match="probe_goal_frames must be >= 0"):
        train_world_model(WMTrainConfig(**common, out=str(tmp_path / "x"), probe_goal_frames=-1), progress_bar=False)


def test_autoencoder_motion_weight_by_hand_and_batches_with_predecessors(tiny_dataset):
    """``motion_weight``: the loss is L1 + MSE weighted per pixel by ``1 + m·|x_t − x_{t−1}|/mean|…|``
    (mean 1), the plain loss when nothing moved or m = 0; the batch's previous frames are each row's own
    predecessor in its episode; a missing predecessor and a negative weight are named."""
    from fog_envs.wm import stages
    from fog_envs.wm.autoencoder import AutoencoderConfig, FrameAutoencoder
    from fog_envs.wm.train import load_play_arrays

    torch.manual_seed(0)
    cfg = AutoencoderConfig(latent_channels=4, channels=(8, 16, 16), motion_weight=2.0)
    model = FrameAutoencoder(cfg)
    plain = FrameAutoencoder(AutoencoderConfig(latent_channels=4, channels=(8, 16, 16)))
    plain.load_state_dict(model.state_dict())
    g = torch.Generator().manual_seed(1)
    frames = torch.randint(0, 256, (3, 64, 64, 3), generator=g, dtype=torch.uint8)
    prev = frames.clone()
    prev[:, 10:14, 20:26] = 255 - prev[:, 10:14, 20:26]  # a small patch moved
    with torch.no_grad():
        x = FrameAutoencoder.frames_to_input(frames)
        raw = model._raw_encode(x)
        err = model.decoder(raw.reshape(-1, *cfg.latent_shape)).reshape(x.shape) - x
        d = (x - FrameAutoencoder.frames_to_input(prev)).abs()
        w = 1 + 2.0 * d / d.mean()
        w = w / w.mean()
        expected = (err.abs() * w).mean() + (err.pow(2) * w).mean() + cfg.latent_l2 * raw.pow(2).mean()
        loss, _ = model.loss(frames, prev)
        assert loss.item() == pytest.approx(expected.item(), rel=1e-4), (loss.item(), expected.item())
        assert loss.item() != pytest.approx(plain.loss(frames)[0].item(), rel=1e-4)
        assert model.loss(frames, frames)[0].item() == pytest.approx(plain.loss(frames)[0].item(), rel=1e-5)
        assert plain.loss(frames, prev)[0].item() == pytest.approx(plain.loss(frames)[0].item(), rel=1e-6)
    with pytest.raises(ValueError, match="prev_frames"):
        model.loss(frames)
    with pytest.raises(ValueError, match="motion_weight"):
        AutoencoderConfig(motion_weight=-1.0)

    data = load_play_arrays(tiny_dataset, "pusht")
    batch = stages.autoencoder_batch(data, np.random.default_rng(0), 64, data.next_rows)
    starts = set(np.concatenate([[0], data.episode_ends[:-1]]).tolist())
    for f, p in zip(batch["frames"], batch["prev_frames"]):
        match = np.flatnonzero((data.frames == f.numpy()).all(axis=(1, 2, 3)))
        assert any(int(r) not in starts and np.array_equal(data.frames[r - 1], p.numpy()) for r in match)
    assert set(stages.autoencoder_batch(data, np.random.default_rng(0), 8)) == {"frames"}


def test_ae_motion_weight_is_recorded_and_needs_a_new_autoencoder(tiny_dataset, debug_bundle, tmp_path):
    """``ae_motion_weight`` trains the autoencoder with the weighted loss and lands in the bundle's config;
    with a reused autoencoder it is refused by name."""
    bundle = train_world_model(WMTrainConfig(task="pusht", data=str(tiny_dataset), out=str(tmp_path / "m"),
                                             preset="debug", threads=2, ae_motion_weight=1.0), progress_bar=False)
    assert WorldModel.load(bundle).config.autoencoder.motion_weight == 1.0
    with pytest.raises(ValueError, match="autoencoder overrides"):
        train_world_model(WMTrainConfig(task="pusht", data=str(tiny_dataset), out=str(tmp_path / "x"),
                                        preset="debug", init_from=str(debug_bundle), reuse=("autoencoder",),
                                        ae_motion_weight=1.0), progress_bar=False)


class _IdentityAutoencoder(torch.nn.Module):
    """Encodes a frame as itself: a lossless autoencoder."""

    def encode(self, frames: torch.Tensor) -> torch.Tensor:
        return frames.float()

    def decode(self, latents: torch.Tensor) -> torch.Tensor:
        return latents.round().to(torch.uint8)


def test_reconstruction_floor_of_a_lossless_and_a_lossy_autoencoder(tiny_dataset, debug_bundle):
    """A lossless autoencoder's reconstruction reads exactly like the real frame (PSNR at its 100 dB cap);
    the debug bundle's lossy one reads every frame, with a finite PSNR below the cap."""
    from fog_envs.wm.fidelity import reconstruction
    from fog_envs.wm.train import load_play_arrays

    data = load_play_arrays(tiny_dataset, "pusht")
    model = WorldModel.load(debug_bundle)
    frames, targets = data.frames[:40], data.probe[:40]
    with torch.no_grad():
        exact = reconstruction(_IdentityAutoencoder(), model.probe, model.task, frames, targets, batch=16)
        lossy = reconstruction(model.autoencoder, model.probe, model.task, frames, targets, batch=16)
    assert exact["autoencoder"]["psnr"] == [100.0] * 40
    for name in ("probe_agent_px", "probe_block_px", "probe_block_deg"):
        assert exact["autoencoder"][name] == pytest.approx(exact["real"][name])
        assert len(lossy["autoencoder"][name]) == 40 and exact["real"][name] == lossy["real"][name]
    assert all(np.isfinite(v) and v < 100.0 for v in lossy["autoencoder"]["psnr"])
