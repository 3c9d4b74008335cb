"""Reset starts of the push-cube world (fog_envs.real.cube_starts): the reference system's conditions, its
distribution, determinism, the share of a state-model world's starts they replace, bad input named."""

from __future__ import annotations

import sys
from dataclasses import replace
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest
import torch

import fog_envs  # noqa: F401  (registers the envs)
from fog_envs.real.cube import (ARENA_HALF_SIZE, CUBE_RESET_MARGIN, GOAL_CENTER, MIN_RESET_CUBE_GOAL,
                                MIN_RESET_ROBOT_CUBE, ROBOT_RESET_MARGIN)
from fog_envs.real.cube_starts import reset_like, reset_states
from fog_envs.wm.tasks import get_task

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from benchmarks.bench_start_states import ks  # noqa: E402


def test_the_ks_statistic_by_hand():
    """``bench_start_states.ks``, the measure of the distribution tests here: the largest gap between two CDFs."""
    assert ks(np.array([0.0, 1.0]), np.array([0.5, 1.5])) == 0.5
    assert ks(np.array([0.0, 1.0, 2.0, 3.0]), np.array([10.0, 11.0])) == 1.0
    assert ks(np.array([1.0, 2.0, 3.0]), np.array([3.0, 2.0, 1.0])) == 0.0


def _features(s: np.ndarray) -> dict[str, np.ndarray]:
    return {"robot x": s[:, 0], "robot y": s[:, 1], "cube x": s[:, 4], "cube y": s[:, 5],
            "robot yaw": np.arctan2(s[:, 3], s[:, 2]), "cube 4·yaw": np.arctan2(s[:, 7], s[:, 6]),
            "robot-cube": np.linalg.norm(s[:, 0:2] - s[:, 4:6], axis=1),
            "cube-goal": np.linalg.norm(s[:, 4:6] - np.asarray(GOAL_CENTER[:2]), axis=1)}


def test_reset_states_meet_the_reference_systems_conditions_and_fill_its_ranges():
    s = reset_states(2000, torch.Generator().manual_seed(0)).double().numpy()
    assert s.shape == (2000, 8)
    lim_r, lim_c = ARENA_HALF_SIZE - ROBOT_RESET_MARGIN, ARENA_HALF_SIZE - CUBE_RESET_MARGIN
    assert np.abs(s[:, 0:2]).max() <= lim_r and np.abs(s[:, 0:2]).max() > lim_r - 0.01
    assert np.abs(s[:, 4:6]).max() <= lim_c and np.abs(s[:, 4:6]).max() > lim_c - 0.01
    f = _features(s)
    assert f["robot-cube"].min() > MIN_RESET_ROBOT_CUBE and f["robot-cube"].min() < MIN_RESET_ROBOT_CUBE + 0.02
    assert f["cube-goal"].min() > MIN_RESET_CUBE_GOAL and f["cube-goal"].min() < MIN_RESET_CUBE_GOAL + 0.02
    np.testing.assert_allclose(np.linalg.norm(s[:, 2:4], axis=1), 1.0, atol=1e-6)
    np.testing.assert_allclose(np.linalg.norm(s[:, 6:8], axis=1), 1.0, atol=1e-6)
    assert reset_states(0, torch.Generator()).shape == (0, 8)


def test_reset_states_are_distributed_as_the_reference_systems_resets():
    """Against 400 seeded resets of ``RealPushCube-v0`` in the task's probe-target layout, every marginal and the
    two distances the reset conditions act on agree: KS statistic below 0.1 (the 0.1 % critical value for these
    sample sizes is 0.107; a uniform robot-cube distance without the conditions is off by 0.14)."""
    ours = _features(reset_states(2000, torch.Generator().manual_seed(1)).double().numpy())
    env = gym.make("RealPushCube-v0")
    real = np.array([env.reset(seed=10_000 + i)[1]["state"] for i in range(400)])
    env.close()
    theirs = _features(get_task("cube").probe_targets(real).astype(np.float64))
    for name in ours:
        assert ks(ours[name], theirs[name]) < 0.1, name
    rng = np.random.default_rng(2)  # the test can fail: positions drawn without the reset's conditions are told apart
    lim_r, lim_c = ARENA_HALF_SIZE - ROBOT_RESET_MARGIN, ARENA_HALF_SIZE - CUBE_RESET_MARGIN
    free = np.linalg.norm(rng.uniform(-lim_r, lim_r, (2000, 2)) - rng.uniform(-lim_c, lim_c, (2000, 2)), axis=1)
    assert ks(free, theirs["robot-cube"]) > 0.12


def test_draws_come_from_the_generator_alone_and_bad_input_is_named():
    a = reset_like(torch.zeros(16, 8), torch.Generator().manual_seed(3))
    b = reset_like(torch.ones(16, 8), torch.Generator().manual_seed(3))  # the given values are not used
    torch.testing.assert_close(a, b)
    assert not torch.equal(a, reset_like(torch.zeros(16, 8), torch.Generator().manual_seed(4)))
    assert reset_like(torch.zeros(2, 8, dtype=torch.float64), torch.Generator()).dtype == torch.float64
    with pytest.raises(ValueError, match=r"shape \(N, 8\), got \(3, 6\)"):
        reset_like(torch.zeros(3, 6), torch.Generator())
    with pytest.raises(ValueError, match="n must be >= 0"):
        reset_states(-1, torch.Generator())


def test_reset_starts_replace_that_share_of_a_state_worlds_starts_at_rest_and_leave_the_rest(redrawn_starts,
                                                                                              one_thread):
    """``reset_starts=f``: each start is, with probability f, a reference-reset state at rest; the others are the
    real windows exactly as without the option."""
    from fog_envs.learned.factory import make_backend

    kw = {"forward_model": "state", "local_model": "state", "state_model": "cube_state", "bf16": False}
    x0, s = redrawn_starts(make_backend("cube", 64, **kw), make_backend("cube", 64, reset_starts=0.5, **kw))
    assert (s[:, 0:2] - s[:, 4:6]).norm(dim=-1).min() > MIN_RESET_ROBOT_CUBE
    # the play windows keep the robot near the cube, the resets do not: what the option is for
    assert (x0[:, 0:2] - x0[:, 4:6]).norm(dim=-1).median() < 0.6 < (s[:, 0:2] - s[:, 4:6]).norm(dim=-1).median()


def test_bad_reset_starts_are_named():
    from fog_agent.train import AgentTrainConfig, make_envs, resolve_sapo_config
    from fog_envs.learned.factory import make_backend
    from fog_envs.learned.wm_backend import WorldModelBackend

    with pytest.raises(ValueError, match=r"reset_starts is a fraction of episode starts in \[0, 1 - goal_starts\] "
                                         r"= \[0, 0.75\], got 0.8"):
        make_backend("pusht", 1, forward_model="state", local_model="state", reset_starts=0.8, goal_starts=0.25)
    world = make_backend("cube", 1, forward_model="state", local_model="state")
    world.model.task = replace(world.model.task, reset_start=None)  # a task without the sampler
    with pytest.raises(ValueError, match="task 'cube' has no reset-start sampler"):
        WorldModelBackend(world.model, 1, forward_model="state", state_local=world.state_local, reset_starts=0.5)
    with pytest.raises(ValueError, match="reset_starts replaces a state-model world's start state"):
        make_backend("cube", 1, local_model="state", reset_starts=0.5)
    with pytest.raises(ValueError, match="not the toy env"):
        make_backend("toy", 1, reset_starts=0.5)
    cfg = AgentTrainConfig(env_id="WMPushCube-v0", preset="debug", forward_model="state", local_model="state",
                           reset_starts=0.25)
    assert make_envs(cfg, resolve_sapo_config(cfg)).backend.reset_starts == 0.25


def test_the_start_states_benchmark_sets_the_worlds_starts_beside_the_resets(tmp_path, one_thread):
    """``benchmarks/bench_start_states.py`` on a few resets: the world's starts keep the robot beside the cube, the
    reference resets and the sampler do not, and the JSON holds every set's percentiles."""
    import json

    from benchmarks.bench_start_states import main

    out = tmp_path / "starts.json"
    res = main(["--tasks", "cube", "--resets", "30", "--draws", "200", "--out", str(out)])
    assert json.loads(out.read_text()) == res
    row = res["tasks"]["cube"]
    assert row["counts"] == {"world_starts": 512, "reference_resets": 30, "reset_sampler": 200}
    d = row["measures"]["pusher_object"]
    assert d["world_starts"][1] < MIN_RESET_ROBOT_CUBE < min(d["reference_resets"][0], d["reset_sampler"][0])
    assert set(row["measures"]) == {"pusher_object", "object_goal", "object_wall_gap"}


def test_the_cube_recipe_of_item_36_builds_from_shipped_bundles_alone():
    """The λ 30 recipe with reset starts names only shipped bundles: the agent-play state model and its two ensemble
    members load by name as cube models with distinct weights, and the training config builds their penalised world."""
    from fog_agent.train import AgentTrainConfig, make_envs, resolve_sapo_config
    from fog_envs.learned.disagreement import EnsemblePenalty
    from fog_envs.wm.state_model import StateModel

    names = ("cube_state_agent1", "cube_state_agent1_m1", "cube_state_agent1_m2")
    models = [StateModel.load(name, task="cube")[0] for name in names]
    first = [p.detach() for p in models[0].parameters()]
    for other in models[1:]:
        assert any(not torch.equal(a, b.detach()) for a, b in zip(first, other.parameters()))
    cfg = AgentTrainConfig(env_id="WMPushCube-v0", preset="debug", forward_model="state", local_model="state",
                           state_model=names[0], state_ensemble=names[1:], disagreement_weight=30.0,
                           disagreement_dims=(0, 1, 4, 5), reset_starts=0.5)
    backend = make_envs(cfg, resolve_sapo_config(cfg)).backend
    assert isinstance(backend.penalty, EnsemblePenalty) and backend.reset_starts == 0.5


def test_near_goal_starts_put_the_cube_by_the_goal_and_the_robot_beside_it():
    from fog_envs.real.cube_starts import CubeGoalStartConfig, near_goal

    cfg = CubeGoalStartConfig(radius_m=0.6, robot_ring_m=(0.4, 0.7))
    s = near_goal(torch.zeros(2000, 8), torch.Generator().manual_seed(0), cfg).double().numpy()
    f = _features(s)
    lim_r, lim_c = ARENA_HALF_SIZE - ROBOT_RESET_MARGIN, ARENA_HALF_SIZE - CUBE_RESET_MARGIN
    assert f["cube-goal"].max() <= 0.6 and np.abs(s[:, 4:6]).max() <= lim_c and np.abs(s[:, 0:2]).max() <= lim_r
    assert 0.4 <= f["robot-cube"].min() and f["robot-cube"].max() <= 0.7
    # inside the goal, short of it and past it toward the corner (both coordinates beyond the goal's centre)
    inside = f["cube-goal"] < 0.25
    past = (s[:, 4:6] > np.asarray(GOAL_CENTER[:2])).all(1) & ~inside
    assert 0.1 < inside.mean() < 0.3 and past.mean() > 0.05 and (~inside & ~past).mean() > 0.5
    # the robot on every side of the cube: the direction cube → robot covers all four quadrants (north-east the
    # least, 276 of 2000: the corner leaves the least room there); past the goal, mostly on the goal's side
    side = np.arctan2(s[:, 1] - s[:, 5], s[:, 0] - s[:, 4])
    assert np.histogram(side, bins=4, range=(-np.pi, np.pi))[0].min() > 200
    assert (side[past] < -np.pi / 2).mean() > 0.5
    np.testing.assert_allclose(np.linalg.norm(s[:, 2:4], axis=1), 1.0, atol=1e-6)
    a = near_goal(torch.ones(8, 8), torch.Generator().manual_seed(5))
    torch.testing.assert_close(a, near_goal(torch.zeros(8, 8), torch.Generator().manual_seed(5)))
    assert not torch.equal(a, near_goal(torch.zeros(8, 8), torch.Generator().manual_seed(6)))
    with pytest.raises(ValueError, match=r"shape \(N, 8\), got \(3, 6\)"):
        near_goal(torch.zeros(3, 6), torch.Generator())
    with pytest.raises(ValueError, match="robot_ring_m"):
        CubeGoalStartConfig(robot_ring_m=(0.7, 0.4))


def test_goal_starts_replace_that_share_of_a_cube_worlds_starts_at_rest(redrawn_starts, one_thread):
    from fog_envs.learned.factory import make_backend

    kw = {"forward_model": "state", "local_model": "state", "state_model": "cube_state", "bf16": False}
    _, s = redrawn_starts(make_backend("cube", 64, **kw), make_backend("cube", 64, goal_starts=0.5, **kw))
    assert (s[:, 4:6] - torch.tensor(GOAL_CENTER[:2], dtype=s.dtype)).norm(dim=-1).max() <= 0.6 + 1e-5
    assert (s[:, 0:2] - s[:, 4:6]).norm(dim=-1).min() >= 0.4 - 1e-5


def test_near_wall_starts_are_the_resets_with_the_cube_by_a_wall():
    """``near_wall`` is the reference resets conditioned on the cube within ``band_m`` of its reset limit: every draw
    meets the reset conditions and lies in the band, and against the resets kept by the same condition every
    marginal agrees (KS < 0.05 at 4,000 against ~5,000; the unconditioned resets differ in the cube's distance from
    its nearest wall by far more)."""
    from fog_envs.real.cube_starts import CubeWallStartConfig, near_wall

    lim_c = ARENA_HALF_SIZE - CUBE_RESET_MARGIN
    s = near_wall(torch.zeros(4000, 8), torch.Generator().manual_seed(5), CubeWallStartConfig(band_m=0.15))
    s = s.double().numpy()
    edge = np.abs(s[:, 4:6]).max(1)
    assert edge.min() >= lim_c - 0.15 and edge.max() <= lim_c
    f = _features(s)
    assert f["robot-cube"].min() > MIN_RESET_ROBOT_CUBE and f["cube-goal"].min() > MIN_RESET_CUBE_GOAL
    resets = reset_states(20000, torch.Generator().manual_seed(6)).double().numpy()
    kept = resets[np.abs(resets[:, 4:6]).max(1) >= lim_c - 0.15]
    assert 0.2 < len(kept) / len(resets) < 0.3  # a quarter of the resets already start in the band
    theirs = _features(kept)
    for name in f:
        assert ks(f[name], theirs[name]) < 0.05, name
    assert ks(edge, np.abs(resets[:, 4:6]).max(1)) > 0.5


def test_near_wall_draws_come_from_the_generator_and_bad_input_is_named():
    from fog_envs.real.cube_starts import CubeWallStartConfig, near_wall

    a = near_wall(torch.zeros(8, 8), torch.Generator().manual_seed(1))
    torch.testing.assert_close(a, near_wall(torch.ones(8, 8), torch.Generator().manual_seed(1)))
    assert near_wall(torch.zeros(2, 8, dtype=torch.float64), torch.Generator()).dtype == torch.float64
    with pytest.raises(ValueError, match=r"shape \(N, 8\), got \(2, 5\)"):
        near_wall(torch.zeros(2, 5), torch.Generator())
    with pytest.raises(ValueError, match="band_m must be > 0, got 0"):
        CubeWallStartConfig(band_m=0)


def test_wall_starts_replace_that_share_of_a_state_worlds_starts_with_cubes_by_a_wall(redrawn_starts, one_thread):
    """``wall_starts=f``: each start is, with probability f, a near-wall reset at rest; the others are the real
    windows exactly as without the option; with reset starts too, the draw that decides keeps them disjoint."""
    from fog_envs.learned.factory import make_backend

    lim_c = ARENA_HALF_SIZE - CUBE_RESET_MARGIN
    kw = {"forward_model": "state", "local_model": "state", "state_model": "cube_state", "bf16": False}
    _, s = redrawn_starts(make_backend("cube", 64, **kw), make_backend("cube", 64, wall_starts=0.5, **kw))
    assert s[:, 4:6].abs().amax(-1).min() >= lim_c - 0.15 - 1e-5
    both = make_backend("cube", 256, reset_starts=0.5, wall_starts=0.5, **kw)
    both.reset(torch.arange(256), [torch.Generator().manual_seed(i) for i in range(256)])
    edge = both.state()[:, 4:6].abs().amax(-1)
    assert 0.55 < float((edge >= lim_c - 0.15 - 1e-5).float().mean()) < 0.75  # ~0.5 + 0.5 × the resets' 0.25


def test_bad_wall_starts_are_named():
    from fog_agent.train import AgentTrainConfig, make_envs, resolve_sapo_config
    from fog_envs.learned.factory import make_backend
    from fog_envs.learned.wm_backend import WorldModelBackend

    kw = {"forward_model": "state", "local_model": "state"}
    with pytest.raises(ValueError, match=r"wall_starts is a fraction of episode starts in \[0, 1 - goal_starts - "
                                         r"reset_starts\] = \[0, 0.25\], got 0.5"):
        make_backend("cube", 1, reset_starts=0.5, goal_starts=0.25, wall_starts=0.5, **kw)
    with pytest.raises(ValueError, match=r"goal_starts is a fraction of episode starts in \[0, 1\], got 1.5"):
        make_backend("cube", 1, goal_starts=1.5, **kw)
    with pytest.raises(ValueError, match="goal_starts moves the object of a state-model world's start state"):
        make_backend("cube", 1, local_model="state", goal_starts=0.5)
    with pytest.raises(ValueError, match="task 'pusht' has no near-wall start sampler"):
        make_backend("pusht", 1, wall_starts=0.5, **kw)
    world = make_backend("cube", 1, **kw)
    with pytest.raises(ValueError, match="wall_starts replaces a state-model world's start state"):
        WorldModelBackend(world.model, 1, forward_model="rssm", wall_starts=0.5)
    with pytest.raises(ValueError, match="goal_starts, reset_starts and wall_starts apply"):
        make_backend("toy", 1, wall_starts=0.5)
    cfg = AgentTrainConfig(env_id="WMPushCube-v0", preset="debug", forward_model="state", local_model="state",
                           wall_starts=0.25)
    assert make_envs(cfg, resolve_sapo_config(cfg)).backend.wall_starts == 0.25


def test_the_wall_gap_benchmark_splits_by_the_cubes_gap_to_its_nearest_wall(tmp_path):
    """``benchmarks/cube_wall_gap.py``: the gap by hand (arena 1.5 m, cube half size 0.09 m), the split's counts and
    rates, and a fog-eval JSON of another env refused by name."""
    import json

    from benchmarks.cube_wall_gap import main, split, wall_gap

    states = np.array([[0, 0, 0, 1.2, 0.0, 0], [0, 0, 0, 0.3, -1.35, 0], [0, 0, 0, 0.0, 0.0, 0]])
    np.testing.assert_allclose(wall_gap(states), [0.21, 0.06, 1.41])
    r = split(np.array([True, False, True]), wall_gap(states), 0.30)
    assert r == {"near": 2, "far": 1, "near_success": 0.5, "far_success": 1.0, "success": pytest.approx(2 / 3)}
    bad = tmp_path / "eval.json"
    bad.write_text(json.dumps({"env_id": "RealPushT-v0", "seed": 0, "episodes": 1, "successes": [True]}))
    with pytest.raises(SystemExit):
        main(["--eval", str(bad), "--out", str(tmp_path / "out.json")])
    good = tmp_path / "cube.json"
    good.write_text(json.dumps({"env_id": "RealPushCube-v0", "seed": 100_000, "episodes": 4,
                                "successes": [True, False, True, True]}))
    res = main(["--eval", str(good), "--eval", str(good), "--out", str(tmp_path / "out.json")])
    assert json.loads((tmp_path / "out.json").read_text()) == res
    assert res["rows"][0]["near"] + res["rows"][0]["far"] == 4 and res["pooled"]["near"] == 2 * res["rows"][0]["near"]
    assert res["pooled"]["success"] == 0.75
    listed = main(["--list-near", "100000", "3", "--out", str(tmp_path / "unused.json")])["seeds"]
    assert len(listed) == 3 and listed == sorted(listed) and listed[0] >= 100_000
    from benchmarks.cube_wall_gap import reset_states

    assert (wall_gap(reset_states(listed)) < 0.30).all()
    seeds_eval = tmp_path / "seeds.json"
    seeds_eval.write_text(json.dumps({"env_id": "RealPushCube-v0", "seed": listed[0], "episodes": 3,
                                      "episode_seeds": listed, "successes": [True, False, False]}))
    res = main(["--eval", str(seeds_eval), "--out", str(tmp_path / "out2.json")])
    assert res["pooled"]["near"] == 3 and res["pooled"]["near_success"] == pytest.approx(1 / 3)
