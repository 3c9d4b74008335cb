"""The ensemble-disagreement penalty of a state-model world (fog_envs.learned.disagreement): values and gradients
by hand, the penalised env's reward and its gradient against the plain env's, and bad configurations named."""

from __future__ import annotations

import gymnasium as gym
import pytest
import torch

import fog_envs  # noqa: F401  (registers the envs)
from fog_envs.learned.disagreement import EnsemblePenalty, disagreement

CUBE = {"obs_type": "latent", "forward_model": "state", "local_model": "state", "state_model": "cube_state",
        "bf16": False}


def test_two_members_disagree_by_half_their_distance_with_its_gradient():
    p = torch.tensor([[[0.0, 0.0, 0.0], [1.0, 1.0, 1.0]],
                      [[3.0, 4.0, 0.0], [1.0, 1.0, 1.0]]], dtype=torch.float64, requires_grad=True)
    u = disagreement(p)
    torch.testing.assert_close(u, torch.tensor([2.5, 0.0], dtype=torch.float64), atol=1e-6, rtol=0)
    u[0].backward()
    # u = |p1 − p0| / 2: ∂u/∂p1 = (p1 − p0) / (2 |p1 − p0|) = (0.3, 0.4, 0), ∂u/∂p0 its negative
    torch.testing.assert_close(p.grad[1, 0], torch.tensor([0.3, 0.4, 0.0], dtype=torch.float64))
    torch.testing.assert_close(p.grad[0, 0], -p.grad[1, 0])
    assert torch.isfinite(p.grad).all() and (p.grad[:, 1] == 0).all()  # members that agree: gradient 0, not NaN


def test_three_members_by_hand():
    p = torch.tensor([[[0.0, 0.0]], [[3.0, 0.0]], [[0.0, 3.0]]])
    # mean (1, 1); squared distances 2, 5, 5; their mean 4 → 2
    torch.testing.assert_close(disagreement(p), torch.tensor([2.0]), atol=1e-6, rtol=0)
    with pytest.raises(ValueError, match=r"K >= 2 members"):
        disagreement(p[:1])
    with pytest.raises(ValueError, match=r"K >= 2 members"):
        disagreement(p[:, 0])


@pytest.fixture(scope="module")
def envs():
    """The cube's state-model world plain and penalised by `cube_state_walls`' disagreement, same seeds."""
    plain = gym.make_vec("WMPushCube-v0", num_envs=4, vectorization_mode="vector_entry_point", **CUBE).unwrapped
    penalised = gym.make_vec("WMPushCube-v0", num_envs=4, vectorization_mode="vector_entry_point", **CUBE,
                             state_ensemble=("cube_state_walls",), disagreement_weight=2.0).unwrapped
    return plain, penalised


def test_the_penalised_world_loses_lambda_times_the_disagreement_in_value_and_gradient(envs, penalised_step):
    plain, penalised = envs
    assert isinstance(penalised.backend.penalty, EnsemblePenalty) and penalised.backend.penalty.weight == 2.0
    *_, expected = penalised_step(plain, penalised)
    assert (expected > 0).all()


def test_the_disagreement_is_the_two_models_half_distance_at_any_state(envs):
    """Two models (the world's own and one member): λ·|f_own − f_member| / 2 at each local state."""
    _, penalised = envs
    penalty = penalised.backend.penalty
    x = penalised.diff.reset(seed=5)
    action = torch.tensor([[1.0, 0.0, 0.0]]).expand(4, 3)
    own, member = penalty.predictions(x, action)
    torch.testing.assert_close(penalty(x, action), 2.0 * (own - member).norm(dim=-1) / 2, atol=1e-5, rtol=1e-5)
    same = EnsemblePenalty(penalty.local, [penalty.local.state_model], weight=1.0)
    assert same(x, action).max() < 1e-5  # a model agrees with itself
    positions = EnsemblePenalty(penalty.local, penalty.members, weight=3.0, dims=(0, 1, 4, 5))
    expected = 3.0 * (own - member)[:, [0, 1, 4, 5]].norm(dim=-1) / 2
    torch.testing.assert_close(positions(x, action), expected, atol=1e-5, rtol=1e-5)


def test_bad_ensembles_are_named(envs):
    _, penalised = envs
    local = penalised.backend.penalty.local
    with pytest.raises(ValueError, match="at least one member"):
        EnsemblePenalty(local, [], 1.0)
    with pytest.raises(ValueError, match="finite number > 0"):
        EnsemblePenalty(local, [local.state_model], -1.0)
    with pytest.raises(ValueError, match=r"distinct state columns in \[0, 8\)"):
        EnsemblePenalty(local, [local.state_model], 1.0, dims=(0, 8))
    with pytest.raises(ValueError, match="distinct state columns"):
        EnsemblePenalty(local, [local.state_model], 1.0, dims=(1, 1))
    from fog_envs.learned.factory import make_backend

    with pytest.raises(ValueError, match="neither is set"):
        make_backend("cube", 1, forward_model="state", local_model="state", state_ensemble=("cube_state_walls",))
    with pytest.raises(ValueError, match=r"disagreement_weight=1.0 .* pass state_ensemble"):
        make_backend("cube", 1, forward_model="state", local_model="state", disagreement_weight=1.0)
    with pytest.raises(ValueError, match="pass state_ensemble"):
        make_backend("cube", 1, forward_model="state", local_model="state", disagreement_dims=(0, 1))
    with pytest.raises(ValueError, match="needs forward_model='state'"):
        make_backend("cube", 1, local_model="state", state_ensemble=("cube_state_walls",), disagreement_weight=1.0)
    with pytest.raises(ValueError, match="trained for task"):
        make_backend("cube", 1, forward_model="state", local_model="state", state_ensemble=("pusht_state",),
                     disagreement_weight=1.0)


def test_the_agents_config_reaches_the_world():
    from fog_agent.train import AgentTrainConfig, make_envs, resolve_sapo_config

    cfg = AgentTrainConfig(env_id="WMPushCube-v0", preset="debug", forward_model="state", local_model="state",
                           state_ensemble=("cube_state_walls",), disagreement_weight=0.5,
                           disagreement_dims=(0, 1, 4, 5))
    penalty = make_envs(cfg, resolve_sapo_config(cfg)).backend.penalty
    assert penalty is not None and penalty.weight == 0.5 and len(penalty.members) == 1
    assert penalty.dims == (0, 1, 4, 5)


def test_the_bench_measures_each_step_of_a_collected_cube_dataset(tmp_path):
    """``benchmarks/bench_cube_disagreement.py`` on two short MuJoCo episodes: every step t ≥ 1 with a successor,
    its 'all' row the median of the errors and disagreements computed here by hand."""
    import json

    import numpy as np

    from benchmarks.bench_cube_disagreement import main, one_step_transitions
    from fog_envs.data.collect import CollectConfig, collect
    from fog_envs.wm.state_model import StateModel

    data = tmp_path / "cube.h5"
    collect(CollectConfig(env_id="RealPushCube-v0", out=data, num_episodes=2, seed=11, workers=1,
                          max_episode_steps=12))
    s_prev, s, action, s_next, true = one_step_transitions(str(data))
    assert len(s) == 2 * (12 - 2) and true.shape == (20, 6)
    out = tmp_path / "dis.json"
    assert main(["--state-model", "cube_state", "--members", "cube_state_walls", "--data", str(data),
                 "--threads", "1", "--out", str(out)]) == 0
    row = json.loads(out.read_text())["data"][str(data)]["all"]
    models = [StateModel.load(m, task="cube")[0] for m in ("cube_state", "cube_state_walls")]
    with torch.no_grad():
        args = [torch.from_numpy(v) for v in (s, s_prev, action)]
        own, other = (m.step(*args)[:, [0, 1, 4, 5]].numpy() for m in models)
    err = np.linalg.norm(own - s_next[:, [0, 1, 4, 5]], axis=-1)
    u = np.linalg.norm(own - other, axis=-1) / 2
    assert row["steps"] == 20
    assert row["err_median_mm"] == pytest.approx(np.median(err) * 1e3, rel=1e-4)
    assert row["u_median_mm"] == pytest.approx(np.median(u) * 1e3, rel=1e-3, abs=1e-3)
    assert -1.0 <= row["spearman_u_err"] <= 1.0


def test_the_cost_bench_times_every_world(tmp_path):
    """``benchmarks/bench_penalty_cost.py`` on a tiny batch: the three worlds timed, the ratios are theirs."""
    import json

    from benchmarks.bench_penalty_cost import main

    out = tmp_path / "cost.json"
    assert main(["--members", "cube_state_walls", "--num-envs", "2", "--horizon", "2", "--reps", "1",
                 "--out", str(out)]) == 0
    saved = json.loads(out.read_text())
    assert saved["plain"]["steps_per_s"] > 0 and saved["penalised"]["steps_per_s"] > 0
    assert saved["slowdown"] == pytest.approx(saved["penalised"]["window_s_median"] / saved["plain"]["window_s_median"])
    assert saved["ensemble_slowdown"] == pytest.approx(saved["ensemble"]["window_s_median"]
                                                       / saved["plain"]["window_s_median"])
