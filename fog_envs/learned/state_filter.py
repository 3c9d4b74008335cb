"""Fusing a state reading with the state model's one-step prediction at deployment (a constant-gain filter).

A ``local_model="state"`` agent sees ``[ŝ_t, ŝ_{t−1}]``, and with raw readings each ``ŝ`` carries the reader's
whole error, twice over in the velocity ``ŝ_t − ŝ_{t−1}`` the state model reads. The state model itself knows
where the last action sends the pusher (one step: 0.7 px for the Push-T agent, against 2 px for the best reading
of a frame where it touches the block). :func:`fuse` blends the two per state column,

    ŝ_t = p_t + K ⊙ (r_t − p_t),    p_t = state_model(ŝ_{t−1}, ŝ_{t−2}, a_{t−1}),

the steady-state form of a Kalman filter (an α filter per column): ``K = 1`` is the raw reading (no filter),
``K → 0`` trusts the model alone. Gains are chosen on held-out episodes of real frames
(``benchmarks/bench_state_filter.py``) and given at deployment (``fog-eval --filter-gains``). Unit vectors among the
columns (an angle's cos, sin) are blended linearly too; for the small differences a filter sees the shrink of
their norm is below 1e-4 and the angle is unchanged by it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class StateFilterConfig:
    """Per-column gains of :func:`fuse`: one value for every column, or one per state column (Push-T's probe
    targets: agent x, y, block x, y, cos θ, sin θ)."""

    gains: tuple[float, ...]

    def __post_init__(self) -> None:
        if not self.gains:
            raise ValueError("StateFilterConfig: gains must not be empty")
        bad = [g for g in self.gains if not 0.0 < g <= 1.0]
        if bad:
            raise ValueError(f"StateFilterConfig: gains must lie in (0, 1] (1: the reading alone), got {bad}")

    def vector(self, state_dim: int, device: torch.device | str = "cpu") -> torch.Tensor:
        """The gains as a (state_dim,) tensor."""
        if len(self.gains) not in (1, state_dim):
            raise ValueError(f"StateFilterConfig: {len(self.gains)} gains for a {state_dim}-column state; give one "
                             f"gain or {state_dim}")
        return torch.tensor(self.gains if len(self.gains) == state_dim else self.gains * state_dim,
                            dtype=torch.float32, device=device)


def fuse(prediction: torch.Tensor, reading: torch.Tensor, gains: torch.Tensor) -> torch.Tensor:
    """``prediction + gains ⊙ (reading − prediction)``, broadcast over leading dimensions."""
    return prediction + gains.to(prediction) * (reading - prediction)


def filter_sequence(readings: torch.Tensor, actions: torch.Tensor, gains: torch.Tensor,
                    step: Callable[[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]) -> torch.Tensor:
    """Filtered states (T, B, S) of reading sequences (T, B, S) under the actions (T, B, A) taken after each
    reading (the last is not used), gains (S,) or (B, S), and a state model ``step(s, s_prev, a) -> s_next``;
    the first state is its reading, at rest (``s_prev = s``), as :class:`StateObserver` starts."""
    s = readings[0]
    s_prev, out = s, [s]
    for t in range(1, readings.shape[0]):
        s, s_prev = fuse(step(s, s_prev, actions[t - 1]), readings[t], gains), s
        out.append(s)
    return torch.stack(out)
