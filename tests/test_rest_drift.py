"""Contracts of benchmarks/bench_rest_drift.py: goal poses, action sequences, rest detection, the goal gap."""

from __future__ import annotations

import numpy as np
import pytest

from benchmarks.bench_rest_drift import action_sequences, at_goal, goal_gap_change, resting
from fog_envs.real.pusht_reward import GOAL_POSE
from fog_envs.wm.tasks import get_task


def _targets(states: list[list[float]]) -> np.ndarray:
    return get_task("pusht").probe_targets(np.asarray(states, dtype=np.float64))


def test_at_goal_moves_only_the_block() -> None:
    states = np.array([[100.0, 200.0, 300.0, 350.0, 0.3], [50.0, 60.0, 70.0, 80.0, -1.0]])
    out = at_goal("pusht", states)
    np.testing.assert_allclose(out[:, 2:5], np.tile(GOAL_POSE, (2, 1)))
    np.testing.assert_array_equal(out[:, :2], states[:, :2])
    assert states[0, 2] == 300.0  # the input is not modified


def test_action_sequences_idle_is_zero_and_wander_is_seeded_and_bounded() -> None:
    spec = get_task("pusht")
    assert not action_sequences(spec, 3, 4, "idle", 0.3, 0).any()
    a = action_sequences(spec, 3, 4, "wander", 0.3, 7)
    assert a.shape == (3, 4, 2) and np.abs(a).max() <= 0.3
    np.testing.assert_array_equal(a, action_sequences(spec, 3, 4, "wander", 0.3, 7))
    assert not np.array_equal(a, action_sequences(spec, 3, 4, "wander", 0.3, 8))


def test_resting_looks_at_the_block_not_the_agent() -> None:
    spec = get_task("pusht")
    still_block = _targets([[100, 100, 300, 300, 0.5], [400, 100, 300, 300, 0.5]])  # the agent walks
    pushed = _targets([[100, 100, 300, 300, 0.5], [100, 100, 301, 300, 0.5]])  # the block moves 1 px
    assert resting(spec, np.stack([still_block, pushed])).tolist() == [True, False]


def test_goal_gap_change_against_hand_computed_values() -> None:
    spec, (gx, gy, gth) = get_task("pusht"), GOAL_POSE
    goal = _targets([[0, 0, gx, gy, gth]] * 2)
    # env 0 rests 30 px right of the goal; env 1 moves from 40 px below the goal to 10 px below and turns 0.2 rad
    # toward the goal angle (0.5 → 0.3 rad off)
    still = _targets([[0, 0, gx + 30, gy, gth]] * 3)
    moving = _targets([[0, 0, gx, gy + 40, gth + 0.5], [0, 0, gx, gy + 25, gth + 0.4], [0, 0, gx, gy + 10, gth + 0.3]])
    out = goal_gap_change(spec, np.stack([still, moving]), goal, ("block_px", "block_deg"), [1, 2])
    assert out["1"]["block_px_change_mean"] == pytest.approx(-15 / 2, abs=1e-3)
    assert out["2"]["block_px_change_mean"] == pytest.approx(-30 / 2, abs=1e-3)
    assert out["2"]["block_deg_change_mean"] == pytest.approx(np.degrees(-0.2) / 2, abs=1e-3)
    assert out["2"]["block_px_closer"] == 0.5 and out["2"]["block_deg_closer"] == 0.5


def test_goal_gap_change_of_a_drift_away_is_positive() -> None:
    spec, (gx, gy, gth) = get_task("pusht"), GOAL_POSE
    goal = _targets([[0, 0, gx, gy, gth]])
    away = _targets([[0, 0, gx + 5, gy, gth], [0, 0, gx + 12, gy, gth]])
    out = goal_gap_change(spec, away[None], goal, ("block_px",), [1])
    assert out["1"]["block_px_change_mean"] == pytest.approx(7.0, abs=1e-3)
    assert out["1"]["block_px_closer"] == 0.0
