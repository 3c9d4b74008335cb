"""Gradient quality of several world models side by side, against the true gradient of the reference system.

    python benchmarks/bench_gradients.py --heldout datasets/pusht_heldout.h5 --bundle pusht \
        --bundle runs/wm_rand07_rssm/bundle [--state-model runs/state_pusht/bundle] [--grad-windows 32]

For each bundle, on the same held-out windows (a seed the training never saw): the cosine between central
finite differences of the H-step true return through the reference system (restarted from each window's true
state) and (a) FoG's gradient (RSSM Jacobians along the diffusion model's frames), (b) the RSSM's gradient
along the reference system's own frames (what ``forward_model="reference"`` gives an agent), (c) finite
differences through the diffusion model; plus (d) the usual cosine of (a) with (c). With ``--state-model``,
each bundle gets a second row with that state-space local model (``local_model="state"``: the bundle's probe
reads the frames) in place of its RSSM, and (e) the same model's gradient with the true states as readings,
also split into the windows where the object (block, cube) moved and those where it rested.
See :func:`fog_envs.wm.fidelity.reference_gradient_cosine`. Prints a table, writes
``benchmarks/results/gradients_<task>.json``; ``--write-card`` stores each bundle's own row in its card.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from fog_envs.wm.fidelity import FidelityConfig, reference_gradient_cosine  # noqa: E402
from fog_envs.learned.state_local import StateLocalModel  # noqa: E402
from fog_envs.wm.bundle import update_card  # noqa: E402
from fog_envs.wm.model import WorldModel  # noqa: E402
from fog_envs.wm.state_model import StateModel  # noqa: E402
from fog_envs.wm.train import load_play_arrays  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results"
COLUMNS = (("true_cos_state_on_true_states", "state model, true readings"), ("true_cos_fog", "FoG vs true"), ("true_cos_rssm_on_reference", "RSSM on true frames vs true"),
           ("true_cos_diffusion_fd", "diffusion FD vs true"), ("grad_cosine", "FoG vs diffusion FD"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--heldout", required=True)
    parser.add_argument("--bundle", action="append", required=True, help="bundle name or path (repeat)")
    parser.add_argument("--grad-windows", type=int, default=FidelityConfig().grad_windows)
    parser.add_argument("--horizon", type=int, default=FidelityConfig().grad_horizon)
    parser.add_argument("--state-model", default=None, help="also judge this state model (bundle name or path)")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    parser.add_argument("--write-card", action="store_true",
                        help="store each bundle's own figures (its RSSM) in its card's fidelity.gradient")
    parser.add_argument("--out", default=None, help="JSON path (default benchmarks/results/gradients_<task>.json)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    cfg = FidelityConfig(grad_windows=args.grad_windows, grad_horizon=args.horizon)
    results, task, data, state_model = {}, None, None, None
    for bundle in args.bundle:
        model = WorldModel.load(bundle)
        if task is not None and model.config.task != task:
            raise ValueError(f"bundle {bundle!r} is for task {model.config.task!r}, the others for {task!r}")
        if task is None:  # the held-out data and the state model, once for all bundles
            task = model.config.task
            data = load_play_arrays(args.heldout, task)
            if args.state_model is not None:
                state_model, _ = StateModel.load(args.state_model, task=task)
        t0 = time.perf_counter()
        results[bundle] = {**reference_gradient_cosine(model, data, cfg), "seconds": time.perf_counter() - t0}
        if state_model is not None:
            t0 = time.perf_counter()
            results[f"{bundle} + state model"] = {
                **reference_gradient_cosine(model, data, cfg, StateLocalModel(model, state_model)),
                "state_model": args.state_model, "seconds": time.perf_counter() - t0}
    print(f"cosine mean / median over {cfg.grad_windows} held-out windows, H = {cfg.grad_horizon}")
    print(f"{'bundle (local model)':<48}" + "".join(f" | {title:>28}" for _, title in COLUMNS))
    for bundle, r in results.items():
        print(f"{bundle:<48}" + "".join(f" | {r[k + '_mean']:>13.3f} / {r[k + '_median']:>6.3f}     "
                                        if k + "_mean" in r else f" | {'-':>28}" for k, _ in COLUMNS))
    for bundle, r in results.items():
        split = [(name, r.get(f"true_cos_state_on_true_states_{name}_mean")) for name in ("moving", "resting")]
        if "windows_object_moved" in r:  # the state model with true readings, on windows with and without a push
            print(f"{bundle}: state model, true readings, windows where the object moved ({r['windows_object_moved']}) "
                  "/ rested: " + " / ".join(f"{r[f'true_cos_state_on_true_states_{n}_mean']:.3f} mean, "
                                            f"{r[f'true_cos_state_on_true_states_{n}_median']:.3f} median"
                                            if v is not None else "-" for n, v in split))
    if args.write_card:
        for bundle in args.bundle:
            card = WorldModel.load(bundle).card
            fidelity = dict(card.get("fidelity") or {})
            fidelity["gradient"] = {k: v for k, v in results[bundle].items() if k != "seconds"}
            update_card(bundle, fidelity=fidelity)
    RESULTS.mkdir(exist_ok=True)
    path = Path(args.out) if args.out else RESULTS / f"gradients_{task}.json"
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps({"heldout": args.heldout, "config": {"grad_windows": cfg.grad_windows,
                                                                   "grad_horizon": cfg.grad_horizon},
                               "state_model": args.state_model,
                               "bundles": results, "time": time.strftime("%Y-%m-%d %H:%M:%S")}, indent=2))
    os.replace(tmp, path)


if __name__ == "__main__":
    main()
