"""The cube agent's ceiling for perception: its actor acting on the true state, next to a deployment from the frames.

    MUJOCO_GL=egl python benchmarks/bench_cube_true_state.py --run-dir runs/cube_g98_s0 \\
        --compare runs/cube_g98_s0/eval_RealPushCube-v0.json [--episodes 50] [--seed 100000]

Runs the agent's deterministic actor on ``RealPushCube-v0``'s seeded episodes with its local state built from the
simulator's true state (the task's probe targets, no frame read) instead of a reading of the ego frame: what the
agent does where perception is perfect. With ``--compare`` (an evaluation JSON of the same run, episodes and seed,
e.g. ``fog-eval --deployment cube``'s), the episodes each one finishes that the other does not. Prints a line and
writes JSON (default ``benchmarks/results/cube_true_state_<run name>.json``).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.agent_runs_cli import write_results  # noqa: E402
from fog_agent.evaluate import learned_env_for, load_agent  # noqa: E402
from fog_agent.run_io import checkpoint_path  # noqa: E402
from fog_envs.evaluation import evaluate  # noqa: E402
from fog_envs.wm.tasks import get_task  # noqa: E402


class TrueStateController:
    """``fog_envs.evaluation.Controller``: the agent's deterministic actor on ``[s_t, s_{t−1}]`` built from the true
    state each step's ``info["state"]`` carries (the cube task's probe targets of it), no frame read."""

    def __init__(self, agent: Any, local: Any) -> None:
        self.agent, self.local = agent, local
        self.x: torch.Tensor | None = None
        self._fresh = True

    @staticmethod
    def _reading(info: dict[str, Any]) -> torch.Tensor:
        return torch.from_numpy(get_task("cube").probe_targets(np.asarray(info["state"])[None]).astype(np.float32))

    def reset(self, obs: np.ndarray, info: dict[str, Any]) -> None:
        self.x, self._fresh = self.local.start(self._reading(info)), True

    def act(self, obs: np.ndarray, info: dict[str, Any]) -> np.ndarray:
        if not self._fresh:
            self.x = self.local.advance(self.x, self._reading(info))
        self._fresh = False
        action = self.agent.act(self.x, deterministic=True).squeeze(0).cpu().numpy()
        return np.clip(action.astype(np.float32), -1.0, 1.0)


def true_state_successes(run_dir: str, episodes: int, seed: int) -> list[bool]:
    """Per-episode success of ``run_dir``'s actor on the true state (episode i: seed + i)."""
    agent, ckpt = load_agent(checkpoint_path(run_dir))
    if ckpt.get("local_model") != "state" or ckpt["env_id"] != "WMPushCube-v0":
        raise ValueError(f"{run_dir}: a cube agent with local_model='state' is needed, got {ckpt['env_id']} with "
                         f"local_model={ckpt.get('local_model')!r}")
    local = learned_env_for(ckpt).backend.state_local
    result = evaluate(lambda: TrueStateController(agent, local), "RealPushCube-v0", episodes=episodes, seed=seed,
                      video_dir=None, video_episodes=0)
    return [bool(s) for s in result.successes]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--run-dir", required=True)
    parser.add_argument("--compare", nargs="*", default=[], help="evaluation JSONs of the same run and episodes")
    parser.add_argument("--episodes", type=int, default=50)
    parser.add_argument("--seed", type=int, default=100_000)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--out", default=None)
    args = parser.parse_args(argv)
    if args.episodes < 1:
        parser.error(f"--episodes must be >= 1, got {args.episodes}")
    torch.set_num_threads(args.threads)
    t0 = time.perf_counter()
    truth = true_state_successes(args.run_dir, args.episodes, args.seed)
    out: dict[str, Any] = {"run_dir": args.run_dir, "episodes": args.episodes, "seed": args.seed,
                           "true_state_success_rate": float(np.mean(truth)), "true_state_successes": truth,
                           "compare": {}}
    print(f"{args.run_dir}: the actor on the true state finishes {sum(truth)} / {args.episodes}")
    for path in args.compare:
        other = json.loads(Path(path).read_text())
        if (other.get("env_id"), other.get("episodes"), other.get("seed")) != ("RealPushCube-v0", args.episodes,
                                                                               args.seed):
            parser.error(f"--compare {path}: not RealPushCube-v0 over the same {args.episodes} episodes from seed "
                         f"{args.seed}")
        theirs = [bool(s) for s in other["successes"]]
        row = {"success_rate": float(np.mean(theirs)),
               "only_true_state": [i for i in range(args.episodes) if truth[i] and not theirs[i]],
               "only_this": [i for i in range(args.episodes) if theirs[i] and not truth[i]]}
        out["compare"][path] = row
        print(f"  {path}: {sum(theirs)} / {args.episodes}; only the true state finishes {len(row['only_true_state'])}, "
              f"only this {len(row['only_this'])}")
    out["seconds"] = round(time.perf_counter() - t0, 1)
    write_results(args.out or f"benchmarks/results/cube_true_state_{Path(args.run_dir).name}.json", out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
