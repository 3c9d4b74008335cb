"""Validation of actions handed to fog environments.

Every env in this package takes normalised actions in ``Box(-1, 1, (A,))``. Bad input raises a
``ValueError`` (or ``TypeError``) that names the problem; out-of-range actions are rejected, not clipped,
beyond a small tolerance for float round-off (values within the tolerance are clipped to the bound).
"""

from __future__ import annotations

import numpy as np
from gymnasium import spaces

#: Values this far outside the bounds are treated as round-off and clipped; further out they raise.
BOUND_TOLERANCE = 1e-4


def check_action(action: object, space: spaces.Box, env_name: str) -> np.ndarray:
    """Return ``action`` as a float32 array of ``space.shape``, or raise an error naming the problem."""
    try:
        arr = np.asarray(action)
    except Exception as exc:  # pragma: no cover - numpy accepts nearly everything
        raise TypeError(f"{env_name}: action of type {type(action).__name__} is not array-like") from exc
    if arr.dtype == object or not (np.issubdtype(arr.dtype, np.floating) or np.issubdtype(arr.dtype, np.integer)):
        raise TypeError(f"{env_name}: action must be a numeric array, got dtype {arr.dtype}")
    if arr.shape != space.shape:
        raise ValueError(f"{env_name}: action must have shape {space.shape}, got {arr.shape}")
    arr = arr.astype(np.float32)
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"{env_name}: action contains NaN or inf: {arr}")
    low, high = space.low, space.high
    if np.any(arr < low - BOUND_TOLERANCE) or np.any(arr > high + BOUND_TOLERANCE):
        raise ValueError(
            f"{env_name}: action {arr} is outside the action space [{low.min()}, {high.max()}]; "
            "rescale or clip it (e.g. gymnasium.wrappers.ClipAction) before stepping"
        )
    return np.clip(arr, low, high)
