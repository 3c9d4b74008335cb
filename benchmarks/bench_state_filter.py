"""How far a constant-gain filter (:mod:`fog_envs.learned.state_filter`) brings a state reading towards the truth.

    python benchmarks/bench_state_filter.py [--heldout datasets/pusht_agent_heldout.h5] [--bundle pusht] \
        [--state-model pusht_state] [--reader pusht_local_reader --reader pusht_goal_reader] \
        [--agent-gains 1 0.5 0.3] [--block-gains 1 0.5 0.3] [--horizon 8] [--out ...]

Push-T. Each held-out episode's real frames are read as a deployed agent reads them (the bundle's probe, refined
by the ``--reader`` chain) and filtered with every pair of gains (agent columns, block columns; 1 / 1 is the
reading alone, as deployed without a filter), using the real actions; a last row starts from the true state.
Per pair (medians over all steps): the filtered state's error against the true state (agent px, block px / °),
the error of the agent's velocity ``ŝ_t − ŝ_{t−1}`` (px per step), and the error after ``--horizon`` steps of the
state model run open loop from the filtered ``[ŝ_t, ŝ_{t−1}]`` with the real actions, which is what a planner
rates its sequences by. Prints a table and
writes JSON (default ``benchmarks/results/state_filter.json``).
"""

from __future__ import annotations

import argparse
import itertools
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.agent_runs_cli import write_results  # noqa: E402
from fog_envs.data.format import load_arrays  # noqa: E402
from fog_envs.learned.state_filter import filter_sequence  # noqa: E402
from fog_envs.wm.local_reader_cli import probe_readings  # noqa: E402
from fog_envs.wm.model import WorldModel  # noqa: E402
from fog_envs.wm.readers import load_reader, refine_all  # noqa: E402
from fog_envs.wm.state_model import StateModel  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results" / "state_filter.json"


def episode_slices(ends: np.ndarray) -> list[slice]:
    starts = np.concatenate([[0], ends[:-1]])
    return [slice(int(a), int(b)) for a, b in zip(starts, ends)]


@torch.no_grad()
def open_loop(step: Any, s: torch.Tensor, s_prev: torch.Tensor, actions: torch.Tensor) -> torch.Tensor:
    """The state after ``actions`` (H, B, A) from ``[s, s_prev]`` (B, S), open loop."""
    for a in actions:
        s, s_prev = step(s, s_prev, a), s
    return s


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--heldout", default="datasets/pusht_agent_heldout.h5")
    parser.add_argument("--bundle", default="pusht", help="the world-model bundle whose probe reads the frames")
    parser.add_argument("--state-model", default="pusht_state")
    parser.add_argument("--reader", action="append", default=[], help="reader bundles applied in turn (repeatable)")
    parser.add_argument("--agent-gains", type=float, nargs="+", default=[1.0, 0.7, 0.5, 0.3, 0.2])
    parser.add_argument("--block-gains", type=float, nargs="+", default=[1.0, 0.7, 0.5, 0.3, 0.2])
    parser.add_argument("--horizon", type=int, default=8)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--out", default=str(RESULTS))
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    t0 = time.perf_counter()
    model = WorldModel.load(args.bundle).eval()
    if model.config.task != "pusht":
        parser.error(f"--bundle {args.bundle} is a {model.config.task} bundle; this benchmark is Push-T's")
    spec = model.task
    sm = StateModel.load(args.state_model, task="pusht")[0].eval()
    readers = [load_reader(r) for r in args.reader]
    data = load_arrays(args.heldout, ("frames", "actions", "state", "episode_ends"))
    readings = refine_all(readers, data["frames"], probe_readings(model, data["frames"]).float())
    true = torch.from_numpy(spec.probe_targets(data["state"]))
    actions = torch.from_numpy(data["actions"]).float()
    pairs = list(itertools.product(args.agent_gains, args.block_gains)) + [(None, None)]
    gains = torch.tensor([[ga, ga, gb, gb, gb, gb] for ga, gb in pairs[:-1]] + [[1.0] * 6])  # (G, S)
    g = len(pairs)
    errors: dict[str, list[list[np.ndarray]]] = {k: [[] for _ in pairs] for k in
                                                 ("agent_px", "block_px", "block_deg", "velocity_px",
                                                  "ahead_agent_px", "ahead_block_px", "ahead_block_deg")}
    h = args.horizon
    with torch.no_grad():
        for sl in episode_slices(data["episode_ends"]):
            r, a, tr = readings[sl], actions[sl], true[sl].float()
            n = len(r)
            filt = filter_sequence(r[:, None].expand(n, g, -1), a[:, None].expand(n, g, -1), gains, sm.step)
            filt[:, -1] = tr  # the last row: the true state, unfiltered (the floor)
            starts = torch.arange(1, n - h)
            ahead = open_loop(sm.step, filt[starts].reshape(-1, 6), filt[starts - 1].reshape(-1, 6),
                              a[starts[:, None] + torch.arange(h)].transpose(0, 1).repeat_interleave(g, 1))
            ahead = ahead.reshape(len(starts), g, 6)
            for j in range(g):
                e = spec.probe_errors(filt[:, j].double().numpy(), tr.numpy())
                for k in ("agent_px", "block_px", "block_deg"):
                    errors[k][j].append(e[k])
                vel = (filt[1:, j, :2] - filt[:-1, j, :2]) - (tr[1:, :2] - tr[:-1, :2])
                errors["velocity_px"][j].append(vel.norm(dim=1).numpy() * 512.0)
                e = spec.probe_errors(ahead[:, j].double().numpy(), tr[starts + h].numpy())
                for k in ("agent_px", "block_px", "block_deg"):
                    errors["ahead_" + k][j].append(e[k])
    rows = []
    for j, (ga, gb) in enumerate(pairs):
        rows.append({"agent_gain": ga, "block_gain": gb,
                     **{k: float(np.median(np.concatenate(v[j]))) for k, v in errors.items()}})
    print(f"{'agent K':>7s} {'block K':>7s} | {'agent px':>8s} {'block px':>8s} {'block °':>7s} {'vel px':>6s} | "
          f"{h}-step ahead: {'agent px':>8s} {'block px':>8s} {'block °':>7s}")
    for r in rows:
        gains_cell = "   true state" if r["agent_gain"] is None else f"{r['agent_gain']:7.2f} {r['block_gain']:7.2f}"
        print(f"{gains_cell:15s} | {r['agent_px']:8.2f} {r['block_px']:8.2f} "
              f"{r['block_deg']:7.2f} {r['velocity_px']:6.2f} | {'':14s}{r['ahead_agent_px']:8.2f} "
              f"{r['ahead_block_px']:8.2f} {r['ahead_block_deg']:7.2f}")
    write_results(args.out, {"heldout": args.heldout, "bundle": args.bundle, "state_model": args.state_model,
                             "readers": args.reader, "horizon": h, "frames": int(len(readings)),
                             "seconds": round(time.perf_counter() - t0, 1), "rows": rows})


if __name__ == "__main__":
    main()
