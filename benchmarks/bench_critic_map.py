"""A Push-T agent's critics mapped over the pusher's position, the block held where an episode starts it.

    MUJOCO_GL=egl python benchmarks/bench_critic_map.py --run-dir runs/g98goal_s0 --episode-seed 100038 [--grid 25]

Resets ``RealPushT-v0`` with ``--episode-seed`` and takes its true state; for the pusher at every point of a
``--grid`` × ``--grid`` lattice over the table (the block as it lies, at rest), the agent's double critics rate the
local state ``[ŝ, ŝ]``. Prints the mean value (rows from the table's top edge down, columns left to right), their
disagreement |Q₁ − Q₂| and where the mean is highest, against the pusher's start; writes JSON (default
``benchmarks/results/critic_map.json``). A planner that scores its horizon with the mean is drawn to its maxima,
spurious ones included (README item 29).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import gymnasium as gym
import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.agent_runs_cli import write_results  # noqa: E402
import fog_envs  # noqa: E402,F401
from fog_agent.evaluate import checkpoint_path, load_agent  # noqa: E402
from fog_envs.wm.tasks import get_task  # noqa: E402


def critic_map(agent, block: np.ndarray, grid: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(mean value, |Q₁ − Q₂|), each (len(grid), len(grid)) over pusher positions ``(x = grid[j], y = grid[i])``
    (probe-target units) with the block's probe targets ``block`` (4,) at rest."""
    mean = np.zeros((len(grid), len(grid)))
    spread = np.zeros_like(mean)
    with torch.no_grad():
        for i, y in enumerate(grid):
            s = torch.tensor([[x, y, *block] for x in grid], dtype=torch.float32)
            q = agent.critic(agent.obs_norm(torch.cat([s, s], -1)))
            q = q.reshape(q.shape[0], len(grid))
            mean[i] = q.mean(0).numpy()
            spread[i] = (q.amax(0) - q.amin(0)).numpy()
    return mean, spread


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--run-dir", required=True)
    parser.add_argument("--episode-seed", type=int, default=100_038)
    parser.add_argument("--grid", type=int, default=25)
    parser.add_argument("--out", default="benchmarks/results/critic_map.json")
    args = parser.parse_args(argv)
    if args.grid < 2:
        parser.error(f"--grid must be >= 2, got {args.grid}")
    agent, ckpt = load_agent(checkpoint_path(args.run_dir))
    if ckpt.get("env_id") != "WMPushT-v0" or ckpt.get("local_model") != "state":
        parser.error(f"--run-dir {args.run_dir}: needs a Push-T agent trained with local_model='state'")
    env = gym.make("RealPushT-v0")
    env.reset(seed=args.episode_seed)
    start = get_task("pusht").probe_targets(env.unwrapped.true_state()[None])[0]
    env.close()
    grid = np.linspace(0.02, 0.98, args.grid)
    mean, spread = critic_map(agent, start[2:6], grid)
    with torch.no_grad():
        s = torch.as_tensor(start, dtype=torch.float32)[None]
        q = agent.critic(agent.obs_norm(torch.cat([s, s], -1)))
        q = q.reshape(q.shape[0], -1)[:, 0]
    i, j = np.unravel_index(mean.argmax(), mean.shape)
    np.set_printoptions(precision=0, suppress=True, linewidth=250)
    print(f"pusher starts at ({start[0]:.2f}, {start[1]:.2f}), value {float(q.mean()):.1f}, |Q1 - Q2| "
          f"{float(q.max() - q.min()):.1f}; block at ({start[2]:.2f}, {start[3]:.2f})")
    print("mean value (rows: y from the top edge down; columns: x)")
    print(mean)
    print("|Q1 - Q2|")
    print(spread)
    print(f"highest mean {mean.max():.1f} with the pusher at ({grid[j]:.2f}, {grid[i]:.2f}); along the top row "
          f"{mean[0].max():.1f}, mean |Q1 - Q2| there {spread[0].mean():.1f} against {spread.mean():.1f} overall")
    write_results(args.out, {"run_dir": args.run_dir, "episode_seed": args.episode_seed, "start": start.tolist(),
                             "start_value": float(q.mean()), "start_spread": float(q.max() - q.min()),
                             "grid": grid.tolist(), "mean": mean.tolist(), "spread": spread.tolist()})
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
