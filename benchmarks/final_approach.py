"""How close a Push-T agent brings the block, and which error keeps it from success: position or angle.

    python benchmarks/final_approach.py --run-dir runs/fog_pusht [--run-dir runs/other ...] [--episodes 50]

For each run: its agent, deployed as ``fog-eval`` deploys it, on the same seeded ``RealPushT-v0`` episodes as
the final evaluation. Per episode, at the step of highest coverage: the block's distance from the goal position
(px of 512) and from the goal angle (°), and the coverage the block would have there with the position alone
made exact (its angle kept) and with the angle alone made exact (its position kept): where one of them reaches
success (≥ 0.95) and the other does not, that error is what stands between the episode and success. Also the
coverage at the episode's end against its best (does the agent hold the block there or push it on). Prints a
table and writes JSON (default ``benchmarks/results/final_approach.json``).
"""

from __future__ import annotations

import math
import sys
import time
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import fog_envs  # noqa: E402,F401
from benchmarks.agent_runs_cli import parse_run_dirs, run_dirs_parser, write_results  # noqa: E402
from fog_agent.controller import FogController  # noqa: E402
from fog_agent.evaluate import learned_env_for, load_agent  # noqa: E402
from fog_agent.run_io import checkpoint_path  # noqa: E402
from fog_envs.real.pusht_reward import GOAL_POSE, SUCCESS_COVERAGE, coverage  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results" / "final_approach.json"


def best_step_errors(states: np.ndarray, coverages: np.ndarray) -> dict[str, float]:
    """The block's pose errors at the step of highest coverage, and the coverage with either error removed.
    ``states`` (T, 5) true states ``[agent_x, agent_y, block_x, block_y, angle]``, ``coverages`` (T,)."""
    best = int(np.argmax(coverages))
    x, y, th = states[best, 2:5]
    d_angle = (th - GOAL_POSE[2] + math.pi) % (2 * math.pi) - math.pi
    return {
        "max_coverage": float(coverages[best]),
        "end_coverage": float(coverages[-1]),
        "position_px": float(math.hypot(x - GOAL_POSE[0], y - GOAL_POSE[1])),
        "angle_deg": float(abs(math.degrees(d_angle))),
        "coverage_position_exact": float(coverage(np.array([GOAL_POSE[0], GOAL_POSE[1], th]))),
        "coverage_angle_exact": float(coverage(np.array([x, y, GOAL_POSE[2]]))),
    }


def run_episodes(run_dir: str, episodes: int, seed: int) -> list[dict[str, float]]:
    agent, ckpt = load_agent(checkpoint_path(run_dir))
    envs = learned_env_for(ckpt)
    if envs.reference_env_id != "RealPushT-v0":
        raise ValueError(f"{run_dir}: final_approach reads Push-T block poses; this agent deploys on "
                         f"{envs.reference_env_id}")
    env = gym.make(envs.reference_env_id)
    rows = []
    for ep in range(episodes):
        obs, info = env.reset(seed=seed + ep)
        controller = FogController(agent, envs.make_observer())
        controller.reset(obs, info)
        states, covs = [np.asarray(info["state"])], [float(info["coverage"])]
        done = False
        while not done:
            obs, _, terminated, truncated, info = env.step(controller.act(obs, info))
            states.append(np.asarray(info["state"]))
            covs.append(float(info["coverage"]))
            done = terminated or truncated
        rows.append(best_step_errors(np.stack(states), np.asarray(covs)))
    env.close()
    return rows


def summarise(rows: list[dict[str, float]]) -> dict[str, float]:
    """Medians of the pose errors and counts of what separates each unsuccessful episode from success."""
    miss = [r for r in rows if r["max_coverage"] < SUCCESS_COVERAGE]
    pos_fix = sum(r["coverage_position_exact"] >= SUCCESS_COVERAGE > r["coverage_angle_exact"] for r in miss)
    ang_fix = sum(r["coverage_angle_exact"] >= SUCCESS_COVERAGE > r["coverage_position_exact"] for r in miss)
    either = sum(min(r["coverage_position_exact"], r["coverage_angle_exact"]) >= SUCCESS_COVERAGE for r in miss)
    med = lambda k, rs=rows: float(np.median([r[k] for r in rs])) if rs else float("nan")  # noqa: E731
    return {
        "episodes": len(rows),
        "success": len(rows) - len(miss),
        "mean_max_coverage": float(np.mean([r["max_coverage"] for r in rows])),
        "median_position_px": med("position_px"),
        "median_angle_deg": med("angle_deg"),
        "near_misses": sum(r["max_coverage"] >= 0.8 for r in miss),
        "near_miss_median_position_px": med("position_px", [r for r in miss if r["max_coverage"] >= 0.8]),
        "near_miss_median_angle_deg": med("angle_deg", [r for r in miss if r["max_coverage"] >= 0.8]),
        "misses_fixed_by_position_only": int(pos_fix),
        "misses_fixed_by_angle_only": int(ang_fix),
        "misses_fixed_by_either": int(either),
        "misses_needing_both": len(miss) - int(pos_fix) - int(ang_fix) - int(either),
        "mean_end_coverage": float(np.mean([r["end_coverage"] for r in rows])),
    }


def main() -> None:
    args = parse_run_dirs(run_dirs_parser(__doc__, RESULTS))
    out: dict[str, Any] = {"episodes": args.episodes, "seed": args.seed, "runs": {}}
    print(f"{'run':44s} | succ | cov   | pos px | ang ° | near misses (pos / ang) | fixed by pos / ang / either / "
          f"both needed | end cov")
    for run_dir in args.run_dir:
        t0 = time.perf_counter()
        rows = run_episodes(run_dir, args.episodes, args.seed)
        s = summarise(rows)
        out["runs"][run_dir] = {"summary": s, "episodes": rows, "seconds": round(time.perf_counter() - t0, 1)}
        print(f"{run_dir:44s} | {s['success']:4d} | {s['mean_max_coverage']:.3f} | {s['median_position_px']:6.1f} | "
              f"{s['median_angle_deg']:5.1f} | {s['near_misses']:3d} ({s['near_miss_median_position_px']:.1f} / "
              f"{s['near_miss_median_angle_deg']:.1f}) | {s['misses_fixed_by_position_only']} / "
              f"{s['misses_fixed_by_angle_only']} / {s['misses_fixed_by_either']} / {s['misses_needing_both']} | "
              f"{s['mean_end_coverage']:.3f}")
    write_results(args.out, out)


if __name__ == "__main__":
    main()
