"""How well each chain of Push-T readers reads the agent and the block on fresh real frames.

    python benchmarks/bench_agent_reading.py [--frames 1000] [--seed 300000] [--chain NAME=R1,R2 ...]

Two kinds of ``RealPushT-v0`` frames, none seen by any fit: reset frames (seeds ``seed``, ``seed + 1``, …: agent
and block anywhere, as where every deployed episode starts) and near-goal frames (the block within 12 px / 6° of
its goal, the agent anywhere off it: :func:`fog_envs.real.pusht_goal_frames.goal_frames`, seed ``seed``). Each
chain reads them (the shipped probe, then the readers in turn: :mod:`fog_envs.wm.readers`); the table gives the
agent's error (median, 90th percentile, maximum, share over 20 px, of 512) and the block's (median px and degrees).
Default chains: the probe alone, the shipped deployment's readers, and the agent finder before them. Writes JSON
(default ``benchmarks/results/agent_reading.json``).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.agent_runs_cli import write_results  # noqa: E402
from fog_envs.real.pusht_goal_frames import goal_frames, probe_to_true  # noqa: E402
from fog_envs.wm.agent_finder_cli import agent_errors, reset_frames  # noqa: E402
from fog_envs.wm.local_reader import pose_errors  # noqa: E402
from fog_envs.wm.model import WorldModel  # noqa: E402
from fog_envs.wm.readers import load_reader, refine_all  # noqa: E402

DEFAULT_CHAINS = ("probe=", "deployed=pusht_local_reader,pusht_goal_reader",
                  "finder=pusht_agent_finder,pusht_local_reader,pusht_goal_reader")


def parse_chain(text: str) -> tuple[str, tuple[str, ...]]:
    """``NAME=R1,R2`` → ``(NAME, (R1, R2))`` (an empty list: the probe alone)."""
    name, sep, readers = text.partition("=")
    if not sep or not name:
        raise argparse.ArgumentTypeError(f"--chain wants NAME=READER,READER (or NAME= for the probe alone), got {text!r}")
    return name, tuple(r for r in readers.split(",") if r)


def errors(read: np.ndarray, true: np.ndarray) -> dict[str, float]:
    """Agent and block errors of true-layout readings (n, 5) against the true states (n, 5)."""
    block = pose_errors(read, true)
    return {**agent_errors(read[:, 0:2], true[:, 0:2]), "block_px_median": block["block_px_median"],
            "block_deg_median": block["block_deg_median"]}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--frames", type=int, default=1000, help="frames of each kind")
    parser.add_argument("--seed", type=int, default=300_000)
    parser.add_argument("--chain", type=parse_chain, action="append", help="NAME=READER,READER (repeatable)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out", default="benchmarks/results/agent_reading.json")
    args = parser.parse_args(argv)
    if args.frames < 1:
        parser.error(f"--frames must be >= 1, got {args.frames}")
    torch.set_num_threads(args.threads)
    chains = dict(args.chain or [parse_chain(c) for c in DEFAULT_CHAINS])
    t0 = time.perf_counter()
    sets = {"resets": reset_frames(args.frames, args.seed), "near_goal": goal_frames(args.frames, args.seed)}
    probe = WorldModel.load("pusht").probe
    readers = {name: [load_reader(r) for r in chain] for name, chain in chains.items()}
    results: dict[str, dict[str, dict[str, float]]] = {}
    for kind, (frames, true) in sets.items():
        with torch.no_grad():
            readings = probe(torch.from_numpy(frames)).double()
        for name, chain in readers.items():
            read = probe_to_true(refine_all(chain, frames, readings).numpy())
            results.setdefault(name, {})[kind] = errors(read, true)
    header = f"{'chain':<10} {'frames':<10} {'agent px: median':>16} {'p90':>7} {'max':>7} {'> 20 px':>8} {'block px':>9} {'block °':>8}"
    print(header)
    for name, kinds in results.items():
        for kind, e in kinds.items():
            print(f"{name:<10} {kind:<10} {e['agent_px_median']:>16.2f} {e['agent_px_p90']:>7.1f} {e['agent_px_max']:>7.1f} "
                  f"{100 * e['share_over_20px']:>7.1f}% {e['block_px_median']:>9.2f} {e['block_deg_median']:>8.2f}")
    out = {"frames": args.frames, "seed": args.seed, "chains": {k: list(v) for k, v in chains.items()},
           "results": results, "seconds": round(time.perf_counter() - t0, 1)}
    write_results(args.out, out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
