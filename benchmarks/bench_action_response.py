"""Push-T action response of world-model bundles, side by side (``fog_envs.wm.action_response``).

    python benchmarks/bench_action_response.py --heldout datasets/pusht_heldout.h5 \
        --bundle pusht [--bundle runs/wm_pusht_v2/bundle ...] [--nfe 1 2] [--start-sigma 0 0.5] [--write-card]

For each bundle (and number of denoising steps): the agent's x-shift between a=(+1,0) and a=(-1,0) after one
step (real system, autoencoder, diffusion model, RSSM prior) and the agent position error with the real
action, medians over held-out windows; and the local sensitivity d(agent)/d(action) at the real actions with
its sign agreement with the real system (``local_sensitivity``); ``--start-sigma`` repeats every row for each
sampler start (``EDMConfig.start_sigma``; default: each bundle's own). Prints a table and writes ``benchmarks/results/action_response.json``;
``--write-card`` stores each bundle's figures at its default NFE in its card (``action_response``).
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

from fog_envs.wm.action_response import ResponseConfig, action_response, local_sensitivity  # noqa: E402
from fog_envs.wm.bundle import update_card  # noqa: E402
from fog_envs.wm.model import WorldModel  # noqa: E402
from fog_envs.wm.train import load_play_arrays  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results" / "action_response.json"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bundle", action="append", required=True, help="bundle name or path (repeatable)")
    parser.add_argument("--heldout", required=True)
    parser.add_argument("--nfe", type=int, nargs="+", default=[None])
    parser.add_argument("--windows", type=int, default=48)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--start-sigma", type=float, nargs="+", default=None,
                        help="sampler starts to compare (default: each bundle's own)")
    parser.add_argument("--write-card", action="store_true")
    parser.add_argument("--out", default=str(RESULTS), help="JSON path (default benchmarks/results/action_response.json)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    data = load_play_arrays(args.heldout, "pusht")
    rows = []
    for bundle in args.bundle:
        model = WorldModel.load(bundle)
        own_start = model.config.edm.start_sigma
        for start_sigma in args.start_sigma or [own_start]:
            model.set_sampler(start_sigma=start_sigma)
            for nfe in args.nfe:
                rcfg = ResponseConfig(num_windows=args.windows, denoising_steps=nfe)
                res = action_response(model, data, rcfg)
                rows.append({"bundle": bundle, "nfe": nfe or model.config.edm.num_steps,
                             "default_nfe": model.config.edm.num_steps, "start_sigma": start_sigma,
                             "default_start_sigma": own_start,
                             "denoiser_steps": (model.card or {}).get("steps", {}).get("denoiser"), **res,
                             "sensitivity": local_sensitivity(model, data, rcfg)})
    print("agent x-shift between a=(+1,0) and a=(-1,0) after one step, and agent position error (px of 512)")
    print("(rssm: the RSSM prior's decoded frame; rssm_st: its state head's agent estimate, where it has one)")
    print(f"{'bundle':<32} {'NFE':>3} {'start σ':>7} | shift: {'real':>5} {'AE':>5} {'diff':>5} {'rssm':>5} {'rssm_st':>7} "
          f"| error: {'AE':>5} {'diff':>5} {'rssm':>5} {'rssm_st':>7}")
    nan = float("nan")
    for r in rows:
        rp, er = r["response_px"], r["agent_error_px"]
        print(f"{r['bundle'][-32:]:<32} {r['nfe']:>3} {r['start_sigma']:>7} |        {rp['true']:5.1f} {rp['autoencoder']:5.1f} "
              f"{rp['diffusion']:5.1f} {rp['rssm']:5.1f} {rp.get('rssm_state', nan):7.1f} |        "
              f"{er['autoencoder']:5.1f} {er['diffusion']:5.1f} {er['rssm']:5.1f} {er.get('rssm_state', nan):7.1f}")
    print("local sensitivity d(agent)/d(action) at the real actions (px per unit action; sign agreement with real)")
    for r in rows:
        sens = r["sensitivity"]
        cells = [f"{k} {v['median']:6.1f} ({v['sign_agreement']:.2f})" for k, v in sens.items() if isinstance(v, dict)]
        print(f"{r['bundle'][-32:]:<32} {r['nfe']:>3} {r['start_sigma']:>7} | real {sens['real_median']:5.1f} | " + " | ".join(cells))
    if args.write_card:
        for r in rows:
            if r["nfe"] == r["default_nfe"] and r["start_sigma"] == r["default_start_sigma"]:
                keys = ("nfe", "windows", "response_px", "agent_error_px", "sensitivity")
                update_card(r["bundle"], action_response={**{k: r[k] for k in keys}, "heldout": args.heldout})
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + ".tmp")
    tmp.write_text(json.dumps({"heldout": args.heldout, "rows": rows, "time": time.strftime("%Y-%m-%d %H:%M:%S")},
                              indent=2))
    os.replace(tmp, out)


if __name__ == "__main__":
    main()
