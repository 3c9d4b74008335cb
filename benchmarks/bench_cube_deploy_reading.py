"""What the cube deployment believes, step by step, against the simulator's truth, and where its episodes part from
the same actor's on the true state.

    MUJOCO_GL=egl python benchmarks/bench_cube_deploy_reading.py --run-dir runs/cube_agent2_s1 \\
        [--no-robot-finder] [--cube-unseen-pixels N] [--episodes 50] [--seed 100000]

Plays ``fog-eval --deployment cube`` (with ``--no-robot-finder``: without the robot finder, as before README item
34) on ``RealPushCube-v0``'s seeded episodes and records, at every step, the error of the state the actor acts on
(the observer's reading: the robot's position and yaw, the cube's position) against the true state; then plays the
same actor on the true state (``benchmarks/bench_cube_true_state.py``) and pairs the episodes. Reports the reading
errors (median / p90) by the robot's distance from the nearest wall and by the pairing (both finish, only the true
state finishes, only the deployment, neither). Prints a table and writes JSON (default
``benchmarks/results/cube_deploy_reading_<run name>[_no_robot_finder].json``).
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.agent_runs_cli import write_results  # noqa: E402
from benchmarks.bench_cube_true_state import load_cube_agent, true_state_episodes  # noqa: E402
from fog_agent.controller import FogController  # noqa: E402
from fog_agent.deployments import deployment_settings, fill_defaults  # noqa: E402
from fog_agent.evaluate import EvalConfig, learned_env_for, observer_kwargs  # noqa: E402
from fog_envs.evaluation import evaluate  # noqa: E402
from fog_envs.real.cube_scene import ARENA_HALF_SIZE  # noqa: E402
from fog_envs.wm.tasks import get_task  # noqa: E402

WALL_BINS = (("robot < 0.2 m from a wall", 0.0, 0.2), ("0.2–0.3 m", 0.2, 0.3), ("0.3–0.5 m", 0.3, 0.5),
             ("0.5 m and more", 0.5, 9.0))
COLUMNS = ("robot_m", "robot_deg", "cube_m")


class ReadingRecorder(FogController):
    """The deployment's controller, recording per step the reading's errors (:data:`COLUMNS`) against the true state
    the step's ``info`` carries, and the robot's distance from the nearest wall."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.task = get_task("cube")
        self.steps: list[list[list[float]]] = []

    def reset(self, obs: np.ndarray, info: dict[str, Any]) -> None:
        super().reset(obs, info)
        self.steps.append([])

    def act(self, obs: np.ndarray, info: dict[str, Any]) -> np.ndarray:
        action = super().act(obs, info)
        state = np.asarray(info["state"], dtype=np.float64)
        read = self.observer.x[0, :8].double().numpy()[None]  # type: ignore[attr-defined]
        errors = self.task.probe_errors(read, self.task.probe_targets(state[None]).astype(np.float64))
        wall = ARENA_HALF_SIZE - float(np.abs(state[:2]).max())
        self.steps[-1].append([float(errors[c][0]) for c in COLUMNS] + [wall])
        return action


def summary(rows: np.ndarray) -> dict[str, float]:
    """Median and p90 of the error columns of step rows (n, 4): mm, °, mm."""
    out: dict[str, float] = {"steps": int(len(rows))}
    for i, name in enumerate(COLUMNS):
        scale = 1.0 if name.endswith("deg") else 1000.0
        unit = name.replace("_m", "_mm")
        out[f"{unit}_median"] = float(np.median(rows[:, i]) * scale)
        out[f"{unit}_p90"] = float(np.percentile(rows[:, i], 90) * scale)
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--run-dir", required=True)
    parser.add_argument("--no-robot-finder", action="store_true", help="deploy without the robot finder")
    parser.add_argument("--cube-unseen-pixels", type=int, default=None,
                        help="the cube track's recheck (default: the deployment's; 0: none, as before README item 34's "
                             "recheck)")
    parser.add_argument("--episodes", type=int, default=50)
    parser.add_argument("--seed", type=int, default=100_000)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--out", default=None)
    args = parser.parse_args(argv)
    if args.episodes < 1:
        parser.error(f"--episodes must be >= 1, got {args.episodes}")
    torch.set_num_threads(args.threads)
    cfg = fill_defaults(EvalConfig(run_dir=args.run_dir, deployment="cube"), deployment_settings("cube"))
    if args.no_robot_finder:
        cfg = replace(cfg, robot_finder=False)
    if args.cube_unseen_pixels is not None:
        cfg = replace(cfg, cube_unseen_pixels=args.cube_unseen_pixels)
    agent, ckpt = load_cube_agent(args.run_dir)
    envs = learned_env_for(ckpt)
    recorder = ReadingRecorder(agent, envs.make_observer(**observer_kwargs(cfg, envs, ckpt["env_id"])),
                               search_action=cfg.search_action or None)
    deployed = evaluate(lambda: recorder, "RealPushCube-v0", episodes=args.episodes, seed=args.seed, video_dir=None,
                        video_episodes=0)
    truth = true_state_episodes(args.run_dir, args.episodes, args.seed)
    d, t = np.array(deployed.successes, bool), np.array(truth["successes"], bool)
    steps = [np.asarray(s, dtype=np.float64).reshape(-1, 4) for s in recorder.steps]
    every = np.concatenate(steps)
    groups: list[tuple[str, np.ndarray]] = [(label, every[(every[:, 3] >= lo) & (every[:, 3] < hi)])
                                            for label, lo, hi in WALL_BINS]
    for label, m in (("both finish", d & t), ("only the true state", t & ~d), ("only the deployment", d & ~t),
                     ("neither", ~d & ~t)):
        if m.any():
            groups.append((f"{label} ({int(m.sum())} episodes)", np.concatenate([steps[i] for i in np.flatnonzero(m)])))
    groups.append(("all", every))
    name = Path(args.run_dir).name + ("_no_robot_finder" if args.no_robot_finder else "")
    print(f"{name}: deployed {d.mean():.0%}, true state {t.mean():.0%}, only the true state {int((t & ~d).sum())}, "
          f"only the deployment {int((d & ~t).sum())}")
    print(f"{'steps':<40} {'n':>6} {'robot mm':>9} {'p90':>6} {'yaw °':>6} {'p90':>6} {'cube mm':>8} {'p90':>6}")
    rows = []
    for label, r in groups:
        if not len(r):
            continue
        row = {"steps_of": label, **summary(r)}
        rows.append(row)
        print(f"{label:<40} {row['steps']:>6} {row['robot_mm_median']:>9.0f} {row['robot_mm_p90']:>6.0f} "
              f"{row['robot_deg_median']:>6.1f} {row['robot_deg_p90']:>6.1f} {row['cube_mm_median']:>8.0f} "
              f"{row['cube_mm_p90']:>6.0f}")
    out = args.out or f"benchmarks/results/cube_deploy_reading_{name}.json"
    write_results(out, {"run_dir": args.run_dir, "robot_finder": cfg.robot_finder,
                        "cube_unseen_pixels": cfg.cube_unseen_pixels, "episodes": args.episodes,
                        "seed": args.seed, "deployed_successes": d.tolist(), "true_state_successes": t.tolist(),
                        "deployed_success_rate": float(d.mean()), "true_state_success_rate": float(t.mean()),
                        "rows": rows})
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
