"""Deployed cube agents' success by how close to a wall each episode's cube starts.

    MUJOCO_GL=egl python benchmarks/cube_wall_gap.py --eval runs/A/eval_RealPushCube-v0.json \\
        --eval runs/A/eval_RealPushCube-v0_seed200k.json ... [--gap 0.30] [--out benchmarks/results/cube_wall_gap.json]
    MUJOCO_GL=egl python benchmarks/cube_wall_gap.py --list-near 300000 40   # seeds for fog-eval --episode-seeds

Reads ``fog-eval`` JSONs (no agent is played): replays each file's seeded resets of ``RealPushCube-v0`` (episode i:
``seed + i``, or its ``episode_seeds``) to get the start, and splits its episodes by the gap between the cube's face and its nearest wall:
under ``--gap`` (default 0.30 m, the robot's width, so the robot cannot get between the cube and that wall to push
it off) or not. Per file and pooled: the episodes of each kind and the share finished. Prints a table and writes
JSON (default ``benchmarks/results/cube_wall_gap.json``). ``--list-near SEED COUNT`` instead prints the first COUNT
reset seeds from SEED on whose cube starts under ``--gap`` from a wall, for ``fog-eval --episode-seeds``.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.agent_runs_cli import write_results  # noqa: E402
from fog_envs.real.cube_scene import cube_wall_gap  # noqa: E402


def wall_gap(state: np.ndarray) -> np.ndarray:
    """Gap (m) between the cube's face and its nearest wall, from true states (..., 6) ``[robot x, y, yaw, cube x, y,
    yaw]`` (:func:`fog_envs.real.cube_scene.cube_wall_gap`)."""
    return cube_wall_gap(np.asarray(state)[..., 3:5])


def reset_states(seeds: list[int]) -> np.ndarray:
    """The true start states (len(seeds), 6) of ``RealPushCube-v0``'s resets with these seeds."""
    import gymnasium as gym

    import fog_envs  # noqa: F401  (registers the envs)

    env = gym.make("RealPushCube-v0")
    try:
        return np.array([env.reset(seed=s)[1]["state"] for s in seeds])
    finally:
        env.close()


def near_seeds(seed: int, count: int, gap: float) -> list[int]:
    """The first ``count`` reset seeds from ``seed`` on whose cube starts less than ``gap`` from a wall."""
    out: list[int] = []
    s = seed
    while len(out) < count:
        batch = list(range(s, s + 4 * count))
        out += [b for b, g in zip(batch, wall_gap(reset_states(batch))) if g < gap]
        s += 4 * count
    return out[:count]


def split(successes: np.ndarray, gaps: np.ndarray, gap: float) -> dict[str, Any]:
    """Episodes and success rate of the starts with the cube's gap to a wall under ``gap`` ('near') and the rest."""
    near = gaps < gap
    rate = lambda m: float(successes[m].mean()) if m.any() else None  # noqa: E731
    return {"near": int(near.sum()), "far": int((~near).sum()), "near_success": rate(near),
            "far_success": rate(~near), "success": float(successes.mean())}


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--eval", action="append", default=[], help="a fog-eval JSON of RealPushCube-v0")
    parser.add_argument("--gap", type=float, default=0.30)
    parser.add_argument("--out", default="benchmarks/results/cube_wall_gap.json")
    parser.add_argument("--list-near", type=int, nargs=2, metavar=("SEED", "COUNT"))
    args = parser.parse_args(argv)
    if args.gap <= 0:
        parser.error(f"--gap must be > 0 (m), got {args.gap}")
    if args.list_near is not None:
        if args.list_near[1] < 1:
            parser.error(f"--list-near: COUNT must be >= 1, got {args.list_near[1]}")
        seeds = near_seeds(*args.list_near, args.gap)
        print(" ".join(map(str, seeds)))
        return {"seeds": seeds}
    if not args.eval:
        parser.error("give --eval (one or more fog-eval JSONs) or --list-near SEED COUNT")
    rows, starts = [], {}
    all_ok, all_gaps = [], []
    for path in args.eval:
        d = json.loads(Path(path).read_text())
        if d.get("env_id") != "RealPushCube-v0":
            parser.error(f"--eval {path}: not a RealPushCube-v0 evaluation (env_id {d.get('env_id')!r})")
        seeds = d.get("episode_seeds") or list(range(int(d["seed"]), int(d["seed"]) + int(d["episodes"])))
        key = tuple(seeds)
        if key not in starts:
            starts[key] = reset_states(seeds)
        ok, gaps = np.asarray(d["successes"], bool), wall_gap(starts[key])
        rows.append({"eval": path, "seed": seeds[0], **split(ok, gaps, args.gap)})
        all_ok.append(ok)
        all_gaps.append(gaps)
    pooled = split(np.concatenate(all_ok), np.concatenate(all_gaps), args.gap)
    print(f"{'evaluation':70s} {'near':>5s} {'near ok':>8s} {'far':>5s} {'far ok':>7s}")
    for r in rows + [{"eval": "pooled", **pooled}]:
        fmt = lambda v: "—" if v is None else f"{100 * v:.0f}%"  # noqa: E731
        print(f"{r['eval'][-70:]:70s} {r['near']:5d} {fmt(r['near_success']):>8s} {r['far']:5d} "
              f"{fmt(r['far_success']):>7s}")
    results = {"gap_m": args.gap, "rows": rows, "pooled": pooled}
    write_results(args.out, results)
    return results


if __name__ == "__main__":
    main()
