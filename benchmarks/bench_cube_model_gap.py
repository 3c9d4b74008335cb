"""Where the cube's state model and the reference system part, along the agent's own real trajectories.

    MUJOCO_GL=egl python benchmarks/bench_cube_model_gap.py --run-dir runs/cube_g98_s0 \\
        --state-models cube_state runs/state_cube_walls/bundle [--episodes 50] [--seed 100000] [--horizon 5]

Plays ``RealPushCube-v0``'s seeded episodes with the agent's actor on the true state (as
``bench_cube_true_state.py`` does), then for each state model (a shipped name or a bundle path):

* open-loop errors: from every step t of those episodes, the model rolled ``--horizon`` steps with the actions
  the actor took, against where the robot and the cube really went, split by situation at t: the cube pinned
  (the robot touching a cube that touches a wall), the robot at a wall (not touching the cube), pushing in the
  open, and free (neither);
* imagined success: the same actor closed-loop in the model (the model as the world) from the same 50 start
  states, each episode paired with the real one: the episodes the model promises and reality does not are the
  model's share of the agent's failures.

Prints a table and writes JSON (default ``benchmarks/results/cube_model_gap_<run name>.json``).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.agent_runs_cli import write_results  # noqa: E402
from benchmarks.bench_cube_true_state import true_state_episodes  # noqa: E402
from fog_agent.evaluate import learned_env_for, load_agent  # noqa: E402
from fog_agent.run_io import checkpoint_path  # noqa: E402
from fog_envs.learned.state_local import StateLocalModel  # noqa: E402
from fog_envs.real.cube_scene import ARENA_HALF_SIZE, CUBE_HALF_SIZE  # noqa: E402
from fog_envs.wm.state_model import StateModel  # noqa: E402
from fog_envs.wm.tasks import get_task  # noqa: E402

TOUCH = 0.45  #: robot-centre-to-cube-centre distance (m) below which the robot is taken to touch the cube
CUBE_AT_WALL = ARENA_HALF_SIZE - CUBE_HALF_SIZE - 0.02  #: cube centres beyond this (|x| or |y|) touch a wall
ROBOT_AT_WALL = ARENA_HALF_SIZE - 0.2  #: robot centres beyond this touch a wall (half extents 0.22 × 0.15 m)
SITUATIONS = ("pinned", "robot_at_wall", "pushing_in_the_open", "free")


def situation(state: np.ndarray) -> str:
    """Which of :data:`SITUATIONS` a true state ``[robot_x, robot_y, yaw, cube_x, cube_y, cube_yaw]`` is in."""
    touching = float(np.linalg.norm(state[3:5] - state[:2])) < TOUCH
    if touching:
        return "pinned" if float(np.abs(state[3:5]).max()) > CUBE_AT_WALL else "pushing_in_the_open"
    return "robot_at_wall" if float(np.abs(state[:2]).max()) > ROBOT_AT_WALL else "free"


@torch.no_grad()
def open_loop_errors(local: Any, states: list[np.ndarray], actions: list[np.ndarray],
                     horizon: int) -> dict[str, dict[str, float]]:
    """Per situation: median and 90th-percentile robot and cube position errors (m) of ``horizon``-step
    open-loop rollouts from every step t ≥ 1 (the local state ``[s_t, s_{t−1}]`` from the truth), and the
    median real displacement of each over those steps."""
    task = get_task("cube")
    rows: dict[str, list[np.ndarray]] = {k: [] for k in SITUATIONS}
    for S, A in zip(states, actions):
        P = torch.from_numpy(task.probe_targets(S).astype(np.float32))
        A = torch.from_numpy(A.astype(np.float32))
        ts = torch.arange(1, len(S) - horizon)
        x = torch.cat([P[ts], P[ts - 1]], -1)
        for k in range(horizon):
            x = local.step(x, A[ts + k])
        pred, true, now = x[:, :local.sdim].numpy(), P[ts + horizon].numpy(), P[ts].numpy()
        err = np.stack([np.linalg.norm(pred[:, :2] - true[:, :2], axis=-1),
                        np.linalg.norm(pred[:, 4:6] - true[:, 4:6], axis=-1),
                        np.linalg.norm(true[:, :2] - now[:, :2], axis=-1),
                        np.linalg.norm(true[:, 4:6] - now[:, 4:6], axis=-1)], -1)
        for j, t in enumerate(ts.tolist()):
            rows[situation(S[t])].append(err[j])
    out = {}
    for name, r in rows.items():
        e = np.asarray(r).reshape(-1, 4)
        out[name] = {"steps": len(e)} if not len(e) else {
            "steps": len(e), "robot_err_median": float(np.median(e[:, 0])), "robot_err_p90": float(np.quantile(e[:, 0], 0.9)),
            "cube_err_median": float(np.median(e[:, 1])), "cube_err_p90": float(np.quantile(e[:, 1], 0.9)),
            "robot_moved_median": float(np.median(e[:, 2])), "cube_moved_median": float(np.median(e[:, 3]))}
    return out


@torch.no_grad()
def imagined_successes(agent: Any, local: Any, starts: np.ndarray, steps: int) -> list[bool]:
    """Per start state (N, 6): whether the actor, deterministic and closed-loop in ``local`` as the world from
    that state at rest, brings the cube into the goal within ``steps`` steps."""
    task = get_task("cube")
    x = local.start(torch.from_numpy(task.probe_targets(starts).astype(np.float32)))
    reached = torch.zeros(len(starts), dtype=torch.bool)
    for _ in range(steps):
        x = local.step(x, agent.act(x, deterministic=True).clamp(-1.0, 1.0))
        reached |= task.state_outcome(x[:, :local.sdim])[0]
    return reached.tolist()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--run-dir", required=True)
    parser.add_argument("--state-models", nargs="+", default=["cube_state"],
                        help="state models to compare (shipped names or bundle paths)")
    parser.add_argument("--episodes", type=int, default=50)
    parser.add_argument("--seed", type=int, default=100_000)
    parser.add_argument("--horizon", type=int, default=5)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--out", default=None)
    args = parser.parse_args(argv)
    if args.episodes < 1 or args.horizon < 1:
        parser.error(f"--episodes and --horizon must be >= 1, got {args.episodes} and {args.horizon}")
    torch.set_num_threads(args.threads)
    t0 = time.perf_counter()
    agent, ckpt = load_agent(checkpoint_path(args.run_dir))
    eps = true_state_episodes(args.run_dir, args.episodes, args.seed)  # refuses all but cube state agents
    world = learned_env_for(ckpt).backend.state_local.model  # the cube's world model: probe, task, devices
    real = np.asarray(eps["successes"])
    starts = np.stack([s[0] for s in eps["states"]])
    steps = len(eps["actions"][0])
    out: dict[str, Any] = {"run_dir": args.run_dir, "agent_state_model": ckpt.get("state_model"),
                           "episodes": args.episodes, "seed": args.seed, "horizon": args.horizon,
                           "real_success_rate": float(real.mean()), "models": {}}
    print(f"{args.run_dir}: the actor on the true state finishes {int(real.sum())} / {args.episodes}; "
          f"{args.horizon}-step open-loop errors (mm, median / p90) along its real steps:")
    print(f"  {'state model':34s} {'situation':20s} {'steps':>6s} {'robot':>11s} {'cube':>11s} "
          f"{'real move r/c':>14s}")
    for name in args.state_models:
        local = StateLocalModel(world, StateModel.load(name, task="cube")[0])
        errors = open_loop_errors(local, eps["states"], eps["actions"], args.horizon)
        dreamed = np.asarray(imagined_successes(agent, local, starts, steps))
        out["models"][name] = {
            "open_loop": errors, "imagined_success_rate": float(dreamed.mean()),
            "imagined_successes": dreamed.tolist(),
            "paired": {"both": int((dreamed & real).sum()), "model_only": int((dreamed & ~real).sum()),
                       "real_only": int((~dreamed & real).sum()), "neither": int((~dreamed & ~real).sum())}}
        for sit, e in errors.items():
            if e["steps"]:
                print(f"  {name[-34:]:34s} {sit:20s} {e['steps']:6d} "
                      f"{1e3 * e['robot_err_median']:5.0f}/{1e3 * e['robot_err_p90']:5.0f} "
                      f"{1e3 * e['cube_err_median']:5.0f}/{1e3 * e['cube_err_p90']:5.0f} "
                      f"{1e3 * e['robot_moved_median']:7.0f}/{1e3 * e['cube_moved_median']:5.0f}")
        p = out["models"][name]["paired"]
        print(f"  {name[-34:]:34s} the actor in the model finishes {int(dreamed.sum())} / {args.episodes} "
              f"(both {p['both']}, only the model {p['model_only']}, only reality {p['real_only']})")
    out["seconds"] = round(time.perf_counter() - t0, 1)
    write_results(args.out or f"benchmarks/results/cube_model_gap_{Path(args.run_dir).name}.json", out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
