"""benchmarks/bench_cube_imagined_endings.py: cube agents' unfinished imagined episodes, classified by their ending."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.bench_cube_handover import beyond_goal, pinned  # noqa: E402
from benchmarks.bench_cube_imagined_endings import endings, main, probe_to_state  # noqa: E402
from fog_envs.wm.tasks import TASKS  # noqa: E402


def test_probe_targets_map_back_to_the_true_state():
    true = np.array([[0.3, -1.2, 2.5, 0.75, 0.7, 0.3], [-1.0, 0.4, -0.4, 1.2, -1.39, -0.7]])
    back = probe_to_state(TASKS["cube"].probe_targets(true))
    np.testing.assert_allclose(back[:, [0, 1, 2, 3, 4]], true[:, [0, 1, 2, 3, 4]], atol=1e-6)
    # the cube looks the same every 90°: its yaw comes back modulo π/2, as it was within ±π/4 (0.3, −0.7)
    np.testing.assert_allclose(back[:, 5], true[:, 5], atol=1e-6)
    with pytest.raises(ValueError, match="8 entries"):
        probe_to_state(np.zeros((2, 6)))


def test_pinned_and_beyond_goal_by_hand():
    states = np.array([[1.0, -1.0, 0.0, 1.38, -1.0, 0.0], [0.0, 0.0, 0.0, 0.2, 0.3, 0.0],
                       [0.9, 0.8, 0.0, 1.1, 1.2, 0.0], [0.9, 0.8, 0.0, 1.1, 0.7, 0.0]])
    assert pinned(states).tolist() == [True, False, False, False] and pinned(states[0]) is True
    # the goal sits at (0.75, 0.75): beyond it means both coordinates past it, toward the corner
    assert beyond_goal(states).tolist() == [False, False, True, False] and beyond_goal(states[2]) is True


def test_endings_by_hand():
    # three episodes, 3 steps: finished; failed with the cube pinned on the east wall at the end, standing still;
    # failed in the open, the cube still moving, pinned on the way (step 1)
    s = np.zeros((3, 3, 6))
    s[:, 0] = [0.6, 0.6, 0.0, 0.75, 0.75, 0.0]
    s[:, 1] = [1.0, -1.0, 0.0, 1.38, -1.0, 0.0]
    s[:, 2] = [[0.0, 0.0, 0.0, 0.2, 0.3, 0.0], [0.0, 0.0, 0.0, 1.39, 0.3, 0.0], [0.0, 0.0, 0.0, 0.3, 0.3, 0.0]]
    out = endings(s, np.array([True, False, False]), tail=2)
    assert (out["failed"], out["pinned"], out["stuck"], out["other"]) == (2, 1, 0, 1)
    assert out["ever_pinned"] == pytest.approx(2 / 3) and out["ever_pinned_failed"] == 1.0
    assert out["ever_pinned_finished"] == 0.0 and out["still_failed"] == 0.5
    assert out["beyond_goal"] == 0 and out["past_goal_line"] == 1  # the pinned cube: x 1.38 past the goal's 0.75
    goal = np.array([0.75, 0.75])
    d = [np.linalg.norm([1.38, -1.0] - goal), np.linalg.norm([0.3, 0.3] - goal)]
    assert out["median_last_goal_distance_failed"] == pytest.approx(np.median(d))
    assert out["median_last_robot_cube_distance_failed"] == pytest.approx(np.median([0.38, np.hypot(0.3, 0.3)]))


def test_the_bench_runs_a_debug_agent_in_its_own_world_and_another(tmp_path):
    from fog_agent.train import AgentTrainConfig, train_agent

    run = tmp_path / "cube"
    train_agent(AgentTrainConfig(env_id="WMPushCube-v0", preset="debug", run_dir=str(run), seed=0,
                                 local_model="state", forward_model="state", eval_env_id=None), progress=False)
    out = tmp_path / "endings.json"
    assert main(["--run-dir", str(run), "--world", "cube_state", "--episodes", "4", "--out", str(out)]) == 0
    rows = json.loads(out.read_text())["rows"]
    assert [r["own"] for r in rows] == [True, False] and rows[1]["world"] == "cube_state"
    for r in rows:
        assert r["pinned"] + r["stuck"] + r["other"] == r["failed"] == round(4 * (1 - r["success_rate"]))
