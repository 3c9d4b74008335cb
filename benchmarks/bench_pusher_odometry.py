"""How well a deployed Push-T agent knows where its pusher is: the readers' reading of each frame against the pusher
odometry (:mod:`fog_envs.wm.pusher_odometry`) tracked from the same readings and actions.

    python benchmarks/bench_pusher_odometry.py --run-dir runs/base_s1 [--episodes 10] [--steps 300]

The agent (trained with ``local_model="state"``) acts with its deterministic policy from the readers' readings of
``RealPushT-v0``'s frames (as ``fog-eval --readers ...`` without ``--plan``) on the standard seeded episodes; from the
same readings and actions the odometry bundle tracks the pusher with each ``--track
ESTIMATOR:WINDOW[:RADIUS[:MOVE]]`` (the start pooled by the mean or median over the last WINDOW pooled frames, 0:
all, of the readings within RADIUS px of the densest, a frame pooled where the pusher moved MOVE px since the last
pooled one; default: several). For each source the pusher's error (px of 512) against the true position: median,
90th and 99th percentile and the share of frames more than 5 px off, over every visited frame, over the frames where
the block moves (the pusher in contact: the block's pose changes by more than 0.5 px or 0.005 rad in the step before
or after), and over the episode's steps from 50 on. Prints a table and writes JSON (default
``benchmarks/results/pusher_odometry.json``).
"""

from __future__ import annotations

import dataclasses
import sys
import time
from pathlib import Path

import gymnasium as gym
import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import fog_envs  # noqa: E402,F401
from benchmarks.agent_runs_cli import parse_run_dirs, run_dirs_parser, write_results  # noqa: E402
from fog_agent.controller import FogController  # noqa: E402
from fog_agent.evaluate import learned_env_for, load_agent  # noqa: E402
from fog_agent.run_io import checkpoint_path  # noqa: E402
from fog_envs.data.motion import object_motion  # noqa: E402
from fog_envs.real.pusht import TABLE_SIZE  # noqa: E402
from fog_envs.wm.pusher_odometry import PusherOdometry  # noqa: E402
from fog_envs.wm.readers import load_reader  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results" / "pusher_odometry.json"
TRACKS = ("median:0", "median:0:8", "median:0:8:0.5", "median:0:8:1", "median:0:8:2", "median:0:5:1", "mean:0:5:1")
FAR_PX = 5.0
LATE_STEP = 50


def with_track(odometry: PusherOdometry, track: str) -> PusherOdometry:
    """A copy of ``odometry`` that pools the start readings as ``track`` says: ``ESTIMATOR:WINDOW[:RADIUS[:MOVE]]``
    (``"median:0:5:1"``: the median of the readings within 5 px of the densest, over the whole episode, a frame
    pooled where the pusher moved 1 px since the last pooled one; radius and move in px)."""
    estimator, window, *rest = track.split(":")
    radius, move = (float(v) / TABLE_SIZE for v in (rest + ["0", "0"])[:2])
    config = dataclasses.replace(odometry.config, estimator=estimator, window=int(window), inlier_radius=radius,
                                 min_move=move)
    return PusherOdometry(config).set_coefficients(odometry.coefficients.numpy())


def episode_errors(controller: FogController, tracks_from: dict[str, PusherOdometry], env: gym.Env, seed: int,
                   steps: int) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """Per-frame pusher errors (px) of the readings and of each odometry over one episode, and its true states."""
    observer = controller.observer
    obs, info = env.reset(seed=seed)
    controller.reset(obs, info)
    reading = observer.x[:, :2].double()
    tracks = {name: odo.track(reading) for name, odo in tracks_from.items()}
    est = {"readers": [reading[0]], **{name: [reading[0]] for name in tracks}}
    states = [info["state"]]
    action = None
    for t in range(steps):
        new_action = controller.act(obs, info)
        if action is not None:
            reading = observer.x[:, :2].double()
            est["readers"].append(reading[0])
            for name, track in tracks.items():
                est[name].append(track.update(torch.from_numpy(action.astype(np.float64))[None], reading)[0])
            states.append(info["state"])
        action = new_action
        obs, _, terminated, truncated, info = env.step(action)
        if terminated or truncated:
            break
    true = np.array(states)[:, :2] / TABLE_SIZE
    errors = {k: np.linalg.norm(torch.stack(v).numpy() - true, axis=1) * TABLE_SIZE for k, v in est.items()}
    return errors, np.array(states)


def summary(errors: np.ndarray) -> dict[str, float | None]:
    """Median, 90th and 99th percentile and the share beyond ``FAR_PX`` (None where no frame falls in the part),
    and the frame count."""
    if not len(errors):
        return {"median": None, "p90": None, "p99": None, "far": None, "frames": 0}
    return {"median": float(np.median(errors)), "p90": float(np.percentile(errors, 90)),
            "p99": float(np.percentile(errors, 99)), "far": float(np.mean(errors > FAR_PX)), "frames": int(len(errors))}


def cell(part: dict[str, float | None]) -> str:
    if part["median"] is None:
        return "n/a"
    return f"{part['median']:.2f} / {part['p90']:.2f} / {part['p99']:.1f} / {100 * part['far']:.1f}"


def measure(run_dir: str, episodes: int, seed: int, steps: int, odometry_name: str,
            reader_names: tuple[str, ...], tracks: tuple[str, ...] = TRACKS) -> dict:
    agent, ckpt = load_agent(checkpoint_path(run_dir))
    envs = learned_env_for(ckpt)
    observer = envs.make_observer(readers=[load_reader(r) for r in reader_names])
    controller = FogController(agent, observer)
    odometry = PusherOdometry.load(odometry_name)[0]
    odometries = {name: with_track(odometry, name) for name in tracks}
    env = gym.make("RealPushT-v0")
    motion = object_motion("RealPushT-v0")
    pooled: dict[str, dict[str, list[np.ndarray]]] = {}
    t0 = time.perf_counter()
    for ep in range(episodes):
        errors, states = episode_errors(controller, odometries, env, seed + ep, steps)
        moved = motion.moved(states)
        contact = np.zeros(len(states), bool)
        contact[:-1] |= moved
        contact[1:] |= moved
        late = np.arange(len(states)) >= LATE_STEP
        for name, e in errors.items():
            for part, mask in (("all", slice(None)), ("contact", contact), ("late", late)):
                pooled.setdefault(name, {}).setdefault(part, []).append(e[mask])
    env.close()
    rows = {name: {part: summary(np.concatenate(v)) for part, v in parts.items()} for name, parts in pooled.items()}
    return {"run_dir": run_dir, "episodes": episodes, "seed": seed, "steps": steps, "readers": list(reader_names),
            "odometry": odometry_name, "pusher_px": rows, "seconds": round(time.perf_counter() - t0, 1)}


def main() -> None:
    parser = run_dirs_parser(__doc__, RESULTS, episodes=10)
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--odometry", default="pusht_odometry")
    parser.add_argument("--track", action="append", default=None,
                        help=f"ESTIMATOR:WINDOW[:RADIUS_PX[:MOVE_PX]] start pools to compare (default: {' '.join(TRACKS)})")
    parser.add_argument("--reader", action="append", default=None,
                        help="reader bundles in turn (default: pusht_local_reader, pusht_goal_reader)")
    args = parse_run_dirs(parser)
    readers = tuple(args.reader or ("pusht_local_reader", "pusht_goal_reader"))
    tracks = tuple(args.track or TRACKS)
    results = [measure(r, args.episodes, args.seed, args.steps, args.odometry, readers, tracks)
               for r in args.run_dir]
    print(f"pusher error, px of 512: median / p90 / p99 / % of frames beyond {FAR_PX:g} px")
    print(f"{'run':<16} {'pusher from':<11} {'all frames':>26} {'contact':>26} {'steps ≥ 50':>26}")
    for res in results:
        for name, parts in res["pusher_px"].items():
            cells = [cell(parts[p]) for p in ("all", "contact", "late")]
            print(f"{Path(res['run_dir']).name:<16} {name:<11} {cells[0]:>26} {cells[1]:>26} {cells[2]:>26}")
    write_results(args.out, {"results": results})


if __name__ == "__main__":
    main()
