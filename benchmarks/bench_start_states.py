"""Where imagined episodes start, against where the reference system's episodes start.

    MUJOCO_GL=egl python benchmarks/bench_start_states.py [--resets 1000] [--draws 4000]

For each task (Push-T and the cube), three sets of start states in the task's probe-target layout: the state-model
world's real start windows (the shipped world model's, read by its probe, as ``forward_model="state"`` starts an
episode), the reference system's own seeded resets (``reset(seed=300_000 + i)``) and the task's reset-start sampler
(``reset_starts=``, :attr:`fog_envs.wm.tasks.TaskSpec.reset_start`). Per set: the pusher's distance from the object,
the object's from the goal and (the cube) the object's gap to the nearest wall, as 10th / 50th / 90th percentiles,
and the sampler's two-sample Kolmogorov–Smirnov statistic against the resets. Prints a table; writes JSON (default
``benchmarks/results/start_states.json``).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import gymnasium as gym
import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import fog_envs  # noqa: E402,F401  (registers the envs)
from benchmarks.agent_runs_cli import write_results  # noqa: E402
from fog_envs.learned.factory import make_backend  # noqa: E402
from fog_envs.wm.tasks import get_task  # noqa: E402

QUANTILES = (0.1, 0.5, 0.9)


def measures(task: str, s: np.ndarray) -> dict[str, np.ndarray]:
    """Pusher–object and object–goal distances (px for Push-T, m for the cube) and the cube's wall gap (m)."""
    if task == "pusht":
        from fog_envs.real.pusht_reward import GOAL_POSE

        px = s[:, :4] * 512.0
        return {"pusher_object": np.linalg.norm(px[:, 0:2] - px[:, 2:4], axis=1),
                "object_goal": np.linalg.norm(px[:, 2:4] - np.asarray(GOAL_POSE[:2]), axis=1)}
    from fog_envs.real.cube_scene import GOAL_CENTER, cube_wall_gap

    return {"pusher_object": np.linalg.norm(s[:, 0:2] - s[:, 4:6], axis=1),
            "object_goal": np.linalg.norm(s[:, 4:6] - np.asarray(GOAL_CENTER[:2]), axis=1),
            "object_wall_gap": cube_wall_gap(s[:, 4:6])}


def ks(a: np.ndarray, b: np.ndarray) -> float:
    """The two-sample Kolmogorov–Smirnov statistic: the largest gap between the empirical CDFs."""
    grid = np.sort(np.concatenate([a, b]))
    return float(np.abs(np.searchsorted(np.sort(a), grid, side="right") / len(a)
                        - np.searchsorted(np.sort(b), grid, side="right") / len(b)).max())


@torch.no_grad()
def world_starts(task: str) -> np.ndarray:
    """The probe-target states at the end of the shipped world model's real start windows."""
    backend = make_backend(task, 1, forward_model="state", local_model="state", bf16=False)
    lat, act = backend.model.start_latents.float(), backend.model.start_actions.float()
    x = torch.cat([backend.local.start_window(lat[i:i + 64], act[i:i + 64]) for i in range(0, len(lat), 64)])
    return x[:, :backend.local.sdim].numpy().astype(np.float64)


def reference_resets(task: str, n: int) -> np.ndarray:
    spec = get_task(task)
    env = gym.make(spec.real_env_id, **({"obs_type": "state"} if task == "pusht" else {}))
    states = np.array([env.reset(seed=300_000 + i)[1]["state"] for i in range(n)])
    env.close()
    return spec.probe_targets(states).astype(np.float64)


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--resets", type=int, default=1000)
    parser.add_argument("--draws", type=int, default=4000)
    parser.add_argument("--tasks", nargs="+", default=["pusht", "cube"], choices=["pusht", "cube"])
    parser.add_argument("--out", default="benchmarks/results/start_states.json")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    results: dict = {"resets": args.resets, "draws": args.draws, "quantiles": list(QUANTILES), "tasks": {}}
    print(f"{'task':6s} {'measure':16s} {'world starts':>22s} {'reference resets':>22s} {'reset sampler':>22s}  KS")
    for task in args.tasks:
        spec = get_task(task)
        sets = {"world_starts": world_starts(task), "reference_resets": reference_resets(task, args.resets),
                "reset_sampler": spec.reset_start(torch.zeros(args.draws, spec.probe_dim, dtype=torch.float64),
                                                  torch.Generator().manual_seed(0)).numpy()}
        m = {name: measures(task, s) for name, s in sets.items()}
        row: dict = {"counts": {name: len(s) for name, s in sets.items()}, "measures": {}}
        for key in m["world_starts"]:
            q = {name: np.quantile(m[name][key], QUANTILES).round(3).tolist() for name in sets}
            stat = ks(m["reset_sampler"][key], m["reference_resets"][key])
            row["measures"][key] = {**q, "ks_sampler_vs_resets": round(stat, 4),
                                    "ks_world_vs_resets": round(ks(m["world_starts"][key], m["reference_resets"][key]), 4)}
            cells = [" / ".join(f"{v:.2f}" for v in q[name]) for name in sets]
            print(f"{task:6s} {key:16s} {cells[0]:>22s} {cells[1]:>22s} {cells[2]:>22s}  {stat:.3f}")
        results["tasks"][task] = row
    write_results(args.out, results)
    return results


if __name__ == "__main__":
    main()
