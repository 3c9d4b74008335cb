"""How cube agents' unfinished imagined episodes end, in their own world and in worlds they never trained in.

    python benchmarks/bench_cube_imagined_endings.py --run-dir runs/checked_cube_d/seed_7 ... \\
        [--world cube_state_walls --world cube_state] [--episodes 500] [--seed 7]

Each agent (``local_model='state'``) plays its deterministic policy from starts drawn as ``RealPushCube-v0``'s resets,
for its episode length, in its own state model's world and in each ``--world`` (``fog-eval-imagined --starts reset
[--state-model W]``'s episodes, :mod:`fog_agent.imagined`), and every unfinished episode is classified by its last
imagined state as ``bench_cube_handover`` classifies the true ones: the cube *pinned* at a wall, the robot *stuck* at
a wall away from the cube, or *other*, and counted apart when the cube ends *beyond the goal* (between it and the
corner behind it: a push that overshot) or past either line through the goal's centre (x or y above 0.75 m: the
cube went by the goal toward the wall behind it). Also per world: the share of episodes, finished or not, in which
the cube is pinned at some step, and the unfinished episodes' median last cube-to-goal and robot-to-cube distances
and the share of them whose cube stood still (moved under 1 cm) over their last 20 steps. Prints a table; writes
JSON.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.agent_runs_cli import parse_run_dirs, run_dirs_parser, write_results  # noqa: E402
from benchmarks.bench_cube_handover import beyond_goal, ending, pinned  # noqa: E402
from benchmarks.bench_cube_true_state import load_cube_agent  # noqa: E402
from fog_agent.imagined import own_world  # noqa: E402
from fog_envs.real.cube_scene import GOAL_CENTER  # noqa: E402

STILL = 0.01  #: metres the cube moves in the last steps of an unfinished episode under which it stands still


def probe_to_state(probe: np.ndarray) -> np.ndarray:
    """Cube probe targets (..., 8) (robot x, y, cos/sin yaw; cube x, y, cos/sin 4·yaw) as the reference system's
    state (..., 6): robot x, y, yaw; cube x, y, yaw (the cube's modulo 90°)."""
    p = np.asarray(probe, float)
    if p.shape[-1] != 8:
        raise ValueError(f"expected cube probe targets with 8 entries, got shape {p.shape}")
    return np.stack([p[..., 0], p[..., 1], np.arctan2(p[..., 3], p[..., 2]),
                     p[..., 4], p[..., 5], np.arctan2(p[..., 7], p[..., 6]) / 4], axis=-1)


def endings(states: np.ndarray, successes: np.ndarray, tail: int = 20) -> dict[str, Any]:
    """Summary of episodes' imagined true-form states (T, N, 6) and success flags (N,): the unfinished episodes'
    endings by their last state (and how many of them end with the cube beyond the goal, and past one of the lines
    through the goal's centre toward the walls behind it), the share of all episodes pinned at some step, the
    unfinished ones' median last cube-to-goal and robot-to-cube distances, and the share of them whose cube moved
    under ``STILL`` metres in the last ``tail`` steps."""
    last = states[-1]
    failed = np.flatnonzero(~successes)
    kinds = [ending(last[i]) for i in failed]
    ever = pinned(states).any(0)
    goal = np.asarray(GOAL_CENTER[:2], float)
    dist = np.linalg.norm(last[failed, 3:5] - goal, axis=-1)
    moved = np.linalg.norm(states[-1, failed, 3:5] - states[-1 - min(tail, len(states) - 1), failed, 3:5], axis=-1)
    reach = np.linalg.norm(last[failed, 3:5] - last[failed, 0:2], axis=-1)
    return {"success_rate": float(successes.mean()), "failed": int(failed.size),
            **{k: kinds.count(k) for k in ("pinned", "stuck", "other")},
            "beyond_goal": int(beyond_goal(last[failed]).sum()),
            "past_goal_line": int((last[failed, 3:5] > goal).any(-1).sum()),
            "ever_pinned": float(ever.mean()), "ever_pinned_failed": float(ever[failed].mean()) if failed.size else 0.0,
            "ever_pinned_finished": float(ever[successes].mean()) if successes.any() else 0.0,
            "median_last_goal_distance_failed": float(np.median(dist)) if failed.size else 0.0,
            "median_last_robot_cube_distance_failed": float(np.median(reach)) if failed.size else 0.0,
            "still_failed": float((moved < STILL).mean()) if failed.size else 0.0}


def play(run: str, agent: Any, ckpt: dict[str, Any], world: str | None, episodes: int, seed: int) -> dict[str, Any]:
    """One agent in one world (None: its own): its states per step and successes, summarised by :func:`endings`."""
    envs, steps, _ = own_world(run, ckpt, episodes, "reset", None, world)
    agent.generator.manual_seed(seed)
    obs, _ = envs.reset(seed=seed)
    sdim = obs.shape[1] // 2
    states, success = [probe_to_state(obs[:, :sdim])], np.zeros(episodes, bool)
    for _ in range(steps):
        with torch.no_grad():
            action = agent.act(torch.as_tensor(obs), deterministic=True).cpu().numpy()
        obs, _, _, _, info = envs.step(action)
        success |= np.asarray(info["is_success"], bool)
        states.append(probe_to_state(obs[:, :sdim]))
    envs.close()
    return {"run": run, "world": world or ckpt.get("state_model"), "own": world is None,
            **endings(np.stack(states), success)}


def main(argv: list[str] | None = None) -> int:
    parser = run_dirs_parser(__doc__, Path("benchmarks/results/cube_imagined_endings.json"), episodes=500, seed=7)
    parser.add_argument("--world", action="append", default=[],
                        help="a state model's name or path to play in besides the agent's own world (repeatable)")
    args = parse_run_dirs(parser, argv=argv)
    rows = []
    for run in args.run_dir:
        agent, ckpt = load_cube_agent(run)
        rows += [play(run, agent, ckpt, world, args.episodes, args.seed) for world in [None, *args.world]]
    print(f"{'run':<28} {'world':<22} {'success':>8} {'pinned':>7} {'stuck':>6} {'other':>6} {'ever pinned':>12} "
          f"{'(failed)':>9} {'goal dist':>10} {'reach':>6} {'still':>6} {'beyond goal':>12} {'past a line':>12}")
    for r in rows:
        print(f"{r['run'][-28:]:<28} {str(r['world'])[-22:]:<22} {r['success_rate']:>8.1%} {r['pinned']:>7} "
              f"{r['stuck']:>6} {r['other']:>6} {r['ever_pinned']:>12.1%} {r['ever_pinned_failed']:>9.1%} "
              f"{r['median_last_goal_distance_failed']:>10.2f} {r['median_last_robot_cube_distance_failed']:>6.2f} "
              f"{r['still_failed']:>6.0%} {r['beyond_goal']:>12} {r['past_goal_line']:>12}")
    write_results(args.out, {"run_dirs": args.run_dir, "worlds": args.world, "episodes": args.episodes,
                             "seed": args.seed, "rows": rows})
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
