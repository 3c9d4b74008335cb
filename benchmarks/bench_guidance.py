"""Does a state-guided denoiser draw the block where its guidance says? (Push-T)

    python benchmarks/bench_guidance.py --bundle runs/wm_aem1b_sg/bundle [--probe pusht] [--shifts 0 20 50]

On held-out windows (those of ``bench_fidelity.py``, one step ahead): the denoiser is guided with the true states
of the last context frame and of the next frame, the latter's block moved along x by each shift (px of 512); the
probe reads the block in the drawn frame. A denoiser that follows its guidance moves the drawn block by the
shift (slope 1); one that ignores it does not move it (slope 0). Also how far the probe's reading of the frame drawn
from the true states (shift 0) is from the true next state, next to the same for the true next frame through the
autoencoder (the floor a drawn latent can reach) and unencoded. Prints tables and writes JSON.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from fog_envs.wm.model import WorldModel  # noqa: E402
from fog_envs.wm.stages import sample_window_starts  # noqa: E402
from fog_envs.wm.tasks import get_task  # noqa: E402
from fog_envs.wm.train import load_play_arrays  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results"
BLOCK_X = 2  #: Push-T probe target: block x / 512


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bundle", required=True)
    parser.add_argument("--heldout", default="datasets/pusht_heldout.h5")
    parser.add_argument("--probe", default=None, help="read the frames with this bundle's probe (one ruler)")
    parser.add_argument("--shifts", type=float, nargs="+", default=[0.0, 20.0, 50.0])
    parser.add_argument("--windows", type=int, default=128)
    parser.add_argument("--nfe", type=int, default=1)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--out", default=None)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    model = WorldModel.load(args.bundle)
    if not model.state_guided or model.config.task != "pusht":
        parser.error(f"{args.bundle} is not a state-guided Push-T bundle")
    if args.probe:
        model.probe = WorldModel.load(args.probe).probe
    data = load_play_arrays(args.heldout, "pusht")
    L = model.context_len
    rows = sample_window_starts(data.episode_ends, L + 1, args.windows, 0)[:, None] + np.arange(L + 1)[None]
    out_rows, drawn_true, errors = [], None, {}
    with torch.no_grad():
        lat = model.autoencoder.encode(torch.from_numpy(data.frames[rows.reshape(-1)])).unflatten(0, rows.shape)
        ctx, act = lat[:, :L], torch.from_numpy(data.actions[rows[:, :L]])
        s_now, s_next = torch.from_numpy(data.probe[rows[:, L - 1]]), torch.from_numpy(data.probe[rows[:, L]])
        for shift in args.shifts:
            guided = s_next.clone()
            guided[:, BLOCK_X] += shift / 512
            z = model.next_latent(ctx, act, torch.Generator().manual_seed(0), args.nfe,
                                  state=torch.stack([s_now, guided], 1))
            drawn = model.probe(model.autoencoder.decode(z)).numpy()[:, BLOCK_X] * 512
            moved = drawn - data.probe[rows[:, L], BLOCK_X] * 512
            out_rows.append({"shift_px": shift, "drawn_minus_true_median_px": float(np.median(moved)),
                             "drawn_minus_true_mean_px": float(moved.mean())})
            if shift == 0:
                drawn_true = model.probe(model.autoencoder.decode(z)).numpy()
        if drawn_true is not None:
            truth = data.probe[rows[:, L]]
            readings = {"drawn from the true states": drawn_true,
                        "true frame through the autoencoder": model.probe(model.autoencoder.decode(lat[:, L])).numpy(),
                        "true frame": model.probe(torch.from_numpy(data.frames[rows[:, L]])).numpy()}
            errors = {name: {k: float(np.median(v)) for k, v in get_task("pusht").probe_errors(r, truth).items()}
                      for name, r in readings.items()}
    base = out_rows[0]["drawn_minus_true_mean_px"]
    print(f"{len(rows)} held-out windows, NFE {args.nfe}")
    print(f"{'guided shift (px)':>18} | {'drawn block moved (median, px)':>30} | {'slope (mean)':>12}")
    for r in out_rows:
        slope = (r["drawn_minus_true_mean_px"] - base) / r["shift_px"] if r["shift_px"] else float("nan")
        r["slope"] = slope
        print(f"{r['shift_px']:>18.0f} | {r['drawn_minus_true_median_px']:>30.1f} | {slope:>12.3f}")
    print(f"{'frame read (against the true next state, medians)':>52} | agent px | block px | block °")
    for name, e in errors.items():
        print(f"{name:>52} | {e['agent_px']:>8.1f} | {e['block_px']:>8.1f} | {e['block_deg']:>7.2f}")
    result = {"bundle": args.bundle, "probe": args.probe or args.bundle, "heldout": args.heldout, "nfe": args.nfe,
              "windows": int(len(rows)), "rows": out_rows, "render_errors": errors,
              "time": time.strftime("%Y-%m-%d %H:%M:%S")}
    RESULTS.mkdir(exist_ok=True)
    path = Path(args.out) if args.out else RESULTS / "guidance_pusht.json"
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(result, indent=2))
    os.replace(tmp, path)
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
