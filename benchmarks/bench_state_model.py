"""State models side by side on held-out episodes: one-step and open-loop errors from the true states.

    python benchmarks/bench_state_model.py --heldout datasets/pusht_heldout.h5 --state-model shipped=pusht_state \
        --state-model roll8=runs/state_pusht_roll8/bundle [--probe pusht] [--windows 128] [--write-card] [--out ...]

For each state model (a bundle name or path): median one-step errors over every held-out transition, and the
open-loop rollout from the true (s_{t−1}, s_t) with the real actions 1, 4 and 16 steps ahead (``--horizons``) on
the same held-out windows as ``bench_fidelity.py`` (same count, seed and context length), next to copying the last
state; where the passive object moved, the gain and cosine of the model's displacement of it along the true
one. What a world model that has the true state could reach at best with such a model: the ceiling against
which the diffusion model's open-loop figures read. With ``--probe WORLD_MODEL`` each model is also rolled out
from that bundle's state-probe readings of the held-out frames (rows ``NAME@probe``): the open-loop fidelity of
``forward_model="state"``, which starts from frames. Prints a table and writes JSON.
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

from fog_envs.wm.state_model import StateModel  # noqa: E402
from fog_envs.wm.state_model_train import load_episodes, load_transitions, one_step_errors, open_loop_errors  # noqa: E402
from fog_envs.wm.tasks import get_task  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results"


def named_bundle(spec: str) -> tuple[str, str]:
    """``NAME=BUNDLE`` → ``(NAME, BUNDLE)``; a bare bundle is labelled by its last path part."""
    name, sep, path = spec.partition("=")
    return (name, path) if sep else (Path(spec).name, spec)


@torch.no_grad()
def probe_readings(world_model: str, heldout: str, chunk: int = 512) -> np.ndarray:
    """(N, S) the world model's state-probe readings of every held-out frame, in probe-target units."""
    from fog_envs.data.format import open_dataset
    from fog_envs.wm.model import WorldModel

    model = WorldModel.load(world_model).eval()
    with open_dataset(heldout) as f:
        frames = f["frames"]
        return np.concatenate([model.probe(torch.from_numpy(frames[i:i + chunk])).float().numpy()
                               for i in range(0, len(frames), chunk)])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--heldout", required=True)
    parser.add_argument("--state-model", action="append", required=True, metavar="NAME=BUNDLE",
                        help="a state-model bundle (name or path), optionally labelled NAME=; repeat to compare")
    parser.add_argument("--task", default="pusht")
    parser.add_argument("--windows", type=int, default=128)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--probe", default=None, metavar="WORLD_MODEL",
                        help="also roll each model out from this world-model bundle's state-probe readings of the "
                             "held-out frames (as forward_model='state' starts from frames): rows NAME@probe")
    parser.add_argument("--horizons", type=int, nargs="+", default=[1, 4, 16],
                        help="open-loop steps ahead (the windows are those of the longest; the agent trains on "
                             "64-step episodes)")
    parser.add_argument("--write-card", action="store_true",
                        help="store each model's open-loop figures in its card (heldout.open_loop)")
    parser.add_argument("--out", default=None, help="JSON path (default benchmarks/results/state_model_<task>.json)")
    args = parser.parse_args()
    horizons = tuple(sorted(set(args.horizons)))
    if horizons[0] < 1:
        parser.error(f"--horizons must be >= 1, got {args.horizons}")
    if args.write_card and horizons != (1, 4, 16):
        parser.error("--write-card stores the cards' 1 / 4 / 16-step figures; leave --horizons at its default")
    torch.set_num_threads(args.threads)
    spec = get_task(args.task)
    episodes = load_episodes(args.heldout, spec)
    transitions = load_transitions(args.heldout, spec)
    readings = None if args.probe is None else probe_readings(args.probe, args.heldout)
    rows = []
    for label, bundle in map(named_bundle, args.state_model):
        model, card = StateModel.load(bundle, task=args.task)
        rows.append({"name": label, "bundle": bundle, "train": card.get("train", {}),
                     "one_step": one_step_errors(model, transitions, spec),
                     "open_loop": open_loop_errors(model, episodes, spec, horizons, num_windows=args.windows)})
        if readings is not None:
            rows.append({"name": f"{label}@probe", "bundle": bundle, "train": card.get("train", {}),
                         "one_step": rows[-1]["one_step"], "from_probe": args.probe,
                         "open_loop": open_loop_errors(model, episodes, spec, horizons, num_windows=args.windows,
                                                       readings=readings)})
    metrics = [k[len("model_"):-len("_median")] for k in rows[0]["one_step"] if k.startswith("model_")]
    print(f"task {args.task}: {int(rows[0]['open_loop']['windows']['count'])} held-out windows, "
          f"{rows[0]['one_step']['transitions']} transitions (medians)")
    head = ["model", "h"] + metrics + ["gain", "cos"]
    print(" | ".join(f"{h:>12}" for h in head))
    copy = rows[0]["open_loop"]["copy"]
    print(" | ".join(f"{v:>12}" for v in ["copy", "1 (all)"]) + " | "
          + " | ".join(f"{rows[0]['one_step'][f'copy_{m}_median']:>12.3f}" for m in metrics))
    for h in horizons:
        print(" | ".join(f"{v:>12}" for v in ["copy", h]) + " | "
              + " | ".join(f"{copy[f'{h}_{m}_median']:>12.3f}" for m in metrics))
    for r in rows:
        ol = r["open_loop"]["model"]
        if "from_probe" not in r:  # the one-step figures are from true states
            print(" | ".join(f"{v:>12}" for v in [r["name"], "1 (all)"]) + " | "
                  + " | ".join(f"{r['one_step'][f'model_{m}_median']:>12.3f}" for m in metrics))
        for h in horizons:
            vals = [ol.get(f"{h}_{m}_median", float("nan")) for m in metrics]
            vals += [ol.get(f"{h}_passive_gain_median", float("nan")), ol.get(f"{h}_passive_cos_median", float("nan"))]
            print(" | ".join(f"{v:>12}" for v in [r["name"], h]) + " | " + " | ".join(f"{v:>12.3f}" for v in vals))
    print("the same, split by whether the passive object moved over the h steps (medians: moved / at rest)")
    print(" | ".join(f"{v:>12}" for v in ["model", "h", "moved share"] + metrics))
    windows = rows[0]["open_loop"]["windows"]
    for name, ol in [("copy", copy), *((r["name"], r["open_loop"]["model"]) for r in rows)]:
        for h in horizons:
            vals = [f"{ol.get(f'{h}_{m}_moved_median', float('nan')):.2f} / {ol.get(f'{h}_{m}_rest_median', float('nan')):.2f}"
                    for m in metrics]
            share = windows.get(f"{h}_moved_fraction", float("nan"))
            print(" | ".join(f"{v:>12}" for v in [name, h, f"{share:.2f}"] + vals))
    out = {"task": args.task, "heldout": args.heldout, "horizons": list(horizons), "rows": rows,
           "time": time.strftime("%Y-%m-%d %H:%M:%S")}
    RESULTS.mkdir(exist_ok=True)
    path = Path(args.out) if args.out else RESULTS / f"state_model_{args.task}.json"
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(out, indent=2))
    os.replace(tmp, path)
    print(f"wrote {path}")
    if args.write_card:
        from fog_envs.wm.bundle import update_card

        for r in rows:
            _, card = StateModel.load(r["bundle"], task=args.task)
            key = "open_loop_from_probe" if "from_probe" in r else "open_loop"
            extra = {"open_loop_probe": r["from_probe"]} if "from_probe" in r else {}
            update_card(r["bundle"], heldout={**card.get("heldout", {}), key: r["open_loop"],
                                              "open_loop_dataset": args.heldout, **extra})
            print(f"card of {r['bundle']} updated ({key})")


if __name__ == "__main__":
    main()
