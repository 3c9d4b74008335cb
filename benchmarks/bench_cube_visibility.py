"""How well the cube's state probe reads the cube when the robot's camera does and does not see it.

    MUJOCO_GL=egl python benchmarks/bench_cube_visibility.py [--frames 600] [--seed 500000] [--eval RUN/eval.json ...]

``RealPushCube-v0`` observes through the robot's ego camera (75° field of view): at most starts the cube lies
outside it. Renders ``--frames`` seeded states (a reset, then 0–5 random actions), reads them with the shipped
``cube`` bundle's probe and bins the errors by the cube's bearing from the camera's axis (within half the field
of view: in view). With ``--eval`` (evaluation JSONs of ``RealPushCube-v0``, e.g. a run's ``eval.json``), each
one's success rate among episodes whose cube starts in view and out of it. Prints a table and writes JSON (default
``benchmarks/results/cube_visibility.json``).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import gymnasium as gym
import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.agent_runs_cli import write_results  # noqa: E402
import fog_envs  # noqa: E402,F401
from fog_envs.real.cube_scene import CAMERA_FOVY_DEG  # noqa: E402
from fog_envs.wm.model import WorldModel  # noqa: E402
from fog_envs.wm.tasks import get_task  # noqa: E402

BINS = ((0.0, 20.0), (20.0, CAMERA_FOVY_DEG / 2), (CAMERA_FOVY_DEG / 2, 60.0), (60.0, 180.0))


def bearing_deg(state: np.ndarray) -> np.ndarray:
    """|angle| (degrees) between the robot's heading and the direction to the cube, of true states (n, 6)."""
    s = np.atleast_2d(state)
    rel = s[:, 3:5] - s[:, 0:2]
    return np.degrees(np.abs((np.arctan2(rel[:, 1], rel[:, 0]) - s[:, 2] + np.pi) % (2 * np.pi) - np.pi))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--frames", type=int, default=600)
    parser.add_argument("--seed", type=int, default=500_000)
    parser.add_argument("--eval", nargs="*", default=[], help="RealPushCube-v0 evaluation JSONs")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out", default="benchmarks/results/cube_visibility.json")
    args = parser.parse_args(argv)
    if args.frames < 1:
        parser.error(f"--frames must be >= 1, got {args.frames}")
    torch.set_num_threads(args.threads)
    t0 = time.perf_counter()
    env = gym.make("RealPushCube-v0")
    rng = np.random.default_rng(args.seed)
    frames, states = [], []
    for i in range(args.frames):
        obs, _ = env.reset(seed=args.seed + i)
        for _ in range(int(rng.integers(0, 6))):
            obs, *_ = env.step(rng.uniform(-1.0, 1.0, 3).astype(np.float32))
        frames.append(np.asarray(obs))
        states.append(env.unwrapped.true_state())
    states_arr = np.stack(states)
    with torch.no_grad():
        read = WorldModel.load("cube").probe(torch.from_numpy(np.stack(frames))).double().numpy()
    true = get_task("cube").probe_targets(states_arr)
    cube_err = np.linalg.norm(read[:, 4:6] - true[:, 4:6], axis=1) * 1000.0
    robot_err = np.linalg.norm(read[:, 0:2] - true[:, 0:2], axis=1) * 1000.0
    bearing = bearing_deg(states_arr)
    rows = []
    print(f"{'cube bearing (°)':<18} {'frames':>7} {'cube mm: median':>16} {'p90':>6} {'robot mm: median':>17}")
    for lo, hi in BINS:
        m = (bearing >= lo) & (bearing < hi)
        if not m.any():
            continue
        row = {"bearing_deg": [lo, hi], "frames": int(m.sum()), "cube_mm_median": float(np.median(cube_err[m])),
               "cube_mm_p90": float(np.percentile(cube_err[m], 90)), "robot_mm_median": float(np.median(robot_err[m]))}
        rows.append(row)
        print(f"{lo:>6.1f}–{hi:<10.1f} {row['frames']:>7} {row['cube_mm_median']:>16.0f} {row['cube_mm_p90']:>6.0f} "
              f"{row['robot_mm_median']:>17.0f}")
    starts = {}
    for path in args.eval:
        result = json.loads(Path(path).read_text())
        if result.get("env_id") != "RealPushCube-v0":
            parser.error(f"--eval {path}: an evaluation of {result.get('env_id')!r}, not RealPushCube-v0")
        seen = np.array([bearing_deg(_reset_state(env, result["seed"] + i))[0] < CAMERA_FOVY_DEG / 2
                         for i in range(result["episodes"])])
        success = np.asarray(result["successes"], dtype=bool)
        starts[path] = {"in_view": int(seen.sum()), "out_of_view": int((~seen).sum()),
                        "success_in_view": float(success[seen].mean()) if seen.any() else None,
                        "success_out_of_view": float(success[~seen].mean()) if (~seen).any() else None}
        s = starts[path]
        print(f"{path}: cube in view at {s['in_view']} starts, success {s['success_in_view']}; out of view at "
              f"{s['out_of_view']}, success {s['success_out_of_view']}")
    env.close()
    out = {"frames": args.frames, "seed": args.seed, "field_of_view_deg": CAMERA_FOVY_DEG, "bins": rows,
           "starts": starts, "seconds": round(time.perf_counter() - t0, 1)}
    write_results(args.out, out)
    return 0


def _reset_state(env: gym.Env, seed: int) -> np.ndarray:
    env.reset(seed=seed)
    return env.unwrapped.true_state()


if __name__ == "__main__":
    raise SystemExit(main())
