"""The SB3 baseline: the VecEnv adapter against SB3's contract, PPO on it, the run directory and resume."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest
import torch
from gymnasium.vector import AutoresetMode, SyncVectorEnv
from gymnasium.wrappers import TimeLimit
from stable_baselines3 import PPO
from stable_baselines3.common.env_checker import check_env
from stable_baselines3.common.vec_env import VecFrameStack, VecTransposeImage

import fog_envs  # noqa: F401
from baselines.controller import LatentPPOController, PPOController
from baselines.ppo import PPOConfig, env_seed, make_env, make_model, train_ppo
from baselines.vec_env import LearnedVecEnv, make_learned_vec_env
from fog_envs.learned.toy import ToyConfig, toy_step


pytestmark = pytest.mark.usefixtures("one_thread")


def tiny(run_dir: Path, **overrides) -> PPOConfig:
    """A PPO config that runs in a second or two on WMToy-v0."""
    base = PPOConfig(env_id="WMToy-v0", obs_type="latent", total_timesteps=512, num_envs=4, n_steps=32,
                     batch_size=64, n_epochs=2, max_episode_steps=20, run_dir=str(run_dir), device="cpu",
                     checkpoint_every=128, progress=False, net_arch=(32,))
    return replace(base, **overrides)


# --- the adapter ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("obs_type, shape, dtype", [("latent", (4,), np.float32), ("pixels", (64, 64, 3), np.uint8)])
def test_adapter_spaces_and_dtypes(obs_type, shape, dtype):
    env = make_learned_vec_env("WMToy-v0", 3, obs_type=obs_type)
    assert env.num_envs == 3 and env.observation_space.shape == shape and env.observation_space.dtype == dtype
    assert env.action_space == gym.spaces.Box(-1.0, 1.0, (2,), np.float32)
    if obs_type == "pixels":
        assert (env.observation_space.low == 0).all() and (env.observation_space.high == 255).all()
    obs = env.reset()
    assert obs.shape == (3, *shape) and obs.dtype == dtype and len(env.reset_infos) == 3
    obs, rewards, dones, infos = env.step(np.zeros((3, 2), np.float32))
    assert obs.shape == (3, *shape) and obs.dtype == dtype
    assert rewards.shape == (3,) and rewards.dtype == np.float32
    assert dones.shape == (3,) and dones.dtype == bool
    assert isinstance(infos, list) and len(infos) == 3
    assert all(isinstance(i["is_success"], bool) and isinstance(i["distance"], float) for i in infos)
    assert env.get_attr("render_mode") == [None] * 3 and env.env_is_wrapped(gym.Wrapper) == [False] * 3
    env.close()


def test_adapter_autoreset_at_time_limit():
    """The terminal obs is the state the dynamics really reached; the returned obs is a fresh start."""
    env = make_learned_vec_env("WMToy-v0", 3, obs_type="latent", max_episode_steps=5)
    env.seed(0)
    obs = env.reset()
    rng = np.random.default_rng(0)
    cfg = ToyConfig()
    for t in range(5):
        action = rng.uniform(-1, 1, (3, 2)).astype(np.float32)
        expected = toy_step(torch.from_numpy(obs), torch.from_numpy(action), cfg, cfg.damping).numpy()
        obs, rewards, dones, infos = env.step(action)
        if t < 4:
            assert not dones.any() and all("terminal_observation" not in i for i in infos)
            np.testing.assert_allclose(obs, expected, rtol=1e-6, atol=1e-7)
    assert dones.all()
    for i, info in enumerate(infos):
        assert info["TimeLimit.truncated"] is True
        np.testing.assert_allclose(info["terminal_observation"], expected[i], rtol=1e-6, atol=1e-7)
        np.testing.assert_allclose(rewards[i], np.exp(-(expected[i, :2] ** 2).sum()), rtol=1e-5)
    assert np.all(obs[:, 2:] == 0) and np.all(np.abs(obs[:, :2]) <= cfg.start_range)  # reset: at rest, in range
    assert not np.allclose(obs, expected)


class _CountEnv(gym.Env):
    """obs = steps taken; terminates after ``end`` steps (a deterministic single env)."""

    observation_space = gym.spaces.Box(0, 1000, (1,), np.float32)
    action_space = gym.spaces.Box(-1, 1, (2,), np.float32)

    def __init__(self, end: int) -> None:
        self.end, self.t = end, 0

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self.t = 0
        return np.zeros(1, np.float32), {"coverage": 0.0}

    def step(self, action):
        self.t += 1
        return (np.full(1, self.t, np.float32), 1.0, self.t >= self.end, False,
                {"coverage": 0.1 * self.t, "is_success": self.t == 2})


def test_adapter_terminated_vs_truncated_and_final_info():
    """Generic SAME_STEP vector envs: TimeLimit.truncated only for truncations; infos of the final step."""
    venv = SyncVectorEnv([lambda: _CountEnv(2), lambda: TimeLimit(_CountEnv(100), 3)],
                         autoreset_mode=AutoresetMode.SAME_STEP)
    env = LearnedVecEnv(venv)
    env.reset()
    a = np.zeros((2, 2), np.float32)
    _, _, dones, infos = env.step(a)
    assert not dones.any()
    obs, _, dones, infos = env.step(a)
    assert dones.tolist() == [True, False]
    assert infos[0]["TimeLimit.truncated"] is False and infos[0]["terminal_observation"].tolist() == [2.0]
    assert infos[0]["is_success"] is True and infos[0]["coverage"] == pytest.approx(0.2)
    assert obs[0].tolist() == [0.0] and obs[1].tolist() == [2.0]
    obs, _, dones, infos = env.step(a)
    assert dones.tolist() == [False, True]
    assert infos[1]["TimeLimit.truncated"] is True and infos[1]["terminal_observation"].tolist() == [3.0]
    assert obs[1].tolist() == [0.0]


def test_adapter_rejects_next_step_autoreset():
    venv = SyncVectorEnv([lambda: _CountEnv(2)], autoreset_mode=AutoresetMode.NEXT_STEP)
    with pytest.raises(ValueError, match="SAME_STEP"):
        LearnedVecEnv(venv)


def test_adapter_seeding():
    def first_obs(seed):
        env = make_learned_vec_env("WMToy-v0", 4, obs_type="latent")
        env.seed(seed)
        return env.reset()

    np.testing.assert_array_equal(first_obs(3), first_obs(3))
    assert not np.allclose(first_obs(3), first_obs(4))


def test_adapter_images():
    env = make_learned_vec_env("WMToy-v0", 2, obs_type="latent", render_mode="rgb_array")
    env.reset()
    frames = env.get_images()
    assert len(frames) == 2 and frames[0].shape == (64, 64, 3) and frames[0].dtype == np.uint8
    assert env.render().ndim == 3


@pytest.mark.parametrize("obs_type", ["latent", "pixels"])
def test_sb3_check_env_single_env(obs_type):
    check_env(gym.make("WMToy-v0", obs_type=obs_type))


# --- PPO on the adapter --------------------------------------------------------------------------------
def test_ppo_mlp_on_latent_obs():
    env = make_learned_vec_env("WMToy-v0", 4, obs_type="latent", max_episode_steps=20)
    model = PPO("MlpPolicy", env, n_steps=32, batch_size=64, n_epochs=1, seed=0, device="cpu")
    model.learn(256)
    assert model.num_timesteps >= 256


def test_ppo_cnn_on_pixel_obs():
    env = make_learned_vec_env("WMToy-v0", 4, obs_type="pixels", max_episode_steps=20)
    model = PPO("CnnPolicy", env, n_steps=32, batch_size=64, n_epochs=1, seed=0, device="cpu")
    assert isinstance(model.get_env(), VecTransposeImage)  # HWC uint8 → SB3 transposes for NatureCNN
    model.learn(256)
    assert model.num_timesteps >= 256


def test_controller_stacks_like_vec_frame_stack():
    """The zero-shot controller feeds the policy exactly what VecFrameStack fed it in training."""
    env = VecFrameStack(make_learned_vec_env("WMToy-v0", 1, obs_type="pixels"), 3)
    raw = make_learned_vec_env("WMToy-v0", 1, obs_type="pixels")
    env.seed(0)
    raw.seed(0)
    stacked, frames = [env.reset()[0]], [raw.reset()[0]]
    for _ in range(3):
        a = np.full((1, 2), 0.5, np.float32)
        stacked.append(env.step(a)[0][0])
        frames.append(raw.step(a)[0][0])

    class Recorder:
        seen: list[np.ndarray] = []

        def predict(self, obs, deterministic):
            self.seen.append(obs.copy())
            return np.zeros(2, np.float32), None

    ctrl = PPOController(Recorder(), frame_stack=3)
    ctrl.reset(frames[0], {})
    for f in frames:
        ctrl.act(f, {})
    for got, want in zip(Recorder.seen, stacked, strict=True):
        np.testing.assert_array_equal(got, want)


# --- the training run ----------------------------------------------------------------------------------
def _scalar_tags(tb_dir: Path) -> set[str]:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    tags: set[str] = set()
    for f in tb_dir.glob("events.out.tfevents.*"):
        acc = EventAccumulator(str(f))
        acc.Reload()
        tags |= set(acc.Tags()["scalars"])
    return tags


def test_cli_pixels_run_dir_with_zero_shot_eval(tmp_path, capsys):
    """Pixels end to end: frame stack + CNN in WMToy-v0, zero-shot on RealPushT-v0 (same frame and action
    shapes), the run directory's files and the FoG agent's TensorBoard tags."""
    from baselines.cli import main

    run = tmp_path / "run"
    main(["--env-id", "WMToy-v0", "--obs-type", "pixels", "--total-timesteps", "256", "--num-envs", "4",
          "--n-steps", "32", "--batch-size", "64", "--n-epochs", "1", "--max-episode-steps", "20",
          "--run-dir", str(run), "--device", "cpu", "--checkpoint-every", "128", "--eval-env-id", "RealPushT-v0",
          "--eval-every", "128", "--eval-episodes", "1", "--final-eval-episodes", "1", "--video-episodes", "1",
          "--no-progress"])
    assert "success_rate" in capsys.readouterr().out
    cfg = json.loads((run / "config.json").read_text())
    assert cfg["env_id"] == "WMToy-v0" and cfg["obs_type"] == "pixels" and cfg["n_steps"] == 32
    assert {p.name for p in (run / "checkpoints").glob("*.zip")} == {"ppo_128.zip", "ppo_256.zip", "latest.zip"}
    assert (run / "checkpoints" / "vecnormalize_latest.pkl").exists()
    assert PPO.load(run / "checkpoints" / "latest.zip", device="cpu").num_timesteps == 256
    result = json.loads((run / "eval.json").read_text())
    assert result["env_id"] == "RealPushT-v0" and result["episodes"] == 1 and result["imagined_steps"] == 256
    assert result["mean_max_coverage"] is not None and len(result["videos"]) == 1
    assert Path(result["videos"][0]).exists()
    evals = [json.loads(x) for x in (run / "evals.jsonl").read_text().splitlines()]
    assert [e["imagined_steps"] for e in evals] == [128, 256]
    assert (run / "learning_curve.png").stat().st_size > 0
    tags = _scalar_tags(run / "tb")
    for tag in ("train/episode_return", "train/success_rate", "train/imagined_steps", "time/imagined_steps_per_s",
                "eval/success_rate", "eval/mean_return", "eval/mean_max_coverage", "train/value_loss"):
        assert tag in tags, tag


def test_latent_policy_zero_shot_eval_reads_the_rssm_filter(tmp_path):
    """A latent-obs policy trained in WMPushT-v0 (shipped bundle) runs on RealPushT-v0 through the learned
    env's RSSM filter, like the FoG agent: the report has the reference system's figures."""
    run = tmp_path / "run"
    result = train_ppo(tiny(run, env_id="WMPushT-v0", total_timesteps=64, num_envs=2, n_steps=32, batch_size=32,
                            n_epochs=1, eval_every=0, final_eval_episodes=1, video_episodes=0))
    assert result["env_id"] == "RealPushT-v0" and result["episodes"] == 1 and result["imagined_steps"] == 64
    assert 0.0 <= result["mean_max_coverage"] <= 1.0 and np.isfinite(result["mean_return"])


def test_latent_policy_without_a_reference_filter_fails_before_training(tmp_path):
    with pytest.raises(NotImplementedError, match="no reference system"):
        train_ppo(tiny(tmp_path / "run", eval_env_id="RealPushT-v0"))  # WMToy-v0 has no RSSM filter
    assert not (tmp_path / "run" / "checkpoints" / "latest.zip").exists()


def test_latent_controller_filters_each_frame_after_the_first_action():
    """reset() filters the first frame; each act() after the first feeds (last action, new frame)."""
    calls: list[tuple] = []

    class Observer:
        def reset(self, obs):
            calls.append(("reset", float(obs)))
            return torch.tensor([float(obs)])

        def update(self, action, obs):
            calls.append(("update", float(action[0]), float(obs)))
            return torch.tensor([float(obs)])

    class Policy:
        def predict(self, x, deterministic):
            assert deterministic and x.dtype == np.float32
            return np.array([2.0 * x[0]], np.float32), None  # out of range: the controller clips

    ctrl = LatentPPOController(Policy(), Observer())
    ctrl.reset(np.float32(0.25), {})
    assert ctrl.act(np.float32(0.25), {})[0] == 0.5
    assert ctrl.act(np.float32(0.75), {})[0] == 1.0
    assert calls == [("reset", 0.25), ("update", 0.5, 0.75)]


@pytest.mark.parametrize("obs_type", ["latent", "pixels"])
def test_resume_continues_from_the_checkpoint(tmp_path, obs_type):
    run = tmp_path / "run"
    cfg = lambda **kw: tiny(run, obs_type=obs_type, **kw)  # noqa: E731
    first = train_ppo(cfg(total_timesteps=1024, stop_after_steps=512))  # "killed" after 512 steps
    assert first["stopped"] and first["imagined_steps"] >= 512
    ckpt = PPO.load(run / "checkpoints" / "latest.zip", device="cpu")
    assert ckpt.num_timesteps == 512
    assert not (run / "eval.json").exists() and not (run / "learning_curve.png").exists()
    seen: list[int] = []
    second = train_ppo(cfg(total_timesteps=1024), on_rollout=lambda row: seen.append(row["imagined_steps"]))
    assert not second["stopped"] and second["imagined_steps"] == 1024
    assert seen == [640, 768, 896, 1024]  # continued from 512, not restarted from 0
    final = PPO.load(run / "checkpoints" / "latest.zip", device="cpu")
    assert final.num_timesteps == 1024 and final._n_updates == 8 * 2  # 8 rollouts × n_epochs
    steps = [json.loads(x)["imagined_steps"] for x in (run / "metrics.jsonl").read_text().splitlines()]
    assert steps == list(range(128, 1025, 128))  # monotone, nothing logged twice
    assert (run / "learning_curve.png").exists()
    # rerunning a finished run trains no further; another configuration is refused
    assert train_ppo(cfg(total_timesteps=1024))["imagined_steps"] == 1024
    with pytest.raises(ValueError, match="another configuration"):
        train_ppo(cfg(total_timesteps=1024, learning_rate=1e-3))


def _toy_return(policy, seed: int = 123) -> float:
    """Mean 100-step return of ``policy(obs) -> actions`` over 64 seeded WMToy-v0 episodes."""
    env = make_learned_vec_env("WMToy-v0", 64, obs_type="latent", max_episode_steps=100)
    env.seed(seed)
    obs, total = env.reset(), np.zeros(64)
    for _ in range(100):
        obs, reward, _, _ = env.step(policy(obs))
        total += reward
    return float(total.mean())


def test_ppo_learns_toy_latent(tmp_path):
    """20k imagined steps of PPO (the default hyperparameters but 16 envs) clearly beat random actions and
    the untrained policy on WMToy-v0 (deterministic actions, fresh seeded episodes)."""
    cfg = tiny(tmp_path / "run", total_timesteps=20_480, num_envs=16, n_steps=128, batch_size=256, n_epochs=10,
               max_episode_steps=100, checkpoint_every=0, net_arch=(256,))
    untrained = make_model(cfg, make_env(cfg))
    train_ppo(cfg)
    trained = PPO.load(tmp_path / "run" / "checkpoints" / "latest.zip", device="cpu")
    rng = np.random.default_rng(0)
    random_return = _toy_return(lambda obs: rng.uniform(-1, 1, (len(obs), 2)).astype(np.float32))
    before = _toy_return(lambda obs: untrained.predict(obs, deterministic=True)[0])
    after = _toy_return(lambda obs: trained.predict(obs, deterministic=True)[0])
    assert after > random_return + 15 and after > before + 10, (after, before, random_return)


def test_consecutive_seeds_share_no_env_stream(tmp_path):
    """With SB3's ``seed + i`` runs with seeds 0 and 1 would share N − 1 envs' episodes; ``env_seed`` keeps
    them apart (env i starts from ``seed·N + i``)."""
    firsts = {}
    for seed in (0, 1):
        cfg = tiny(tmp_path / f"s{seed}", seed=seed)
        env = make_env(cfg)
        env.seed(env_seed(cfg))
        firsts[seed] = env.reset()
        env.close()
    for i in range(4):
        for j in range(4):
            assert not np.array_equal(firsts[0][i], firsts[1][j])
