"""How well the robot finder places the ``RealPushCube-v0`` robot, next to the shipped probe, by the robot's
distance from the nearest wall.

    MUJOCO_GL=egl python benchmarks/bench_robot_finder.py [--frames 300] [--seed 800000]

Renders ``--frames`` seeded states (the robot anywhere its box fits, 0.27 m from the walls at the least, at any yaw;
a third of them with the robot facing its nearest wall square on, closer than 0.35 m; the cube anywhere clear of it)
and reads the robot's pose three ways: the ``cube`` bundle's probe (as deployed before), the robot finder searching
the whole arena (:func:`fog_envs.wm.robot_finder.find_robot`, as on an episode's first frame, the probe's reading
breaking ties) and the finder searching around a prior 2 cm and 2° off the truth in a random direction
(:func:`~fog_envs.wm.robot_finder.fit_pose`, as when tracking: the state model's one-step prediction is ~5 mm off).
Reports the median and 90th percentile position (mm) and yaw (°) errors for the robots facing a wall and the others
by their distance from the nearest wall, and each search's time per frame (up close the renderer clips the wall and the
frame is black: only tracking can know where the robot is). Prints a table and writes JSON (default
``benchmarks/results/robot_finder.json``).
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
from fog_envs.real.cube_scene import ARENA_HALF_SIZE, ROBOT_HALF_EXTENTS  # noqa: E402
from fog_envs.wm.model import WorldModel  # noqa: E402
from fog_envs.wm.robot_finder import find_robot, fit_pose, pixel_labels  # noqa: E402

BINS = (("other, < 0.35 m from a wall", 0.0, 0.35), ("other, 0.35–0.6 m", 0.35, 0.6),
        ("other, 0.6 m and more", 0.6, 9.0))


def render_states(frames: int, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Ego frames (n, 64, 64, 3), true states (n, 6) and whether the robot faces a wall up close (n,) of ``frames``
    drawn states."""
    env = gym.make("RealPushCube-v0")
    rng = np.random.default_rng(seed)
    reach = float(np.hypot(*ROBOT_HALF_EXTENTS[:2])) + 0.005
    lim = ARENA_HALF_SIZE - reach
    out_frames, out_states = [], []
    for i in range(frames):
        if i % 3 == 0:  # facing a wall, square on (±6°), its front 0.03–0.13 m from it
            wall = rng.integers(4)
            along, gap = rng.uniform(-lim, lim), rng.uniform(ROBOT_HALF_EXTENTS[0] + 0.03, 0.35)
            sign, axis = (1.0, -1.0)[wall % 2], wall // 2
            robot = np.empty(2)
            robot[axis], robot[1 - axis] = sign * (ARENA_HALF_SIZE - gap), along
            yaw = (0.0 if sign > 0 else np.pi) if axis == 0 else sign * np.pi / 2
            yaw += rng.uniform(-0.1, 0.1)
        else:
            robot, yaw = rng.uniform(-lim, lim, 2), rng.uniform(-np.pi, np.pi)
        while True:
            cube = rng.uniform(-1.3, 1.3, 2)
            if np.linalg.norm(cube - robot) > 0.45:
                break
        state = [robot[0], robot[1], yaw, cube[0], cube[1], rng.uniform(-np.pi, np.pi)]
        obs, _ = env.reset(seed=seed + i, options={"reset_to_state": state})
        out_frames.append(obs)
        out_states.append(env.unwrapped.true_state())
    env.close()
    return np.stack(out_frames), np.stack(out_states), np.arange(frames) % 3 == 0


def pose_errors(poses: np.ndarray, states: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Position (m) and yaw (°) errors of poses (n, 3) against true states (n, >= 3)."""
    d_yaw = (poses[:, 2] - states[:, 2] + np.pi) % (2 * np.pi) - np.pi
    return np.linalg.norm(poses[:, :2] - states[:, :2], axis=1), np.degrees(np.abs(d_yaw))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--frames", type=int, default=300)
    parser.add_argument("--seed", type=int, default=800_000)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--out", default="benchmarks/results/robot_finder.json")
    args = parser.parse_args(argv)
    if args.frames < 1:
        parser.error(f"--frames must be >= 1, got {args.frames}")
    torch.set_num_threads(args.threads)
    frames, states, facing = render_states(args.frames, args.seed)
    with torch.no_grad():
        read = WorldModel.load("cube").probe(torch.from_numpy(frames)).double().numpy()
    probe = np.column_stack([read[:, 0:2], np.arctan2(read[:, 3], read[:, 2])])
    labels = pixel_labels(frames)
    rng = np.random.default_rng(args.seed)
    angle = rng.uniform(-np.pi, np.pi, len(frames))
    prior = states[:, :3] + np.column_stack([0.02 * np.cos(angle), 0.02 * np.sin(angle),
                                             np.radians(2.0) * rng.choice([-1.0, 1.0], len(frames))])
    found: dict[str, np.ndarray] = {"probe": probe}
    seconds: dict[str, float] = {}
    for name, search in (("whole arena", lambda i: find_robot(labels[i], prior=probe[i])[0]),
                         ("tracked", lambda i: fit_pose(labels[i], prior[i])[0])):
        t0 = time.perf_counter()
        found[name] = np.stack([search(i) for i in range(len(frames))])
        seconds[name] = (time.perf_counter() - t0) / len(frames)
    wall = ARENA_HALF_SIZE - np.abs(states[:, 0:2]).max(axis=1)
    groups = [("facing a wall, 3–13 cm", facing)] + [(label, ~facing & (wall >= lo) & (wall < hi))
                                                     for label, lo, hi in BINS] + [("all", np.ones(len(frames), bool))]
    rows = []
    print(f"{'robot':<28} {'frames':>6} " + " ".join(f"{n + ': mm median':>24} {'p90':>6} {'° median':>8} {'p90':>6}"
                                                      for n in found))
    for label, m in groups:
        if not m.any():
            continue
        row = {"robot": label, "frames": int(m.sum())}
        for name, poses in found.items():
            pos, yaw = pose_errors(poses[m], states[m])
            row.update({f"{name}_mm_median": float(np.median(pos) * 1000), f"{name}_mm_p90":
                        float(np.percentile(pos, 90) * 1000), f"{name}_deg_median": float(np.median(yaw)),
                        f"{name}_deg_p90": float(np.percentile(yaw, 90))})
        rows.append(row)
        print(f"{label:<28} {row['frames']:>6} " + " ".join(
            f"{row[f'{n}_mm_median']:>24.0f} {row[f'{n}_mm_p90']:>6.0f} {row[f'{n}_deg_median']:>8.1f} "
            f"{row[f'{n}_deg_p90']:>6.1f}" for n in found))
    print("finder time per frame: " + ", ".join(f"{n} {s * 1000:.1f} ms" for n, s in seconds.items()))
    write_results(args.out, {"frames": int(len(frames)), "seed": args.seed, "rows": rows,
                             "ms_per_frame": {n: s * 1000.0 for n, s in seconds.items()}})
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
