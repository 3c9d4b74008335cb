"""Closed-form ridge regression: the least-squares read-outs of :mod:`fog_envs.wm.goal_reader` and
:mod:`fog_envs.wm.local_reader`."""

from __future__ import annotations

import torch


def ridge_fit(x: torch.Tensor, y: torch.Tensor,
              ridge: float) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``(mean, weight, bias)`` with ``(x − mean) @ weight + bias ≈ y``: ``weight = (XᵀX + λI)⁻¹ Xᵀ(y − ȳ)`` on
    the centred features ``X = x − mean``, ``bias = ȳ`` (float64 throughout; x (n, F), y (n, k))."""
    if x.ndim != 2 or y.ndim != 2 or len(x) != len(y):
        raise ValueError(f"ridge_fit: expected x (n, F) and y (n, k) with the same n, got {tuple(x.shape)} and "
                         f"{tuple(y.shape)}")
    if len(x) < 2:
        raise ValueError(f"ridge_fit: needs at least 2 rows, got {len(x)}")
    x, y = x.double(), y.double()
    mean, bias = x.mean(0), y.mean(0)
    xc = x - mean
    gram = xc.T @ xc
    gram.diagonal().add_(ridge)
    return mean, torch.linalg.solve(gram, xc.T @ (y - bias)), bias
