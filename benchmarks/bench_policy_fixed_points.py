"""Does a deployed Push-T policy lock into fixed points once it knows its pusher to the pixel?

    python benchmarks/bench_policy_fixed_points.py --run-dir runs/base_s1 [--episodes 50]

The agent (trained with ``local_model="state"``) acts alone, without the planner, on the standard seeded episodes of
``RealPushT-v0``, from the readers' readings of the frames (``pusht_local_reader``, ``pusht_goal_reader``) with and
without the pusher odometry (``pusht_odometry``), each with the policy's mean action (``tanh μ``, as deployed) and
with actions sampled from it (as in training). Per deployment: mean max coverage, success, and the episodes that end
*parked*: nothing (pusher and block) moved more than 0.5 px / 0.005 rad over the last 60 steps while the block is
not home. Prints a table and writes JSON (default ``benchmarks/results/policy_fixed_points.json``).
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import gymnasium as gym
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import fog_envs  # noqa: E402,F401
from benchmarks.agent_runs_cli import parse_run_dirs, run_dirs_parser, write_results  # noqa: E402
from fog_agent.controller import FogController  # noqa: E402
from fog_agent.evaluate import learned_env_for, load_agent  # noqa: E402
from fog_agent.run_io import checkpoint_path  # noqa: E402
from fog_envs.data.motion import object_motion  # noqa: E402
from fog_envs.wm.pusher_odometry import PusherOdometry  # noqa: E402
from fog_envs.wm.readers import load_reader  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results" / "policy_fixed_points.json"
READERS = ("pusht_local_reader", "pusht_goal_reader")
STILL_STEPS = 60
STILL_PX = 0.5


def parked(states: np.ndarray, home: bool) -> bool:
    """Whether the last ``STILL_STEPS`` steps of an episode's true states (T, 5) moved neither the pusher nor the
    block (more than ``STILL_PX`` px, or the block 0.005 rad), the block not home."""
    last = states[-STILL_STEPS - 1:]
    pusher_still = np.abs(np.diff(last[:, :2], axis=0)).max() <= STILL_PX
    return bool(pusher_still and not object_motion("RealPushT-v0").moved(last).any() and not home)


def deploy(agent, envs, odometry: PusherOdometry | None, sample: bool, episodes: int, seed: int) -> dict:
    observer = envs.make_observer(readers=[load_reader(r) for r in READERS], odometry=odometry)
    env = gym.make("RealPushT-v0")
    coverages, successes, stuck = [], [], []
    for ep in range(episodes):
        controller = FogController(agent, observer, deterministic=not sample)
        obs, info = env.reset(seed=seed + ep)
        controller.reset(obs, info)
        states, best = [info["state"]], info["coverage"]
        terminated = truncated = False
        while not (terminated or truncated):
            obs, _, terminated, truncated, info = env.step(controller.act(obs, info))
            states.append(info["state"])
            best = max(best, info["coverage"])
        coverages.append(best)
        successes.append(best >= 0.95)
        if parked(np.array(states), info["is_success"]):
            stuck.append(ep)
    env.close()
    return {"mean_max_coverage": float(np.mean(coverages)), "success_rate": float(np.mean(successes)),
            "parked": len(stuck), "parked_episodes": stuck}


def measure(run_dir: str, episodes: int, seed: int) -> dict:
    agent, ckpt = load_agent(checkpoint_path(run_dir))
    envs = learned_env_for(ckpt)
    odometry = PusherOdometry.load("pusht_odometry")[0]
    out: dict = {"run_dir": run_dir, "episodes": episodes, "seed": seed}
    for name, odo in (("readers", None), ("odometry", odometry)):
        for action in ("mean", "sample"):
            t0 = time.perf_counter()
            out[f"{name}/{action}"] = {**deploy(agent, envs, odo, action == "sample", episodes, seed),
                                       "seconds": round(time.perf_counter() - t0, 1)}
    return out


def main() -> None:
    args = parse_run_dirs(run_dirs_parser(__doc__, RESULTS))
    results = [measure(r, args.episodes, args.seed) for r in args.run_dir]
    print(f"{'run':<16} {'pusher from / action':<22} {'mean max coverage':>18} {'success':>8} {'parked':>8}")
    for res in results:
        for key, row in res.items():
            if isinstance(row, dict):
                print(f"{Path(res['run_dir']).name:<16} {key:<22} {row['mean_max_coverage']:>18.3f} "
                      f"{row['success_rate']:>8.0%} {row['parked']:>5d}/{res['episodes']}")
    write_results(args.out, {"results": results})


if __name__ == "__main__":
    main()
