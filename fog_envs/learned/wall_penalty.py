"""A penalty on a state-model world's reward for an object near the walls of a walled arena (the cube's).

On the true state the cube agents' failures end mostly with the cube *pinned* against a wall (10–14 of 19–24 per
seed, README item 35), from where a pushing robot cannot bring it back, since it can push it only along the wall or
into it. The goal lies well inside the arena, so no path through the last ``margin`` before a wall is ever needed;
with ``wall_penalty=w`` each imagined step's reward loses ``w·max(0, 1 − g/margin)``, ``g`` the gap between the
object's next position and the walls it may reach (the largest of ``|x|`` and ``|y|`` below ``limit``).
Differentiable in the local state and the action, like the ensemble penalty (:mod:`fog_envs.learned.disagreement`),
so it enters the local reward's gradient as well. Measured (item 35): agents trained with it pin the cube as often
and deploy no better (76 % against 77 % over three seeds): where they pin it, their world shows the cube elsewhere.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import TYPE_CHECKING, Protocol

import torch

if TYPE_CHECKING:
    from fog_envs.learned.state_local import StateLocalModel


class Penalty(Protocol):
    """A step's penalty (N,) from local states ``x`` (N, D) under actions (N, A); ``own``: the world's own next
    states (N, S) when the caller has them."""

    def __call__(self, x: torch.Tensor, action: torch.Tensor, own: torch.Tensor | None = None) -> torch.Tensor: ...


def wall_proximity(positions: torch.Tensor, limit: float, margin: float) -> torch.Tensor:
    """``max(0, 1 − g/margin)`` (...,) of positions (..., 2), ``g = limit − max(|x|, |y|)``: 0 from ``margin`` off
    the walls inwards, 1 at ``limit`` (the centre's reach when touching a wall), growing beyond it."""
    gap = limit - positions.abs().amax(-1)
    return torch.clamp(1.0 - gap / margin, min=0.0)


class WallPenalty:
    """``weight · wall_proximity`` of the next state's columns ``columns`` (an (x, y) position)."""

    def __init__(self, local: "StateLocalModel", weight: float, columns: tuple[int, int], limit: float,
                 margin: float) -> None:
        if not (math.isfinite(weight) and weight > 0):
            raise ValueError(f"wall_penalty must be a finite number > 0, got {weight}")
        if not (math.isfinite(margin) and 0 < margin < limit):
            raise ValueError(f"wall_margin must lie in (0, {limit}) m, got {margin}")
        if len(columns) != 2 or not all(0 <= c < local.sdim for c in columns):
            raise ValueError(f"the wall penalty reads an (x, y) pair of state columns in [0, {local.sdim}), got "
                             f"{tuple(columns)}")
        self.local, self.weight, self.columns = local, float(weight), list(columns)
        self.limit, self.margin = float(limit), float(margin)

    def __call__(self, x: torch.Tensor, action: torch.Tensor, own: torch.Tensor | None = None) -> torch.Tensor:
        if own is None:
            own = self.local.step(x, action)[..., :self.local.sdim]
        return self.weight * wall_proximity(own[..., self.columns], self.limit, self.margin)


class PenaltySum:
    """Several penalties as one (their sum), each given the world's own next states when the caller has them."""

    def __init__(self, local: "StateLocalModel", penalties: Sequence[Penalty]) -> None:
        if not penalties:
            raise ValueError("PenaltySum: needs at least one penalty")
        self.local, self.penalties = local, list(penalties)

    def __call__(self, x: torch.Tensor, action: torch.Tensor, own: torch.Tensor | None = None) -> torch.Tensor:
        if own is None:
            own = self.local.step(x, action)[..., :self.local.sdim]
        return torch.stack([p(x, action, own) for p in self.penalties]).sum(0)
