"""Where the failed Push-T episodes of zero-shot deployments end: their max coverage, in bands below success.

    python benchmarks/deploy_failures.py benchmarks/results/*finder_k15*eval.json [--bands 0.9 0.8]
        [--out benchmarks/results/deploy_failures_pusht.json]

Reads ``fog-eval``'s JSONs (their ``max_coverages``; other reference systems' files are skipped by name) and
counts, per deployment and over all of them, the failed episodes (max coverage under the success threshold, 0.95)
whose max coverage lies in each band: with ``--bands 0.9 0.8`` the near misses at [0.9, 0.95), then [0.8, 0.9)
and under 0.8. Many near misses mean the agents bring the block home and stop a few pixels short (README item 41).
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
from fog_envs.real.pusht_reward import SUCCESS_COVERAGE  # noqa: E402


def band_edges(bands: Sequence[float], success: float = SUCCESS_COVERAGE) -> list[float]:
    """The bands' lower edges, checked: strictly decreasing, each in (0, ``success``)."""
    edges = [float(b) for b in bands]
    if not edges:
        raise ValueError("give at least one band edge (e.g. 0.9 0.8)")
    if any(not 0.0 < b < success for b in edges):
        raise ValueError(f"band edges must lie in (0, {success}), got {edges}")
    if any(a <= b for a, b in zip(edges, edges[1:])):
        raise ValueError(f"band edges must decrease strictly, got {edges}")
    return edges


def failure_bands(max_coverages: Sequence[float], edges: Sequence[float],
                  success: float = SUCCESS_COVERAGE) -> dict[str, int]:
    """How many episodes failed (max coverage < ``success``) and how many of them fall in each band
    ``[edge, upper)`` (upper: the previous edge, ``success`` for the first), the last key counting those below
    the lowest edge."""
    cov = np.asarray(max_coverages, dtype=np.float64)
    failed = cov[cov < success]
    counts = {"episodes": int(cov.size), "failures": int(failed.size)}
    upper = success
    for edge in edges:
        counts[f"{edge:g}-{upper:g}"] = int(((failed >= edge) & (failed < upper)).sum())
        upper = edge
    counts[f"<{upper:g}"] = int((failed < upper).sum())
    return counts


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("evals", nargs="+", help="fog-eval JSON files (eval_RealPushT-v0*.json)")
    parser.add_argument("--bands", type=float, nargs="+", default=[0.9, 0.8])
    parser.add_argument("--out", default="benchmarks/results/deploy_failures_pusht.json")
    args = parser.parse_args(argv)
    try:
        edges = band_edges(args.bands)
    except ValueError as err:
        parser.error(str(err))
    rows, pooled, skipped = [], [], []
    for path in args.evals:
        data = json.loads(Path(path).read_text())
        if data.get("env_id") != "RealPushT-v0" or "max_coverages" not in data:
            skipped.append(path)
            continue
        pooled.extend(data["max_coverages"])
        rows.append({"eval": str(path), "success_rate": data.get("success_rate"), **failure_bands(
            data["max_coverages"], edges)})
    if not rows:
        parser.error(f"none of the {len(args.evals)} files is a RealPushT-v0 evaluation with max_coverages")
    total = failure_bands(pooled, edges)
    keys = [k for k in total if k not in ("episodes", "failures")]
    print("| deployment | success | failures | " + " | ".join(keys) + " |")
    print("|---|---|---|" + "---|" * len(keys))
    for row in rows + [{"eval": f"all {len(rows)}", "success_rate": None, **total}]:
        rate = "" if row["success_rate"] is None else f"{row['success_rate']:.2f}"
        print(f"| {Path(row['eval']).name} | {rate} | {row['failures']} / {row['episodes']} | "
              + " | ".join(str(row[k]) for k in keys) + " |")
    if skipped:
        print(f"skipped {len(skipped)} file(s) of another reference system or without max_coverages")
    write_results(args.out, {"bands": edges, "success_coverage": SUCCESS_COVERAGE, "deployments": rows,
                             "all": total, "skipped": skipped})
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
