"""Is the "true gradient" a gradient? Central differences through the reference system at several step sizes.

    python benchmarks/fd_reliability.py --heldout datasets/pusht_heldout.h5 [--bundle pusht] [--grad-windows 64]

``benchmarks/bench_gradients.py`` judges every local model against central differences of the H-step true
return through ``RealPushT-v0`` (step ``FidelityConfig.fd_eps`` in action units). Contact is not smooth, so
those differences could depend on the step. This script takes them on the same held-out windows at the default
step and at two others and prints the cosine between them, apart for the windows where the block moved (contact)
and where it rested; close to 1 means the reference gradient is well defined at that scale. Writes
``benchmarks/results/fd_reliability_<task>.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from dataclasses import replace
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from fog_envs.wm.fidelity import FidelityConfig, _gradient_problem, object_moved, _reference_differences  # noqa: E402
from fog_envs.wm.model import WorldModel  # noqa: E402
from fog_envs.wm.train import load_play_arrays  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--heldout", required=True)
    parser.add_argument("--bundle", default="pusht", help="the bundle whose windows and task are used")
    parser.add_argument("--grad-windows", type=int, default=64)
    parser.add_argument("--eps", type=float, nargs="+", default=[0.02, 0.1], help="steps compared with the default")
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    model = WorldModel.load(args.bundle)
    data = load_play_arrays(args.heldout, model.config.task)
    cfg = FidelityConfig(grad_windows=args.grad_windows)
    problem = _gradient_problem(model, data, cfg)
    reference, _, states = _reference_differences(model, data, problem, cfg)
    moved = object_moved(states, model.task.passive_dims)
    rows = []
    for eps in args.eps:
        other, _, _ = _reference_differences(model, data, problem, replace(cfg, fd_eps=eps))
        cos = torch.nn.functional.cosine_similarity(reference, other, dim=1)
        row = {"eps": eps, "default_eps": cfg.fd_eps}
        for name, mask in (("moving", moved), ("resting", ~moved)):
            if mask.any():
                row[f"{name}_mean"], row[f"{name}_median"] = float(cos[mask].mean()), float(cos[mask].median())
        rows.append(row)
    print(f"cosine of central differences at step {cfg.fd_eps} with other steps, {len(moved)} windows "
          f"({int(moved.sum())} with the object moving), H = {cfg.grad_horizon}")
    print("step | moving mean / median | resting mean / median")
    for r in rows:
        print(f"{r['eps']:g} | {r.get('moving_mean', float('nan')):.3f} / {r.get('moving_median', float('nan')):.3f} | "
              f"{r.get('resting_mean', float('nan')):.3f} / {r.get('resting_median', float('nan')):.3f}")
    RESULTS.mkdir(exist_ok=True)
    path = RESULTS / f"fd_reliability_{model.config.task}.json"
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps({"heldout": args.heldout, "bundle": args.bundle, "windows": len(moved),
                               "windows_object_moved": int(moved.sum()), "rows": rows}, indent=2))
    os.replace(tmp, path)


if __name__ == "__main__":
    main()
