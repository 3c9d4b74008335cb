"""benchmarks/bench_cube_handover.py: how failed cube episodes end, and the bench on two debug agents."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.bench_cube_handover import beyond_goal, ending, main  # noqa: E402


def test_endings_by_hand():
    # [robot_x, robot_y, robot_yaw, cube_x, cube_y, cube_yaw]
    assert ending(np.array([1.0, -1.0, 0.0, 1.38, -1.0, 0.0])) == "pinned"  # cube 3 cm from the east wall
    assert ending(np.array([0.0, 0.0, 0.0, 0.2, -1.39, 0.0])) == "pinned"
    assert ending(np.array([-1.3, -1.35, 0.0, -0.5, -0.5, 0.0])) == "stuck"  # robot in a corner, cube 1.2 m off
    assert ending(np.array([-1.3, -1.35, 0.0, -1.0, -1.1, 0.0])) == "other"  # robot at the wall, but at the cube
    assert ending(np.array([0.0, 0.0, 0.0, 0.9, 0.3, 0.0])) == "other"  # robot far from the cube, in the open


def test_the_bench_runs_two_debug_agents_alone_and_taking_turns(tmp_path):
    from fog_agent.train import AgentTrainConfig, train_agent

    runs = []
    for seed in (0, 1):
        run = tmp_path / f"cube{seed}"
        train_agent(AgentTrainConfig(env_id="WMPushCube-v0", preset="debug", run_dir=str(run), seed=seed,
                                     local_model="state", forward_model="state", eval_env_id=None), progress=False)
        runs += ["--run-dir", str(run)]
    out = tmp_path / "handover.json"
    assert main([*runs, "--episodes", "1", "--patience", "1", "--out", str(out)]) == 0
    saved = json.loads(out.read_text())
    assert [r["setting"] for r in saved["rows"]] == ["cube0", "cube1", "handover, patience 1"]
    for row in saved["rows"]:
        assert len(row["successes"]) == len(row["handovers"]) == len(row["endings"]) == 1
        assert row["pinned"] + row["stuck"] + row["other"] == 1 - sum(row["successes"])
        assert len(row["last_states"]) == 1 and len(row["last_states"][0]) == 6
        assert row["beyond_goal"] == sum(bool(beyond_goal(np.array(x)))
                                         for ok, x in zip(row["successes"], row["last_states"]) if not ok)
    # patience 1: every step without progress hands over, and a debug agent seldom progresses
    assert saved["rows"][0]["handovers"] == [0] and saved["rows"][2]["handovers"][0] > 10
    # --deployed: from the frames, as fog-eval --deployment cube deploys it; no patience: the agents alone only
    deployed = tmp_path / "deployed.json"
    assert main([*runs[:2], "--deployed", "--patience", "--episodes", "1", "--out", str(deployed)]) == 0
    saved = json.loads(deployed.read_text())
    assert saved["deployed"] and [r["setting"] for r in saved["rows"]] == ["cube0"]
    assert len(saved["rows"][0]["endings"]) == 1
    last = saved["rows"][0]["last_step"][0]  # the deployment's last reading, against the truth
    assert set(last) == {"robot_error_m", "cube_error_m", "lost"} and last["robot_error_m"] >= 0
