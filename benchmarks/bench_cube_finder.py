"""How well the cube finder places the ``RealPushCube-v0`` cube, next to the shipped probe, by its range and by whether
the frame cuts it.

    MUJOCO_GL=egl python benchmarks/bench_cube_finder.py [--frames 1500] [--seed 600000]

Renders ``--frames`` seeded states in which the cube lies within ±40° of the robot's heading (half of them with the
cube 0.31–0.6 m from the robot's centre, where it pushes: 0.31 m is contact; half 0.6–2.0 m), keeps those whose ego
frame shows it, and reads the cube three ways: the ``cube`` bundle's probe (world frame, as deployed before), the
ray through the cube pixels' centroid and the silhouette fit (:mod:`fog_envs.wm.cube_finder`; body frame, placed in
the world with the true robot pose, so that only the finder's own error counts). Reports the median and 90th
percentile error (mm) per range bin and for cubes the frame cuts (touching its edge), and the finder's time per
frame. Prints a table and writes JSON (default ``benchmarks/results/cube_finder.json``).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import gymnasium as gym
import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.agent_runs_cli import write_results  # noqa: E402
import fog_envs  # noqa: E402,F401
from fog_envs.wm.cube_finder import CubeFinderConfig, body_to_world, cube_mask, find_cube  # noqa: E402
from fog_envs.wm.model import WorldModel  # noqa: E402
from fog_envs.wm.tasks import get_task  # noqa: E402

BINS = (("contact 0.31–0.4 m", 0.31, 0.4), ("0.4–0.6 m", 0.4, 0.6), ("0.6–1.2 m", 0.6, 1.2),
        ("1.2–2.0 m", 1.2, 2.0))


def render_states(frames: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Ego frames (n, 64, 64, 3) and true states (n, 6) of ``frames`` drawn states, kept where the cube is seen."""
    env = gym.make("RealPushCube-v0")
    rng = np.random.default_rng(seed)
    out_frames, out_states = [], []
    for i in range(frames):
        robot = rng.uniform(-0.9, 0.9, 2)
        yaw = rng.uniform(-np.pi, np.pi)
        dist = rng.uniform(0.31, 0.6) if i % 2 else rng.uniform(0.6, 2.0)
        bearing = yaw + rng.uniform(-0.7, 0.7)
        cube = robot + dist * np.array([np.cos(bearing), np.sin(bearing)])
        if np.abs(cube).max() > 1.35:
            continue
        state = [robot[0], robot[1], yaw, cube[0], cube[1], rng.uniform(-np.pi, np.pi)]
        obs, _ = env.reset(seed=seed + i, options={"reset_to_state": state})
        if cube_mask(obs[None]).any():
            out_frames.append(obs)
            out_states.append(env.unwrapped.true_state())
    env.close()
    return np.stack(out_frames), np.stack(out_states)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--frames", type=int, default=1500)
    parser.add_argument("--seed", type=int, default=600_000)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out", default="benchmarks/results/cube_finder.json")
    args = parser.parse_args(argv)
    if args.frames < 1:
        parser.error(f"--frames must be >= 1, got {args.frames}")
    torch.set_num_threads(args.threads)
    frames, states = render_states(args.frames, args.seed)
    robot = np.column_stack([states[:, 0:2], np.cos(states[:, 2]), np.sin(states[:, 2])])
    errors, seconds = {}, {}
    with torch.no_grad():
        read = WorldModel.load("cube").probe(torch.from_numpy(frames)).double().numpy()
    errors["probe"] = np.linalg.norm(read[:, 4:6] - get_task("cube").probe_targets(states)[:, 4:6], axis=1)
    for name, config in (("centroid", CubeFinderConfig(silhouette=False)), ("silhouette", CubeFinderConfig())):
        t0 = time.perf_counter()
        body, seen = find_cube(frames, config)
        seconds[name] = (time.perf_counter() - t0) / len(frames)
        err = np.full(len(frames), np.inf)
        err[seen] = np.linalg.norm(body_to_world(robot[seen], body[seen, :2]) - states[seen, 3:5], axis=1)
        errors[name] = err
    dist = np.linalg.norm(states[:, 3:5] - states[:, 0:2], axis=1)
    masks = cube_mask(frames)
    cut = masks[:, :, [0, -1]].any(axis=(1, 2)) | masks[:, [0, -1], :].any(axis=(1, 2))
    groups = [(label, (dist >= lo) & (dist < hi)) for label, lo, hi in BINS]
    groups += [("cut by the frame", cut), ("wholly in view", ~cut), ("all", np.ones(len(frames), bool))]
    rows = []
    print(f"{'cubes':<20} {'frames':>6} " + " ".join(f"{n + ' mm: median':>24} {'p90':>6}" for n in errors))
    for label, m in groups:
        if not m.any():
            continue
        row = {"cubes": label, "frames": int(m.sum())}
        for name, err in errors.items():
            row[f"{name}_mm_median"] = float(np.median(err[m]) * 1000.0)
            row[f"{name}_mm_p90"] = float(np.percentile(err[m], 90) * 1000.0)
        rows.append(row)
        print(f"{label:<20} {row['frames']:>6} " + " ".join(
            f"{row[f'{n}_mm_median']:>24.0f} {row[f'{n}_mm_p90']:>6.0f}" for n in errors))
    print("finder time per frame: " + ", ".join(f"{n} {s * 1000:.1f} ms" for n, s in seconds.items()))
    write_results(args.out, {"frames": int(len(frames)), "drawn": args.frames, "seed": args.seed, "rows": rows,
                             "ms_per_frame": {n: s * 1000.0 for n, s in seconds.items()}})
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
