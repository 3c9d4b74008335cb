"""``benchmarks/bench_cube_model_gap.py``: the situations by hand, open-loop errors of a model that is exact and one
that stands still on a trajectory of known motion, and the bench end to end on a debug agent."""

from __future__ import annotations

import json

import numpy as np
import torch

from benchmarks.bench_cube_model_gap import SITUATIONS, main, open_loop_errors, situation


def test_situations_by_hand():
    assert situation(np.array([1.2, 0.0, 0.0, 1.41, 0.0, 0.0])) == "pinned"  # touching, the cube at the +x wall
    assert situation(np.array([0.0, 0.0, 0.0, 0.35, 0.0, 0.0])) == "pushing_in_the_open"
    assert situation(np.array([0.0, -1.35, 0.0, 0.8, 0.8, 0.0])) == "robot_at_wall"
    assert situation(np.array([0.0, 0.0, 0.0, 0.8, 0.8, 0.0])) == "free"
    assert set(SITUATIONS) == {"pinned", "robot_at_wall", "pushing_in_the_open", "free"}


class _Extrapolate:
    """A local model on ``[s_t, s_{t−1}]`` that repeats the last step's motion (``move=True``) or stands still."""

    sdim = 8

    def __init__(self, move: bool) -> None:
        self.move = move

    def step(self, x: torch.Tensor, action: torch.Tensor) -> torch.Tensor:
        s, s_prev = x[..., :8], x[..., 8:]
        return torch.cat([s + (s - s_prev) if self.move else s, s], -1)


def test_open_loop_errors_of_an_exact_and_a_still_model():
    """The robot drives 0.02 m per step along +x in the open, the cube rests far away: extrapolating the motion
    is exact (zero error), standing still is off by 0.02 m per step of the horizon, which is the real motion."""
    T, horizon = 30, 4
    states = np.zeros((T, 6))
    states[:, 0] = -0.5 + 0.02 * np.arange(T)
    states[:, 3:5] = (1.0, 1.0)
    actions = np.zeros((T, 3), dtype=np.float32)
    exact = open_loop_errors(_Extrapolate(True), [states], [actions], horizon)["free"]
    still = open_loop_errors(_Extrapolate(False), [states], [actions], horizon)["free"]
    assert exact["steps"] == still["steps"] == T - horizon - 1
    assert exact["robot_err_median"] < 1e-5 and exact["cube_err_p90"] < 1e-6
    np.testing.assert_allclose([still["robot_err_median"], still["robot_moved_median"]], 0.02 * horizon, atol=1e-5)
    assert open_loop_errors(_Extrapolate(True), [states], [actions], horizon)["pinned"] == {"steps": 0}


def test_the_bench_runs_on_a_debug_agent(tmp_path):
    """One real episode of a two-iteration debug agent: the JSON pairs the model's episode with the real one."""
    from fog_agent.train import AgentTrainConfig, train_agent

    run = tmp_path / "cube"
    train_agent(AgentTrainConfig(env_id="WMPushCube-v0", preset="debug", run_dir=str(run), local_model="state",
                                 forward_model="state", eval_env_id=None), progress=False)
    out = tmp_path / "gap.json"
    assert main(["--run-dir", str(run), "--episodes", "1", "--horizon", "3", "--out", str(out)]) == 0
    saved = json.loads(out.read_text())
    model = saved["models"]["cube_state"]
    assert sum(model["paired"].values()) == 1 and len(model["imagined_successes"]) == 1
    assert sum(model["open_loop"][k]["steps"] for k in SITUATIONS) == 200 - 3 - 1
