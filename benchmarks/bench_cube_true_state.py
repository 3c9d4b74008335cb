"""The cube agent's ceiling for perception: its actor acting on the true state, next to a deployment from the frames.

    MUJOCO_GL=egl python benchmarks/bench_cube_true_state.py --run-dir runs/cube_g98_s0 \\
        --compare runs/cube_g98_s0/eval_RealPushCube-v0.json [--episodes 50] [--seed 100000]

Runs the agent's deterministic actor on ``RealPushCube-v0``'s seeded episodes with its local state built from the
simulator's true state (the task's probe targets, no frame read) instead of a reading of the ego frame: what the
agent does where perception is perfect, and where it fails then (the robot held near a wall, the cube's start far
from the goal). With ``--compare`` (an evaluation JSON of the same run, episodes and seed,
e.g. ``fog-eval --deployment cube``'s), the episodes each one finishes that the other does not. Prints a line and
writes JSON (default ``benchmarks/results/cube_true_state_<run name>.json``).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.agent_runs_cli import write_results  # noqa: E402
from fog_agent.evaluate import learned_env_for, load_agent  # noqa: E402
from fog_agent.run_io import checkpoint_path  # noqa: E402
from fog_envs.evaluation import evaluate  # noqa: E402
from fog_envs.real.cube_scene import ARENA_HALF_SIZE  # noqa: E402
from fog_envs.wm.tasks import get_task  # noqa: E402


class TrueStateController:
    """``fog_envs.evaluation.Controller``: the agent's deterministic actor on ``[s_t, s_{t−1}]`` built from the true
    state each step's ``info["state"]`` carries (the cube task's probe targets of it), no frame read."""

    def __init__(self, agent: Any, local: Any, wall_margin: float = 0.3) -> None:
        self.agent, self.local, self.wall_margin = agent, local, wall_margin
        self.x: torch.Tensor | None = None
        self._fresh = True
        self.start_goal_distance: list[float] = []
        """per episode: the cube's distance from the goal at the start (m)"""
        self.steps_near_wall: list[int] = []
        """per episode: the steps at which the robot's centre is within ``wall_margin`` of a wall"""
        self.states: list[list[np.ndarray]] = []
        """per episode: the true state (6,) the actor saw at each step"""
        self.actions: list[list[np.ndarray]] = []
        """per episode: the action (3,) it took there"""

    @staticmethod
    def _reading(info: dict[str, Any]) -> torch.Tensor:
        return torch.from_numpy(get_task("cube").probe_targets(np.asarray(info["state"])[None]).astype(np.float32))

    def reset(self, obs: np.ndarray, info: dict[str, Any]) -> None:
        self.x, self._fresh = self.local.start(self._reading(info)), True
        if hasattr(self.agent, "reset"):  # an ensemble that follows the episode (fog_agent.ensemble.StallHandover)
            self.agent.reset()
        self.start_goal_distance.append(float(info["cube_goal_distance"]))
        self.steps_near_wall.append(0)
        self.states.append([])
        self.actions.append([])

    def act(self, obs: np.ndarray, info: dict[str, Any]) -> np.ndarray:
        if not self._fresh:
            self.x = self.local.advance(self.x, self._reading(info))
        self._fresh = False
        self.steps_near_wall[-1] += int(np.abs(info["state"][:2]).max() > ARENA_HALF_SIZE - self.wall_margin)
        action = self.agent.act(self.x, deterministic=True).squeeze(0).cpu().numpy()
        action = np.clip(action.astype(np.float32), -1.0, 1.0)
        self.states[-1].append(np.asarray(info["state"], dtype=np.float64).copy())
        self.actions[-1].append(action)
        return action


def load_cube_agent(run_dir: str) -> tuple[Any, dict[str, Any]]:
    """``(agent, checkpoint)`` of ``run_dir``, which must hold a cube agent with ``local_model='state'``."""
    agent, ckpt = load_agent(checkpoint_path(run_dir))
    if ckpt.get("local_model") != "state" or ckpt["env_id"] != "WMPushCube-v0":
        raise ValueError(f"{run_dir}: a cube agent with local_model='state' is needed, got {ckpt['env_id']} with "
                         f"local_model={ckpt.get('local_model')!r}")
    return agent, ckpt


def true_state_episodes(run_dir: str, episodes: int, seed: int) -> dict[str, list]:
    """Per episode (i: seed + i) of ``run_dir``'s actor on the true state: ``successes``, the cube's
    ``start_goal_distance`` (m), the ``steps_near_wall`` (the robot within 0.3 m of a wall), and the ``states``
    (T, 6) it saw and ``actions`` (T, 3) it took."""
    agent, ckpt = load_cube_agent(run_dir)
    controller = TrueStateController(agent, learned_env_for(ckpt).backend.state_local)
    result = evaluate(lambda: controller, "RealPushCube-v0", episodes=episodes, seed=seed, video_dir=None,
                      video_episodes=0)
    return {"successes": [bool(s) for s in result.successes],
            "start_goal_distance": controller.start_goal_distance, "steps_near_wall": controller.steps_near_wall,
            "states": [np.stack(s) for s in controller.states], "actions": [np.stack(a) for a in controller.actions]}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--run-dir", required=True)
    parser.add_argument("--compare", nargs="*", default=[], help="evaluation JSONs of the same run and episodes")
    parser.add_argument("--episodes", type=int, default=50)
    parser.add_argument("--seed", type=int, default=100_000)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--out", default=None)
    args = parser.parse_args(argv)
    if args.episodes < 1:
        parser.error(f"--episodes must be >= 1, got {args.episodes}")
    torch.set_num_threads(args.threads)
    t0 = time.perf_counter()
    eps = true_state_episodes(args.run_dir, args.episodes, args.seed)
    truth = eps["successes"]
    ok = np.asarray(truth)
    walled = np.asarray(eps["steps_near_wall"]) > 100  # over half of the 200 steps near a wall
    start = np.asarray(eps["start_goal_distance"])
    out: dict[str, Any] = {"run_dir": args.run_dir, "episodes": args.episodes, "seed": args.seed,
                           "true_state_success_rate": float(np.mean(truth)), "true_state_successes": truth,
                           "start_goal_distance": eps["start_goal_distance"], "steps_near_wall": eps["steps_near_wall"],
                           "failures_mostly_near_a_wall": int((walled & ~ok).sum()),
                           "successes_mostly_near_a_wall": int((walled & ok).sum()),
                           "start_goal_distance_median": {
                               "failures": float(np.median(start[~ok])) if (~ok).any() else None,
                               "successes": float(np.median(start[ok])) if ok.any() else None},
                           "compare": {}}
    print(f"{args.run_dir}: the actor on the true state finishes {sum(truth)} / {args.episodes}; "
          f"{out['failures_mostly_near_a_wall']} of its {int((~ok).sum())} failures and "
          f"{out['successes_mostly_near_a_wall']} of its successes keep the robot within 0.3 m of a wall for over "
          f"half the episode; the cube starts {np.median(start[~ok]) if (~ok).any() else float('nan'):.2f} m "
          f"(median) from the goal in its failures, {np.median(start[ok]) if ok.any() else float('nan'):.2f} m in "
          f"its successes")
    for path in args.compare:
        other = json.loads(Path(path).read_text())
        if (other.get("env_id"), other.get("episodes"), other.get("seed")) != ("RealPushCube-v0", args.episodes,
                                                                               args.seed):
            parser.error(f"--compare {path}: not RealPushCube-v0 over the same {args.episodes} episodes from seed "
                         f"{args.seed}")
        theirs = [bool(s) for s in other["successes"]]
        row = {"success_rate": float(np.mean(theirs)),
               "only_true_state": [i for i in range(args.episodes) if truth[i] and not theirs[i]],
               "only_this": [i for i in range(args.episodes) if theirs[i] and not truth[i]]}
        out["compare"][path] = row
        print(f"  {path}: {sum(theirs)} / {args.episodes}; only the true state finishes {len(row['only_true_state'])}, "
              f"only this {len(row['only_this'])}")
    out["seconds"] = round(time.perf_counter() - t0, 1)
    write_results(args.out or f"benchmarks/results/cube_true_state_{Path(args.run_dir).name}.json", out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
