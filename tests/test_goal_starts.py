"""Start states of Push-T (fog_envs.real.pusht_starts): near the goal (where they lie, determinism, bad input) and
as gym-pusht's resets (their distribution)."""

from __future__ import annotations

import math
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from fog_envs.real.pusht_reward import AGENT_RADIUS, GOAL_POSE, coverage
from fog_envs.real.pusht_reward_torch import TABLE, distance_to_tee
from fog_envs.real.pusht_starts import GoalStartConfig, near_goal


def _states(n: int, seed: int = 0) -> torch.Tensor:
    """Probe-target states with the agent and block anywhere on the table and any block angle."""
    g = torch.Generator().manual_seed(seed)
    pos = 40 + 432 * torch.rand(n, 4, generator=g)
    ang = 2 * math.pi * torch.rand(n, generator=g)
    return torch.cat([pos / TABLE, ang.cos()[:, None], ang.sin()[:, None]], -1)


def test_block_lies_within_the_stated_distance_and_angle_of_the_goal_and_the_agent_outside_it():
    cfg = GoalStartConfig(radius_px=40.0, angle_deg=20.0)
    s = _states(400)
    out = near_goal(s, torch.Generator().manual_seed(1), cfg)
    assert out.shape == s.shape and out.dtype == s.dtype
    block = out[:, 2:4].double() * TABLE
    d = (block - torch.tensor(GOAL_POSE[:2])).norm(dim=-1)
    assert d.max() <= 40.0 + 1e-3 and d.min() < 10.0  # the whole disc is used
    assert torch.allclose(out[:, 4:6].norm(dim=-1), torch.ones(400), atol=1e-6)
    angle = torch.atan2(out[:, 5], out[:, 4]).double()
    d_angle = torch.remainder(angle - GOAL_POSE[2] + math.pi, 2 * math.pi) - math.pi
    assert d_angle.abs().max() <= math.radians(20.0) + 1e-5 and d_angle.abs().max() > math.radians(15.0)
    gap = distance_to_tee(out[:, 0:2].double() * TABLE, block, out[:, 4:6].double())
    assert gap.min() > AGENT_RADIUS
    kept = (out[:, 0:2] == s[:, 0:2]).all(-1)
    assert 0.5 < kept.float().mean() < 1.0  # agents clear of the block stay; the others were moved
    # a block at the goal pose itself covers it fully (the exact polygon coverage)
    exact = near_goal(s[:4], torch.Generator().manual_seed(2), GoalStartConfig(radius_px=0.0, angle_deg=0.0))
    pose = np.array([*(exact[0, 2:4].double() * TABLE).tolist(), math.atan2(exact[0, 5], exact[0, 4])])
    assert coverage(pose) == pytest.approx(1.0, abs=1e-4)


def test_draws_come_from_the_generator_alone():
    s = _states(16)
    a = near_goal(s, torch.Generator().manual_seed(3))
    b = near_goal(s, torch.Generator().manual_seed(3))
    c = near_goal(s, torch.Generator().manual_seed(4))
    torch.testing.assert_close(a, b)
    assert not torch.equal(a, c)


def test_bad_input_is_named():
    with pytest.raises(ValueError, match=r"shape \(N, 6\)"):
        near_goal(torch.zeros(3, 5), torch.Generator())
    with pytest.raises(ValueError, match="must be >= 0"):
        GoalStartConfig(radius_px=-1.0)
    from fog_envs.learned.factory import make_backend

    with pytest.raises(ValueError, match="not the toy env"):
        make_backend("toy", 1, goal_starts=0.5)


def test_goal_frames_are_seeded_near_goal_renders_whose_states_round_trip():
    """``fog_envs.real.pusht_goal_frames``: the same seed gives the same poses and frames, every block lies within
    the config's distance and angle of the goal, the frame is the reference system's at that pose, and
    ``probe_to_true`` inverts the task's probe targets."""
    import gymnasium as gym

    from fog_envs.real.pusht_goal_frames import goal_frames, goal_poses, probe_to_true
    from fog_envs.real.pusht_reward import GOAL_POSE
    from fog_envs.real.pusht_starts import GoalStartConfig
    from fog_envs.wm.tasks import get_task

    cfg = GoalStartConfig(radius_px=5.0, angle_deg=3.0)
    frames, poses = goal_frames(6, seed=2, config=cfg)
    again, same = goal_frames(6, seed=2, config=cfg)
    np.testing.assert_array_equal(frames, again)
    np.testing.assert_array_equal(poses, same)
    assert frames.shape == (6, 64, 64, 3) and frames.dtype == np.uint8
    assert not np.array_equal(goal_poses(6, seed=3, config=cfg), poses)
    assert np.all(np.linalg.norm(poses[:, 2:4] - GOAL_POSE[:2], axis=1) <= 5.0 + 1e-9)
    d_angle = (poses[:, 4] - GOAL_POSE[2] + np.pi) % (2 * np.pi) - np.pi
    assert np.all(np.abs(d_angle) <= np.radians(3.0) + 1e-9)
    env = gym.make("RealPushT-v0")
    np.testing.assert_array_equal(env.reset(seed=0, options={"reset_to_state": poses[4]})[0], frames[4])
    env.close()
    np.testing.assert_allclose(probe_to_true(get_task("pusht").probe_targets(poses)), poses, atol=1e-4)
    assert goal_frames(0, seed=0)[0].shape == (0, 64, 64, 3)


def test_reset_starts_are_distributed_as_gym_pushts_resets():
    """``pusht_starts.reset_like`` against 1,000 seeded resets of ``RealPushT-v0`` in the probe-target layout:
    every column's KS statistic below 0.075 (the 0.1 % critical value for these sample sizes); the given states'
    values are not used; the draws come from the generator; bad shapes named."""
    import gymnasium as gym

    import fog_envs  # noqa: F401  (registers the envs)
    from fog_envs.real.pusht_starts import RESET_AGENT_PX, RESET_BLOCK_PX, reset_like
    from fog_envs.wm.tasks import get_task

    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    from benchmarks.bench_start_states import ks

    ours = reset_like(torch.zeros(2000, 6), torch.Generator().manual_seed(0)).double().numpy()
    env = gym.make("RealPushT-v0", obs_type="state")
    real = np.array([env.reset(seed=20_000 + i)[1]["state"] for i in range(1000)])
    env.close()
    theirs = get_task("pusht").probe_targets(real).astype(np.float64)

    for k in range(6):
        assert ks(ours[:, k], theirs[:, k]) < 0.075, k
    px = ours[:, :4] * TABLE
    np.testing.assert_allclose(px, px.round(), atol=1e-6)  # integer pixels, as gym-pusht draws them
    assert px[:, :2].min() == RESET_AGENT_PX[0] and px[:, :2].max() == RESET_AGENT_PX[1] - 1
    assert px[:, 2:].min() == RESET_BLOCK_PX[0] and px[:, 2:].max() == RESET_BLOCK_PX[1] - 1
    assert ks(ours[:, 0], theirs[:, 2]) > 0.075  # the agent's wider range is told apart from the block's
    a = reset_like(torch.ones(8, 6), torch.Generator().manual_seed(5))
    torch.testing.assert_close(a, reset_like(torch.zeros(8, 6), torch.Generator().manual_seed(5)))
    assert not torch.equal(a, reset_like(torch.zeros(8, 6), torch.Generator().manual_seed(6)))
    with pytest.raises(ValueError, match=r"shape \(N, 6\), got \(2, 8\)"):
        reset_like(torch.zeros(2, 8), torch.Generator())
