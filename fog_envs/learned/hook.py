"""The Jacobian hook: the local surrogate's one-step function, its VJP and JVP, and dense Jacobians.

Every function takes ``step(x, a) -> x'`` (a backend's ``local_step``: the RSSM prior mean for the world
models, the surrogate dynamics for the toy) and works on batches ``x`` (N, X), ``a`` (N, A). Use VJP/JVP in
hot loops; dense Jacobians are for analysis. The action Jacobian uses forward mode (``jacfwd``): with
|A| ≪ |X| it costs |A| JVPs instead of |X| VJPs.
"""

from __future__ import annotations

from typing import Callable

import torch
from torch.func import jacfwd, jacrev, jvp, vjp, vmap

StepFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


def step_vjp(step: StepFn, x: torch.Tensor, a: torch.Tensor, cotangent: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``(cᵀ ∂x'/∂x, cᵀ ∂x'/∂a)`` for a cotangent ``c`` (N, X), batched over rows."""
    _, pullback = vjp(step, x, a)
    return pullback(cotangent)


def step_jvp(step: StepFn, x: torch.Tensor, a: torch.Tensor, tangent_x: torch.Tensor,
             tangent_a: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``(x', ∂x'/∂x · t_x + ∂x'/∂a · t_a)`` (forward mode), batched over rows."""
    return jvp(step, (x, a), (tangent_x, tangent_a))


def _per_row(step: StepFn) -> Callable[[torch.Tensor, torch.Tensor], torch.Tensor]:
    return lambda x, a: step(x[None], a[None])[0]


def action_jacobian(step: StepFn, x: torch.Tensor, a: torch.Tensor) -> torch.Tensor:
    """``∂x'/∂a`` per row, (N, X, A), by forward mode."""
    return vmap(jacfwd(_per_row(step), argnums=1))(x, a)


def state_jacobian(step: StepFn, x: torch.Tensor, a: torch.Tensor, mode: str = "rev") -> torch.Tensor:
    """``∂x'/∂x`` per row, (N, X, X), by reverse (default) or forward mode."""
    jac = jacrev if mode == "rev" else jacfwd
    return vmap(jac(_per_row(step), argnums=0))(x, a)


def dense_jacobians(step: StepFn, x: torch.Tensor, a: torch.Tensor) -> dict[str, torch.Tensor]:
    """Both Jacobians: ``{"state": (N, X, X), "action": (N, X, A)}``."""
    return {"state": state_jacobian(step, x, a), "action": action_jacobian(step, x, a)}
