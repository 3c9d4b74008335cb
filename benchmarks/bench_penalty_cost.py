"""What the ensemble costs per imagined step: the cube's state-model world plain, penalised, and penalised and dreamt
by the ensemble too, side by side.

    python benchmarks/bench_penalty_cost.py --members cube_state_walls [--num-envs 64] [--horizon 16] [--reps 6]

Times windows of ``--horizon`` differentiable steps (random actions that carry gradients, the reward summed and
back-propagated, as DMO-SAPO's actor update does) in ``WMPushCube-v0`` with ``forward_model="state"``, without and
with ``state_ensemble=--members`` (λ 10, positions) and with that and ``ensemble_forward=True`` (each episode dreamt
by one of the models, README item 45), alternating the three so that the machine's load falls on all alike. Prints
imagined steps/s and the ratios to the plain world; writes JSON (default ``benchmarks/results/penalty_cost.json``).
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

import fog_envs  # noqa: E402,F401  (registers the envs)
from benchmarks.agent_runs_cli import write_results  # noqa: E402

CUBE = {"obs_type": "latent", "forward_model": "state", "local_model": "state", "bf16": False}


def window_seconds(diff, horizon: int, generator: torch.Generator) -> float:
    """Seconds for one window of ``horizon`` differentiable steps and the backward pass of its summed reward."""
    t0 = time.perf_counter()
    diff.cut_graph()
    total = 0.0
    for _ in range(horizon):
        action = (2 * torch.rand(diff.num_envs, diff.action_dim, generator=generator) - 1).requires_grad_()
        _, reward, *_ = diff.step(action)
        total = total + reward.sum()
    total.backward()
    return time.perf_counter() - t0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--members", nargs="+", required=True, help="state-model bundles (names or paths)")
    parser.add_argument("--state-model", default="cube_state")
    parser.add_argument("--num-envs", type=int, default=64)
    parser.add_argument("--horizon", type=int, default=16)
    parser.add_argument("--reps", type=int, default=6)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--out", default="benchmarks/results/penalty_cost.json")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    penalty = dict(state_ensemble=tuple(args.members), disagreement_weight=10.0, disagreement_dims=(0, 1, 4, 5))
    extra = {"plain": {}, "penalised": penalty, "ensemble": {**penalty, "ensemble_forward": True}}
    envs = {name: gym.make_vec("WMPushCube-v0", num_envs=args.num_envs, vectorization_mode="vector_entry_point",
                               state_model=args.state_model, **kw, **CUBE).unwrapped.diff for name, kw in extra.items()}
    times: dict[str, list[float]] = {name: [] for name in envs}
    for name, diff in envs.items():
        diff.reset(seed=0)
        window_seconds(diff, args.horizon, torch.Generator().manual_seed(0))  # warm-up
    for rep in range(args.reps):
        for name, diff in envs.items():
            times[name].append(window_seconds(diff, args.horizon, torch.Generator().manual_seed(rep)))
    steps = args.num_envs * args.horizon
    out = {"members": args.members, "state_model": args.state_model, "num_envs": args.num_envs,
           "horizon": args.horizon, "reps": args.reps, "threads": args.threads}
    for name, ts in times.items():
        out[name] = {"window_s_median": float(np.median(ts)), "steps_per_s": float(steps / np.median(ts))}
        print(f"{name:<10} {out[name]['steps_per_s']:>9.0f} imagined steps/s (window {np.median(ts) * 1e3:.1f} ms)")
    out["slowdown"] = out["penalised"]["window_s_median"] / out["plain"]["window_s_median"]
    out["ensemble_slowdown"] = out["ensemble"]["window_s_median"] / out["plain"]["window_s_median"]
    print(f"penalised / plain time: {out['slowdown']:.2f}×; penalised and dreamt by the ensemble / plain: "
          f"{out['ensemble_slowdown']:.2f}×")
    write_results(args.out, out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
