"""Can the deployed agent see whether it has succeeded? The state probe on real frames with the block at the goal.

    python benchmarks/bench_probe_goal.py [--bundle pusht] [--reader pusht_local_reader --reader pusht_goal_reader] \
        [--poses 1000] [--radius-px 8] [--angle-deg 4]

Push-T success needs coverage ≥ 0.95: the block within about 2 px (of 512) and 1° of its goal pose, a quarter of
one of the 64 × 64 observation's pixels (8 px of the table each). A deployed FoG agent with the state-space local
model sees the block only through the bundle's state probe reading those frames, so it can place the block no
more precisely than the probe reads it. ``--poses`` seeded poses with the block uniform within ``--radius-px``
and ``--angle-deg`` of the goal (:mod:`fog_envs.real.pusht_goal_frames`; the agent anywhere off the block) are
rendered by ``RealPushT-v0`` and read by the probe (and, with ``--reader``, by the probe refined by those readers
in turn: :mod:`fog_envs.wm.readers`). Reports the probe's block error (px, degrees: median,
90th percentile), the coverage the reading implies against the true coverage (exact polygon coverage of both
poses), and success as read against success in truth: of the poses the probe reads as a success, the share that
is one (precision), and of the true successes, the share it reads as one (recall). Prints a table and writes
JSON (default ``benchmarks/results/probe_goal.json``).
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import fog_envs  # noqa: E402,F401
from benchmarks.agent_runs_cli import write_results  # noqa: E402
from fog_envs.real.pusht_goal_frames import goal_frames, probe_to_true  # noqa: E402
from fog_envs.real.pusht_reward import SUCCESS_COVERAGE, coverage  # noqa: E402
from fog_envs.real.pusht_reward_torch import TABLE  # noqa: E402
from fog_envs.real.pusht_starts import GoalStartConfig  # noqa: E402
from fog_envs.wm.readers import Reader, load_reader, refine_all  # noqa: E402
from fog_envs.wm.model import WorldModel  # noqa: E402
from fog_envs.wm.tasks import get_task  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results" / "probe_goal.json"


def read_poses(model: WorldModel, frames: np.ndarray, batch: int = 256,
               readers: Sequence[Reader] = ()) -> np.ndarray:
    """(n, 5) the probe's readings of ``frames`` in the true-state layout (refined by ``readers`` in turn)."""
    out = []
    with torch.no_grad():
        for i in range(0, len(frames), batch):
            chunk = torch.from_numpy(frames[i:i + batch])
            out.append(refine_all(readers, chunk, model.probe(chunk)).double().numpy())
    return probe_to_true(np.concatenate(out))


def score(true: np.ndarray, read: np.ndarray) -> dict[str, float]:
    """Block error, coverage error and success as read against success in truth over matched poses (n, 5)."""
    spec = get_task("pusht")
    errors = spec.probe_errors(spec.probe_targets(read), spec.probe_targets(true))
    cov_true = np.array([coverage(p[2:5]) for p in true])
    cov_read = np.array([coverage(p[2:5]) for p in read])
    hit, said = cov_true >= SUCCESS_COVERAGE, cov_read >= SUCCESS_COVERAGE
    return {
        "block_px_median": float(np.median(errors["block_px"])),
        "block_px_p90": float(np.percentile(errors["block_px"], 90)),
        "block_deg_median": float(np.median(errors["block_deg"])),
        "block_deg_p90": float(np.percentile(errors["block_deg"], 90)),
        "coverage_abs_error_median": float(np.median(np.abs(cov_read - cov_true))),
        "true_success_share": float(hit.mean()),
        "read_success_share": float(said.mean()),
        "precision": float((hit & said).sum() / max(1, said.sum())),
        "recall": float((hit & said).sum() / max(1, hit.sum())),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--bundle", action="append", help="world-model bundle (name or path) whose probe to read "
                        "with; repeatable (default: pusht)")
    parser.add_argument("--reader", action="append", default=[], help="also score each probe's readings refined "
                        "by this reader bundle (repeatable, applied in order; fog_envs.wm.readers; e.g. "
                        "pusht_local_reader, pusht_goal_reader)")
    parser.add_argument("--poses", type=int, default=1000)
    parser.add_argument("--radius-px", type=float, default=8.0)
    parser.add_argument("--angle-deg", type=float, default=4.0)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--out", default=str(RESULTS))
    args = parser.parse_args()
    if args.poses < 1:
        parser.error(f"--poses must be >= 1, got {args.poses}")
    torch.set_num_threads(args.threads)
    bundles = args.bundle or ["pusht"]
    t0 = time.perf_counter()
    frames, poses = goal_frames(args.poses, args.seed, GoalStartConfig(args.radius_px, args.angle_deg))
    out = {"poses": args.poses, "radius_px": args.radius_px, "angle_deg": args.angle_deg, "seed": args.seed,
           "frame_px_per_table_px": frames.shape[1] / TABLE, "render_seconds": round(time.perf_counter() - t0, 1),
           "probes": {}}
    print(f"{args.poses} poses within {args.radius_px} px and {args.angle_deg}° of the goal, "
          f"{frames.shape[1]}×{frames.shape[2]} frames ({TABLE / frames.shape[1]:.0f} table px per frame pixel)")
    print(f"{'probe':32s} | block px med / p90 | block ° med / p90 | |Δcov| | success true / read | precision "
          "| recall")
    chain = [load_reader(r) for r in args.reader]
    out["readers"] = args.reader
    for bundle in bundles:
        model = WorldModel.load(bundle)
        if model.config.task != "pusht":
            raise SystemExit(f"--bundle {bundle!r} is a {model.config.task!r} bundle; this benchmark is Push-T's")
        variants = {bundle: [], **({" + ".join([bundle, *args.reader]): chain} if chain else {})}
        for name, readers in variants.items():
            s = score(poses, read_poses(model, frames, readers=readers))
            out["probes"][name] = s
            print(f"{name:32s} | {s['block_px_median']:6.2f} / {s['block_px_p90']:6.2f} | "
                  f"{s['block_deg_median']:5.2f} / {s['block_deg_p90']:5.2f} | {s['coverage_abs_error_median']:.3f} | "
                  f"{s['true_success_share']:.2f} / {s['read_success_share']:.2f} | {s['precision']:.2f} | "
                  f"{s['recall']:.2f}")
    write_results(args.out, out)


if __name__ == "__main__":
    main()
