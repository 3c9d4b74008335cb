"""Can the cube episodes the agents all fail be finished at all? A planner that sees and simulates the true system.

    MUJOCO_GL=egl python benchmarks/cube_oracle_mpc.py --episode-seeds 100019 100028 200006 ... \\
        [--samples 32 --horizon 15 --iterations 3] [--out benchmarks/results/cube_oracle_mpc.json]

For each episode (``RealPushCubeEnv`` reset with that seed, as ``fog-eval`` seeds its episodes) a cross-entropy
planner chooses every action by trying ``--samples`` action sequences of ``--horizon`` steps on copies of the
episode's own MuJoCo state (``RealPushCubeEnv.advance`` on an ``mj_copyData`` copy: the true physics, nothing
learned, nothing rendered), scoring each by the env's reward summed over the horizon, refitting a Gaussian to the best
tenth ``--iterations`` times, and executing the first action of the mean (receding horizon, the mean shifted on).
An episode it finishes is finishable in 200 steps from that start; one it fails says only that this planner did not.
Prints a table (success, step of first success, final cube–goal distance) and writes JSON.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("MUJOCO_GL", "egl")
import mujoco  # noqa: E402
import numpy as np  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.agent_runs_cli import write_results  # noqa: E402
from fog_envs.real import cube_reward  # noqa: E402
from fog_envs.real.cube import RealPushCubeEnv  # noqa: E402


def sequence_returns(env: RealPushCubeEnv, start: mujoco.MjData, scratch: mujoco.MjData,
                     sequences: np.ndarray) -> np.ndarray:
    """The env's reward summed along each ``(horizon, 3)`` action sequence, each simulated from ``start``."""
    out = np.empty(len(sequences))
    for i, seq in enumerate(sequences):
        mujoco.mj_copyData(scratch, env.model, start)
        total = 0.0
        for action in seq:
            env.advance(action, scratch)
            total += cube_reward.reward(env.true_state(scratch))
        out[i] = total
    return out


def plan_episode(seed: int, samples: int, horizon: int, iterations: int, steps: int, std: float) -> dict:
    """One episode played by the cross-entropy planner on the true physics."""
    env = RealPushCubeEnv(render_mode=None)
    env.reset(seed=seed)
    rng = np.random.default_rng(seed)
    scratch = mujoco.MjData(env.model)
    mean = np.zeros((horizon, 3))
    elites = max(2, samples // 10)
    first_success, t0 = None, time.perf_counter()
    for t in range(steps):
        sigma = np.full((horizon, 3), std)
        for _ in range(iterations):
            seqs = np.clip(mean + sigma * rng.standard_normal((samples, horizon, 3)), -1.0, 1.0)
            seqs[0] = mean
            best = seqs[np.argsort(sequence_returns(env, env.data, scratch, seqs))[-elites:]]
            mean, sigma = best.mean(0), best.std(0) + 0.05
        env.advance(mean[0])
        if first_success is None and cube_reward.is_success(env.true_state()):
            first_success = t + 1
        mean = np.concatenate([mean[1:], mean[-1:]])
    state = env.true_state()
    return {"seed": seed, "success": first_success is not None, "first_success_step": first_success,
            "final_cube_goal_m": float(cube_reward.cube_goal_distance(state)),
            "final_success": cube_reward.is_success(state), "wall_time_s": round(time.perf_counter() - t0, 1)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--episode-seeds", type=int, nargs="+", required=True)
    parser.add_argument("--samples", type=int, default=32)
    parser.add_argument("--horizon", type=int, default=15)
    parser.add_argument("--iterations", type=int, default=3)
    parser.add_argument("--std", type=float, default=0.6)
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--out", default="benchmarks/results/cube_oracle_mpc.json")
    args = parser.parse_args()
    if min(args.samples, args.horizon, args.iterations, args.steps) < 1:
        parser.error("--samples, --horizon, --iterations and --steps must be >= 1")
    rows = []
    print("| episode seed | finished | first success step | final cube-goal (m) | wall (s) |")
    print("|---|---|---|---|---|")
    for seed in args.episode_seeds:
        row = plan_episode(seed, args.samples, args.horizon, args.iterations, args.steps, args.std)
        rows.append(row)
        print(f"| {seed} | {row['success']} | {row['first_success_step']} | {row['final_cube_goal_m']:.3f} | "
              f"{row['wall_time_s']} |", flush=True)
    write_results(args.out, {"config": vars(args), "episodes": rows,
                             "finished": sum(r["success"] for r in rows)})


if __name__ == "__main__":
    main()
