"""The differentiable learned environment: values from the global model, gradients from the local one.

``DifferentiableEnv`` follows the DiffRL/rewarped convention for short-horizon first-order methods
(SHAC, SAPO, DMO): torch tensors in and out, auto-reset inside ``step`` with the pre-reset state kept in
``extras["obs_before_reset"]`` (still attached to the graph, for bootstrapping), and an explicit
:meth:`DifferentiableEnv.cut_graph` at the start of every window.

One step, for local state ``x_t`` and action ``a_t`` (which may carry gradients)::

    x̂      = local_step(x_t, a_t)                       # RSSM / surrogate, differentiable
    x*, r*  = global_step(a_t)                           # diffusion model, no gradient
    x_{t+1} = x̂ + (x* - x̂).detach()                     # value x*, gradient of x̂
    r_t     = r̂ + (r* - r̂).detach(),  r̂ = local_reward(x_{t+1}) [− local_penalty(x_t, a_t)]

(a backend's ``local_penalty``, where it has one and it is not None, is the differentiable form of a penalty its
global reward already subtracts: :mod:`fog_envs.learned.disagreement`)

so every Jacobian is the surrogate's, evaluated at the global model's states.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from fog_envs.learned import hook
from fog_envs.learned.backend import Backend, GlobalStep
from fog_envs.learned.episodes import EpisodeClock


def straight_through(surrogate: torch.Tensor, value: torch.Tensor) -> torch.Tensor:
    """``value`` in the forward pass (bit-exactly), the gradient of ``surrogate`` in the backward pass."""
    return value.detach().to(surrogate.dtype) + (surrogate - surrogate.detach())


class DifferentiableEnv:
    """Batched, differentiable view of a learned environment (see the module docstring)."""

    def __init__(self, backend: Backend, max_episode_steps: int | None, terminate_on_success: bool = False) -> None:
        self.backend = backend
        self.num_envs = backend.num_envs
        self.clock = EpisodeClock(backend.num_envs, max_episode_steps)
        self.terminate_on_success = terminate_on_success
        self._x: torch.Tensor | None = None

    @property
    def state_dim(self) -> int:
        return self.backend.state_dim

    @property
    def action_dim(self) -> int:
        return self.backend.action_dim

    def reset(self, seed: int | None = None) -> torch.Tensor:
        """Start new episodes in every env; returns the local states (N, state_dim), detached."""
        self.clock.seed(seed)
        ids = np.arange(self.num_envs)
        self.backend.reset(torch.from_numpy(ids), self.clock.generators)
        self.clock.restart(ids)
        self._x = self.backend.state()
        return self._x

    def cut_graph(self) -> torch.Tensor:
        """Detach the current state: gradients of later steps stop here. Call at each window's start."""
        self._require_reset()
        self._x = self._x.detach()
        return self._x

    @property
    def obs(self) -> torch.Tensor:
        """The current local state (with its graph, if any)."""
        self._require_reset()
        return self._x

    def global_step(self, action: torch.Tensor) -> GlobalStep:
        """The global model's step alone (no gradient, no reset handling)."""
        self._require_reset()
        out = self.backend.global_step(action.detach(), self.clock.generators)
        self._x = out.next_state
        return out

    def diffusion_step(self, action: torch.Tensor) -> GlobalStep:
        """The diffusion model's forward step (``global_step`` of a world-model env), no gradient."""
        return self.global_step(action)

    # --- the Jacobian hook (the local model alone, at any states) ---------------------------------
    def local_step(self, x: torch.Tensor, action: torch.Tensor) -> torch.Tensor:
        """The local model's one-step prediction (the RSSM prior mean), differentiable."""
        return self.backend.local_step(x, action)

    def local_reward(self, x: torch.Tensor) -> torch.Tensor:
        """The local model's reward (the RSSM reward head), differentiable."""
        return self.backend.local_reward(x)

    def vjp(self, x: torch.Tensor, action: torch.Tensor, cotangent: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``(cᵀ ∂x'/∂x, cᵀ ∂x'/∂a)`` of :meth:`local_step`."""
        return hook.step_vjp(self.backend.local_step, x, action, cotangent)

    def jvp(self, x: torch.Tensor, action: torch.Tensor, tangent_x: torch.Tensor,
            tangent_a: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``(x', ∂x'/∂x·t_x + ∂x'/∂a·t_a)`` of :meth:`local_step` (forward mode)."""
        return hook.step_jvp(self.backend.local_step, x, action, tangent_x, tangent_a)

    def jacobians(self, x: torch.Tensor, action: torch.Tensor) -> dict[str, torch.Tensor]:
        """Dense ``{"state": (N, X, X), "action": (N, X, A)}`` Jacobians of :meth:`local_step`."""
        return hook.dense_jacobians(self.backend.local_step, x, action)

    def step(self, action: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, dict[str, Any]]:
        """Differentiable step; returns ``(obs, reward, terminated, truncated, extras)`` as tensors.

        ``extras``: ``obs_before_reset`` (the next state before any auto-reset, with gradient),
        ``is_success``, ``episode_end`` (terminated | truncated) and the backend's aux values.
        """
        self._require_reset()
        if action.shape != (self.num_envs, self.action_dim):
            raise ValueError(f"action must have shape {(self.num_envs, self.action_dim)}, got {tuple(action.shape)}")
        if not torch.isfinite(action).all():
            raise ValueError("action contains NaN or inf")
        x_next, reward, out = self._transition(action)
        truncated = torch.from_numpy(self.clock.tick())
        terminated = out.is_success.cpu() & self.terminate_on_success
        done = terminated | truncated
        extras: dict[str, Any] = {"obs_before_reset": x_next, "is_success": out.is_success, "episode_end": done,
                                  **out.aux}
        if done.any():
            ids = torch.nonzero(done).flatten()
            self.backend.reset(ids, self.clock.generators)
            self.clock.restart(ids.numpy())
            self._on_reset(done)
            fresh = self.backend.state().to(x_next.dtype)
            x_next = torch.where(done.to(x_next.device)[:, None], fresh, x_next)
        self._x = x_next
        return x_next, reward, terminated, truncated, extras

    def _transition(self, action: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, GlobalStep]:
        """Next state and reward: global values, local (surrogate) gradients."""
        x_hat = self.backend.local_step(self._x, action)
        out = self.backend.global_step(action.detach(), self.clock.generators)
        x_next = straight_through(x_hat, out.next_state)
        reward_hat = self.backend.local_reward(x_next)
        local_penalty = getattr(self.backend, "local_penalty", None)
        penalty = local_penalty(self._x, action) if local_penalty is not None else None
        if penalty is not None:
            reward_hat = reward_hat - penalty
        reward = straight_through(reward_hat, out.reward)
        return x_next, reward, out

    def _on_reset(self, done: torch.Tensor) -> None:
        """Hook for subclasses that keep more differentiable state than ``x``."""

    def get_state(self) -> dict[str, Any]:
        """A snapshot of every env (backend state, step counters, generators) for exact resumption."""
        self._require_reset()
        return {"backend": self.backend.snapshot(), "elapsed": self.clock.elapsed.copy(),
                "generators": [g.get_state() for g in self.clock.generators],
                "seed_rng": self.clock.seed_rng_state()}

    def set_state(self, state: dict[str, Any]) -> None:
        """Restore a :meth:`get_state` snapshot (the graph starts anew from the restored states)."""
        self.backend.restore(state["backend"])
        self.clock.elapsed[:] = state["elapsed"]
        for g, s in zip(self.clock.generators, state["generators"]):
            g.set_state(s)
        self.clock.set_seed_rng_state(state["seed_rng"])
        self.resync()

    def resync(self) -> None:
        """Take the backend's current state as the env's state (after resets done outside ``step``)."""
        self._x = self.backend.state()

    def _require_reset(self) -> None:
        if self._x is None:
            raise RuntimeError("call reset() before stepping the differentiable env")
