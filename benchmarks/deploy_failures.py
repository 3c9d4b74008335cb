"""Where the failed Push-T episodes of zero-shot deployments end: their max coverage, in bins below success.

    python benchmarks/deploy_failures.py benchmarks/results/*finder_k15*eval.json [--bins 0 0.8 0.9]
        [--out benchmarks/results/deploy_failures_pusht.json]

Reads ``fog-eval``'s JSONs (their ``max_coverages``; other reference systems' files are skipped by name) and
counts, per deployment and over all of them, the failed episodes (max coverage under the success threshold, 0.95)
whose max coverage lies in each bin: with ``--bins 0 0.8 0.9`` under 0.8, at [0.8, 0.9) and the near misses at
[0.9, 0.95) (the bins of ``bench_imagined_stalls.py``, which counts the same in the agent's own world). Many near
misses mean the agents bring the block home and stop a few pixels short (README item 41).
Prints a table; writes JSON.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.agent_runs_cli import write_results  # noqa: E402
from benchmarks.bench_imagined_stalls import by_best_coverage  # noqa: E402
from fog_envs.real.pusht_reward import SUCCESS_COVERAGE  # noqa: E402


def failures(max_coverages: Sequence[float], bins: Sequence[float]) -> dict[str, int]:
    """The episode count, the failures (max coverage under the success threshold) and the failures per coverage bin
    (:func:`benchmarks.bench_imagined_stalls.by_best_coverage`)."""
    cov = np.asarray(max_coverages, dtype=np.float64)
    return {"episodes": int(cov.size), "failures": int((cov < SUCCESS_COVERAGE).sum()),
            **by_best_coverage(cov, tuple(bins), SUCCESS_COVERAGE)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("evals", nargs="+", help="fog-eval JSON files (eval_RealPushT-v0*.json)")
    parser.add_argument("--bins", type=float, nargs="+", default=[0.0, 0.8, 0.9],
                        help="ascending lower edges of the coverage bins, the last ending at 0.95")
    parser.add_argument("--out", default="benchmarks/results/deploy_failures_pusht.json")
    args = parser.parse_args(argv)
    try:
        by_best_coverage(np.empty(0), tuple(args.bins), SUCCESS_COVERAGE)  # bad bins fail before any file is read
    except ValueError as err:
        parser.error(str(err))
    rows, pooled, skipped = [], [], []
    for path in args.evals:
        data = json.loads(Path(path).read_text())
        if data.get("env_id") != "RealPushT-v0" or "max_coverages" not in data:
            skipped.append(path)
            continue
        pooled.extend(data["max_coverages"])
        rows.append({"eval": str(path), "success_rate": data.get("success_rate"),
                     **failures(data["max_coverages"], args.bins)})
    if not rows:
        parser.error(f"none of the {len(args.evals)} files is a RealPushT-v0 evaluation with max_coverages")
    total = failures(pooled, args.bins)
    keys = [k for k in total if k not in ("episodes", "failures")]
    print("| deployment | success | failures | " + " | ".join(keys) + " |")
    print("|---|---|---|" + "---|" * len(keys))
    for row in rows + [{"eval": f"all {len(rows)}", "success_rate": None, **total}]:
        rate = "" if row["success_rate"] is None else f"{row['success_rate']:.2f}"
        print(f"| {Path(row['eval']).name} | {rate} | {row['failures']} / {row['episodes']} | "
              + " | ".join(str(row[k]) for k in keys) + " |")
    if skipped:
        print(f"skipped {len(skipped)} file(s) of another reference system or without max_coverages")
    write_results(args.out, {"bins": args.bins, "success_coverage": SUCCESS_COVERAGE, "deployments": rows,
                             "all": total, "skipped": skipped})
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
