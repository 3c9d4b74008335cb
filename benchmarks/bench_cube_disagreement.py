"""Does an ensemble of cube state models disagree where the world's own model is wrong? (the premise of the
ensemble penalty, ``fog_envs.learned.disagreement``)

    python benchmarks/bench_cube_disagreement.py --state-model runs/state_cube_agent1/bundle \\
        --members runs/state_cube_agent1_m1/bundle runs/state_cube_agent1_m2/bundle \\
        --data datasets/cube_heldout.h5 datasets/cube_agent_walls_s0.h5 [--dims 0 1 4 5] [--out FILE]

For every step t ≥ 1 of each dataset (true states read as probe targets, the actions taken), the one-step
prediction of the world's own model from ``[s_t, s_{t−1}]`` against ``s_{t+1}`` (its error, in the probe targets'
units, metres on the cube) and the ensemble's disagreement ``u`` there (:func:`fog_envs.learned.disagreement.
disagreement`, the world's own model among the members), both over the state columns ``--dims`` (default: the
positions, 0 1 4 5, as the penalty is used on the cube; the headings' cosines and sines otherwise dominate), split by
situation at t as in
``bench_cube_model_gap.py``; and over all steps the rank correlation of ``u`` with the error, and how much of the
error the steps with the top tenth of ``u`` hold. Prints a table and writes JSON (default
``benchmarks/results/cube_disagreement.json``).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.agent_runs_cli import write_results  # noqa: E402
from benchmarks.bench_cube_model_gap import SITUATIONS, situation  # noqa: E402
from fog_envs.data.format import load_arrays  # noqa: E402
from fog_envs.learned.disagreement import disagreement  # noqa: E402
from fog_envs.wm.state_model import StateModel  # noqa: E402
from fog_envs.wm.tasks import get_task  # noqa: E402


def one_step_transitions(path: str) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """``(s_prev, s, action, s_next, true_state)`` of every step t ≥ 1 of every episode of a cube dataset: probe
    targets (N, 8) of t−1, t and t+1, the action (N, 3) at t and the true state (N, 6) at t."""
    data = load_arrays(path)
    probe = get_task("cube").probe_targets(data["state"]).astype(np.float32)
    starts = np.concatenate([[0], data["episode_ends"][:-1]])
    rows = np.concatenate([np.arange(a + 1, b - 1) for a, b in zip(starts, data["episode_ends"])])
    return (probe[rows - 1], probe[rows], data["actions"][rows].astype(np.float32), probe[rows + 1],
            data["state"][rows])


@torch.no_grad()
def errors_and_disagreement(models: list[StateModel], s_prev: np.ndarray, s: np.ndarray, action: np.ndarray,
                            s_next: np.ndarray, dims: list[int], batch: int = 8192) -> tuple[np.ndarray, np.ndarray]:
    """Per step: the first model's one-step error ``|f₀ − s_{t+1}|`` and the models' disagreement ``u``, both over
    the state columns ``dims``."""
    err, u = [], []
    for i in range(0, len(s), batch):
        args = [torch.from_numpy(v[i:i + batch]) for v in (s, s_prev, action)]
        preds = torch.stack([m.step(*args) for m in models])[..., dims]
        err.append((preds[0] - torch.from_numpy(s_next[i:i + batch, dims])).norm(dim=-1).numpy())
        u.append(disagreement(preds).numpy())
    return np.concatenate(err), np.concatenate(u)


def spearman(a: np.ndarray, b: np.ndarray) -> float:
    """Rank correlation (no ties expected in continuous data)."""
    ra, rb = np.argsort(np.argsort(a)), np.argsort(np.argsort(b))
    return float(np.corrcoef(ra, rb)[0, 1])


def summary(err: np.ndarray, u: np.ndarray) -> dict[str, Any]:
    top = u >= np.quantile(u, 0.9)
    return {"steps": int(len(u)), "u_median_mm": float(np.median(u) * 1e3),
            "u_p90_mm": float(np.quantile(u, 0.9) * 1e3),
            "err_median_mm": float(np.median(err) * 1e3), "err_p90_mm": float(np.quantile(err, 0.9) * 1e3),
            "spearman_u_err": spearman(u, err), "top_tenth_u_share_of_error": float(err[top].sum() / err.sum())}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--state-model", required=True, help="the world's own state model (name or bundle path)")
    parser.add_argument("--members", nargs="+", required=True, help="the other members (names or bundle paths)")
    parser.add_argument("--data", nargs="+", required=True, help="cube datasets (.h5)")
    parser.add_argument("--dims", type=int, nargs="+", default=[0, 1, 4, 5], help="state columns (probe targets)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out", default="benchmarks/results/cube_disagreement.json")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    t0 = time.perf_counter()
    models = [StateModel.load(m, task="cube")[0].eval() for m in (args.state_model, *args.members)]
    out: dict[str, Any] = {"state_model": args.state_model, "members": args.members, "dims": args.dims, "data": {}}
    print(f"{'data':<28} {'situation':<20} {'steps':>7} {'u med/p90 mm':>14} {'err med/p90 mm':>15} "
          f"{'rank corr':>9} {'top-10% u: err share':>20}")
    for path in args.data:
        s_prev, s, action, s_next, true = one_step_transitions(path)
        err, u = errors_and_disagreement(models, s_prev, s, action, s_next, args.dims)
        where = np.array([situation(row) for row in true])
        rows = {"all": summary(err, u)}
        for name in SITUATIONS:
            mask = where == name
            rows[name] = summary(err[mask], u[mask]) if mask.sum() >= 10 else {"steps": int(mask.sum())}
        out["data"][path] = rows
        for name, row in rows.items():
            if "u_median_mm" in row:
                print(f"{Path(path).name:<28} {name:<20} {row['steps']:>7} "
                      f"{row['u_median_mm']:>6.1f} / {row['u_p90_mm']:<6.1f} {row['err_median_mm']:>6.1f} / "
                      f"{row['err_p90_mm']:<7.1f} {row['spearman_u_err']:>9.2f} "
                      f"{row['top_tenth_u_share_of_error']:>20.2f}")
    out["seconds"] = round(time.perf_counter() - t0, 1)
    write_results(args.out, out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
