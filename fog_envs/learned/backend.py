"""The contract between a learned environment and the world model behind it.

A backend simulates ``num_envs`` copies at once, in torch. It has two faces:

* **global** (``global_step``): the faithful forward model (the diffusion model, or the toy's true
  dynamics). It runs without gradients and returns the next *local* state filtered on its output,
  the reward, and success flags.
* **local** (``local_step``, ``local_reward``): a cheap differentiable surrogate (the RSSM) whose Jacobians
  are evaluated at the global model's states by the differentiable step (``fog_envs.learned.diff``).

The local state ``x`` is a flat tensor ``(num_envs, state_dim)``; for the RSSM it is ``[deter, stoch]``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import numpy as np
import torch


@dataclass
class GlobalStep:
    """What one global step returns (all without gradient)."""

    next_state: torch.Tensor  #: (N, state_dim) local state filtered on the global model's next frame
    reward: torch.Tensor  #: (N,) reward of the transition (global reward model)
    is_success: torch.Tensor  #: (N,) bool
    aux: dict[str, torch.Tensor]  #: task extras, e.g. ``coverage`` (N,)


class Backend(Protocol):
    """A batched world model usable by :class:`fog_envs.learned.diff.DifferentiableEnv` and the Gym envs."""

    num_envs: int
    action_dim: int
    state_dim: int
    device: torch.device

    def reset(self, env_ids: torch.Tensor, generators: list[torch.Generator]) -> None:
        """Start new episodes in the envs ``env_ids``, drawing all randomness from ``generators[i]``."""

    def state(self) -> torch.Tensor:
        """The current local state of every env, (N, state_dim), detached."""

    def global_step(self, action: torch.Tensor, generators: list[torch.Generator]) -> GlobalStep:
        """Advance every env one step with the global model (no gradient)."""

    def local_step(self, state: torch.Tensor, action: torch.Tensor) -> torch.Tensor:
        """The local surrogate's prediction of the next state; differentiable in both arguments."""

    def local_reward(self, state: torch.Tensor) -> torch.Tensor:
        """The local surrogate's reward of arriving in ``state``; differentiable."""

    def snapshot(self) -> dict[str, torch.Tensor]:
        """A copy of the backend's per-env state (for checkpoints)."""

    def restore(self, snapshot: dict[str, torch.Tensor]) -> None:
        """Restore a :meth:`snapshot`."""

    def render_obs(self, obs_type: str) -> np.ndarray:
        """The current observation of every env as numpy: ``"pixels"`` (N, H, W, 3) uint8 or ``"latent"``."""
