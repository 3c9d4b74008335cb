"""The autoencoder alone, side by side: how much of the state survives encoding and decoding.

    python benchmarks/bench_autoencoder.py --heldout datasets/pusht_heldout.h5 \
        --autoencoder shipped=pusht --autoencoder motion=runs/wm_ae_motion [--probe pusht]

Every latent world model is bounded by its autoencoder: whatever the reconstruction loses (the small Push-T
agent, the block's exact pose) no denoiser can predict. For each autoencoder (``NAME=PATH``: a bundle name or
path, or a ``fog-train-wm`` run directory: its finished autoencoder, or while that stage trains, its last
checkpoint) the held-out frames are encoded and decoded and read by one state probe (``--probe``, a bundle;
default the task's shipped one): PSNR and the probe's errors (median and 90th percentile) next to the same
probe on the real frames. Prints a table and writes ``benchmarks/results/autoencoder_<task>.json``.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from fog_envs.wm.autoencoder import AutoencoderConfig, FrameAutoencoder  # noqa: E402
from fog_envs.wm.bundle import BundleError  # noqa: E402
from fog_envs.wm.config_io import config_from_dict  # noqa: E402
from fog_envs.wm.fidelity import reconstruction  # noqa: E402
from fog_envs.wm.model import WorldModel  # noqa: E402
from fog_envs.wm.tasks import get_task  # noqa: E402
from fog_envs.wm.train import load_play_arrays  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results"


def summarise(per: dict[str, list[float]]) -> dict[str, dict[str, float]]:
    """Median and 90th percentile of each per-frame error."""
    return {k: {"median": float(np.median(v)), "p90": float(np.percentile(v, 90))} for k, v in per.items()}


def load_autoencoder(where: str) -> tuple[FrameAutoencoder, str, int | None]:
    """The autoencoder of a bundle (name or path) or of a world-model run directory, its task, and for a run
    whose autoencoder stage is still training, the step of its last checkpoint (else None)."""
    run = Path(where)
    ckpts = run / "checkpoints"
    final, partial = ckpts / "autoencoder_final.pt", ckpts / "autoencoder.pt"
    if (run / "config.json").exists() and (final.exists() or partial.exists()):
        model_cfg = json.loads((run / "config.json").read_text())["model"]
        ae = FrameAutoencoder(config_from_dict(AutoencoderConfig, model_cfg["autoencoder"]))
        step = None
        if final.exists():
            ae.load_state_dict(torch.load(final, map_location="cpu"))
        else:  # latent scaling is not fitted yet: it cancels in encode -> decode
            state = torch.load(partial, map_location="cpu", weights_only=False)
            ae.load_state_dict(state["model"])
            step = int(state["step"])
        return ae.eval(), model_cfg["task"], step
    try:
        model = WorldModel.load(where)
    except BundleError as exc:
        raise SystemExit(f"{where!r} is neither a bundle nor a run directory with an autoencoder checkpoint "
                         f"({final} missing): {exc}") from exc
    return model.autoencoder.eval(), model.config.task, None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--autoencoder", action="append", required=True, metavar="NAME=PATH",
                        help="a bundle or a fog-train-wm run directory (repeatable)")
    parser.add_argument("--heldout", required=True)
    parser.add_argument("--probe", default=None, help="bundle whose state probe reads every frame (default: the task's)")
    parser.add_argument("--frames", type=int, default=2048, help="held-out frames (evenly spaced)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out", default=None, help="JSON path (default benchmarks/results/autoencoder_<task>.json)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    entries = []
    for item in args.autoencoder:
        name, sep, where = item.partition("=")
        if not sep or not name or not where:
            raise SystemExit(f"--autoencoder wants NAME=PATH, got {item!r}")
        entries.append((name, where, *load_autoencoder(where)))
    tasks = {e[3] for e in entries}
    if len(tasks) != 1:
        raise SystemExit(f"the autoencoders belong to different tasks {sorted(tasks)}; compare one task at a time")
    task = tasks.pop()
    probe_model = WorldModel.load(args.probe or task)
    if probe_model.config.task != task:
        raise SystemExit(f"--probe {args.probe!r} is a {probe_model.config.task!r} bundle, the autoencoders {task!r}")
    data = load_play_arrays(args.heldout, task)
    rows = np.linspace(0, len(data.frames) - 1, min(args.frames, len(data.frames))).round().astype(int)
    spec = get_task(task)
    results: dict[str, dict] = {}
    real = None
    for name, where, ae, _, step in entries:
        t0 = time.perf_counter()
        per = reconstruction(ae, probe_model.probe, spec, data.frames[rows], data.probe[rows])
        results[name] = {"path": where, "config": ae.config.__dict__, "training_step": step,
                         "seconds": round(time.perf_counter() - t0, 1), **summarise(per["autoencoder"])}
        real = summarise(per["real"])  # the same for every autoencoder
    results["real frames"] = {"path": args.heldout, **real}
    names = [k for k in next(iter(results.values())) if k.startswith("probe_") or k == "psnr"]
    header = f"{'autoencoder':<16}" + "".join(f"{n.removeprefix('probe_'):>22}" for n in names)
    print(f"{len(rows)} held-out frames of {args.heldout}, probe of {args.probe or task}; median (p90)")
    print(header)
    for name, res in results.items():
        cells = "".join(f"{'':>22}" if n not in res else f"{res[n]['median']:>13.2f} ({res[n]['p90']:6.2f})"
                        for n in names)
        label = name if res.get("training_step") is None else f"{name}@{res['training_step']}"
        print(f"{label:<16}{cells}")
    out = Path(args.out) if args.out else RESULTS / f"autoencoder_{task}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"heldout": args.heldout, "frames": int(len(rows)), "probe": args.probe or task,
                               "results": results}, indent=2))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
