"""Pure numbers of the FoG-vs-PPO head-to-head: curves from run logs, seed statistics, steps-to-threshold.

A run's learned-env return is ``train/reward`` (mean reward per imagined step of the policy's own training
rollouts, un-normalised), logged under the same tag by both the FoG agent and the PPO callback.
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np


def curve(rows: Sequence[dict[str, Any]], x_key: str, y_key: str) -> tuple[np.ndarray, np.ndarray]:
    """``(x, y)`` of the rows that have both keys (non-null), in log order."""
    pts = [(float(r[x_key]), float(r[y_key])) for r in rows if r.get(x_key) is not None and r.get(y_key) is not None]
    if not pts:
        return np.zeros(0), np.zeros(0)
    x, y = zip(*pts)
    return np.asarray(x), np.asarray(y)


def trailing_mean(y: np.ndarray, window: int) -> np.ndarray:
    """Mean of the last ``window`` values at each index (fewer at the start)."""
    if window < 1:
        raise ValueError(f"window must be >= 1, got {window}")
    c = np.concatenate([[0.0], np.cumsum(y, dtype=np.float64)])
    idx = np.arange(1, len(y) + 1)
    lo = np.maximum(idx - window, 0)
    return (c[idx] - c[lo]) / (idx - lo)


def smoothing_window(n: int) -> int:
    """The window used for every curve of ``n`` points: a tenth of the run, at least one point."""
    return max(1, n // 10)


def final_value(y: np.ndarray) -> float | None:
    """Mean of the last tenth of a curve (at least its last point); ``None`` for an empty curve."""
    return float(np.mean(y[-smoothing_window(len(y)):])) if len(y) else None


def first_crossing(x: np.ndarray, y: np.ndarray, threshold: float) -> float | None:
    """The first ``x`` at which ``y >= threshold`` (``None`` if never)."""
    hit = np.flatnonzero(y >= threshold)
    return float(x[hit[0]]) if len(hit) else None


def on_grid(curves: Sequence[tuple[np.ndarray, np.ndarray]], grid: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean and standard deviation over curves, each linearly interpolated onto ``grid`` (NaN outside a
    curve's range; points no curve covers are NaN)."""
    if not curves:
        nan = np.full(len(grid), np.nan)
        return nan, nan.copy()
    stack = np.stack([np.interp(grid, x, y, left=np.nan, right=np.nan) if len(x) else np.full(len(grid), np.nan)
                      for x, y in curves])
    valid = ~np.isnan(stack)
    count = valid.sum(axis=0)
    total = np.where(valid, stack, 0.0).sum(axis=0)
    mean = np.where(count > 0, total / np.maximum(count, 1), np.nan)
    sq = np.where(valid, (stack - mean) ** 2, 0.0).sum(axis=0)
    std = np.where(count > 0, np.sqrt(sq / np.maximum(count, 1)), np.nan)
    return mean, std


def mean_std(values: Sequence[float | None]) -> dict[str, float | int | None]:
    """``{"mean", "std", "n"}`` over the non-null values (population std; ``None`` when there are none)."""
    v = np.asarray([x for x in values if x is not None], dtype=np.float64)
    if len(v) == 0:
        return {"mean": None, "std": None, "n": 0}
    return {"mean": float(v.mean()), "std": float(v.std()), "n": int(len(v))}
