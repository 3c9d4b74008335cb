"""An ensemble's disagreement as a penalty on a state-model world's reward (after MOPO, Yu et al. 2020, and MOReL).

A first-order agent follows its world's gradients wherever that world is wrong, and finds those places (README
items 16 and 32). With ``state_ensemble=(m₁, …)`` and ``disagreement_weight=λ`` a ``forward_model="state"`` world
still steps with its own state model, but each step's reward loses ``λ·u(ŝ_t, ŝ_{t−1}, a_t)``: ``u`` is the
root-mean-square distance of the ensemble's next states (the world's own model and the members, K in all) from their
mean, in the probe targets' units, over the state columns ``disagreement_dims`` (all by default; the cube's
positions, 0 1 4 5, leave out the headings' cosines and sines). Where the data pinned the dynamics down the members
agree and ``u`` is small; where they did not, they tend to disagree. The penalty is differentiable in the local
state and the action, so it enters the local reward's gradient too
(:meth:`fog_envs.learned.diff.DifferentiableEnv.step`; its value is computed there a second time, with the graph,
and only its gradient is kept; the global step passes the own model's prediction it already has).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import TYPE_CHECKING

import torch

if TYPE_CHECKING:
    from fog_envs.learned.state_local import StateLocalModel
    from fog_envs.wm.state_model import StateModel

#: keeps the square root's gradient finite where every member agrees exactly (the centred predictions are 0 there,
#: so the gradient is 0 rather than 0·∞)
_EPS = 1e-12


def disagreement(predictions: torch.Tensor) -> torch.Tensor:
    """(N,) root-mean-square over the K members of the distance of each one's prediction from their mean, for
    ``predictions`` (K, N, S), K ≥ 2. Two members: half the distance between them."""
    if predictions.ndim != 3 or predictions.shape[0] < 2:
        raise ValueError(f"predictions must be (K >= 2 members, N, S), got shape {tuple(predictions.shape)}")
    centred = predictions - predictions.mean(0, keepdim=True)
    return (centred.pow(2).sum(-1).mean(0) + _EPS).sqrt()


def freeze_members(members: Sequence["StateModel"], own: "StateModel", what: str) -> None:
    """Check that every member has ``own``'s state and action sizes (a ``ValueError`` names ``what`` and the first
    that does not) and freeze them all (eval mode, no gradients to their parameters)."""
    for k, m in enumerate(members):
        if (m.config.state_dim, m.config.action_dim) != (own.config.state_dim, own.config.action_dim):
            raise ValueError(f"{what} {k} has {m.config.state_dim} states and {m.config.action_dim} actions; the "
                             f"world's state model has {own.config.state_dim} and {own.config.action_dim}")
        m.eval()
        for p in m.parameters():
            p.requires_grad_(False)


def next_states(own: torch.Tensor, members: Sequence["StateModel"], s: torch.Tensor, s_prev: torch.Tensor,
                action: torch.Tensor) -> torch.Tensor:
    """(K, N, S) the own model's next states ``own`` (first) and each member's from ``(s, s_prev, action)``."""
    return torch.stack([own, *(m.step(s, s_prev, action) for m in members)])


class EnsemblePenalty:
    """``λ·u`` of :func:`disagreement` between ``local``'s state model and ``members`` (frozen), over the columns
    ``dims``, at local states ``x = [ŝ_t, ŝ_{t−1}]`` (N, 2S) under actions (N, A); differentiable in both."""

    def __init__(self, local: "StateLocalModel", members: Sequence["StateModel"], weight: float,
                 dims: Sequence[int] = ()) -> None:
        """``dims``: the state columns the disagreement is measured over (empty: all)."""
        if not members:
            raise ValueError("an ensemble penalty needs at least one member besides the world's own state model")
        if not (math.isfinite(weight) and weight > 0):
            raise ValueError(f"disagreement_weight must be a finite number > 0, got {weight}")
        freeze_members(members, local.state_model, "ensemble member")
        own = local.state_model.config
        bad = [d for d in dims if not 0 <= d < own.state_dim]
        if bad or len(set(dims)) != len(dims):
            raise ValueError(f"disagreement_dims must be distinct state columns in [0, {own.state_dim}), got "
                             f"{tuple(dims)}")
        self.local, self.members, self.weight = local, list(members), float(weight)
        self.dims = tuple(int(d) for d in dims)

    def predictions(self, x: torch.Tensor, action: torch.Tensor, own: torch.Tensor | None = None) -> torch.Tensor:
        """(K, N, S) next states of the world's own model (first; ``own`` when the caller has it) and of each
        member."""
        s, s_prev = x[..., :self.local.sdim], x[..., self.local.sdim:]
        if own is None:
            own = self.local.step(x, action)[..., :self.local.sdim]
        return next_states(own, self.members, s, s_prev, action)

    def __call__(self, x: torch.Tensor, action: torch.Tensor, own: torch.Tensor | None = None) -> torch.Tensor:
        return self.of_predictions(self.predictions(x, action, own))

    def of_predictions(self, preds: torch.Tensor) -> torch.Tensor:
        """The penalty (N,) of :meth:`predictions`' (K, N, S), when the caller has them already."""
        return self.weight * disagreement(preds[..., list(self.dims)] if self.dims else preds)
