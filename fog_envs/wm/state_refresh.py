"""Online refresh of a state-space local model on the transitions the policy itself produces.

FoG refreshes its local model on the policy's own rollouts, mixed with the play data it was trained on
(research/papers.md §1.4): the Jacobians that matter are those at the states the policy visits, and a model
fitted only to play data may be wrong there (e.g. the agent pressing into the block). :class:`StateRefresher`
keeps a ring buffer of recent transitions ``(s_{t−1}, s_t, a_t, r_t, s_{t+1})`` in probe-target units and,
on request, takes Adam steps on the model's training loss (:func:`~fog_envs.wm.state_model_train.training_loss`,
the resting-object penalty included) over batches drawn half from the buffer and half from the play data.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from fog_envs.wm.state_model import StateModel
from fog_envs.wm.state_model_train import StateTransitions, training_loss

KEYS = ("prev_state", "state", "action", "reward", "next_state")


@dataclass(frozen=True)
class StateRefreshConfig:
    """Sizes of the online refresh (its step count per iteration is the caller's)."""

    capacity: int = 65536
    """transitions kept (the oldest are overwritten)"""
    batch: int = 512
    policy_fraction: float = 0.5
    """share of each batch drawn from the policy's transitions (the rest from the play data)"""
    lr: float = 3e-4
    still_jacobian: float = 1.0
    still_tol: float = 0.05
    seed: int = 0

    def __post_init__(self) -> None:
        if self.capacity < 1 or self.batch < 1:
            raise ValueError(f"StateRefreshConfig: capacity and batch must be >= 1, got {self.capacity}, {self.batch}")
        if not 0.0 <= self.policy_fraction <= 1.0:
            raise ValueError(f"StateRefreshConfig.policy_fraction must lie in [0, 1], got {self.policy_fraction}")


class StateRefresher:
    """A transition buffer and an optimiser for one :class:`StateModel` (updated in place)."""

    def __init__(self, model: StateModel, play: StateTransitions, passive_dims: tuple[int, ...],
                 cfg: StateRefreshConfig = StateRefreshConfig()) -> None:
        self.model, self.play, self.passive_dims, self.cfg = model, play, passive_dims, cfg
        dims = {"prev_state": model.config.state_dim, "state": model.config.state_dim,
                "action": model.config.action_dim, "reward": None, "next_state": model.config.state_dim}
        self.buffer = {k: torch.zeros((cfg.capacity,) if d is None else (cfg.capacity, d)) for k, d in dims.items()}
        self.size, self.cursor = 0, 0
        self.rng = np.random.default_rng(cfg.seed)
        self.opt = torch.optim.Adam(model.parameters(), lr=cfg.lr)

    def record(self, prev_state: torch.Tensor, state: torch.Tensor, action: torch.Tensor, reward: torch.Tensor,
               next_state: torch.Tensor) -> None:
        """Append a batch of transitions (N, ·) (detached copies)."""
        rows = {"prev_state": prev_state, "state": state, "action": action, "reward": reward, "next_state": next_state}
        n = len(state)
        idx = (self.cursor + torch.arange(n)) % self.cfg.capacity
        for k, v in rows.items():
            self.buffer[k][idx] = v.detach().to(self.buffer[k].dtype).reshape(self.buffer[k][idx].shape)
        self.cursor = int((self.cursor + n) % self.cfg.capacity)
        self.size = min(self.size + n, self.cfg.capacity)

    def batch(self) -> dict[str, torch.Tensor]:
        """A training batch: ``round(policy_fraction · batch)`` buffer rows (fewer while the buffer is empty), the
        rest play-data rows."""
        own = min(round(self.cfg.policy_fraction * self.cfg.batch), self.size)
        mine = torch.from_numpy(self.rng.integers(0, max(self.size, 1), own))
        play = self.play.batch(self.rng.integers(0, len(self.play.state), self.cfg.batch - own))
        return {k: torch.cat([self.buffer[k][mine], play[k].to(self.buffer[k].dtype)]) for k in KEYS}

    def refresh(self, steps: int) -> dict[str, float]:
        """``steps`` Adam steps on the model; returns the last step's metrics (empty for 0 steps)."""
        metrics: dict[str, float] = {}
        was_training = self.model.training
        self.model.train().requires_grad_(True)
        try:
            for _ in range(steps):
                loss, metrics = training_loss(self.model, self.batch(), self.passive_dims, self.cfg.still_jacobian,
                                              self.cfg.still_tol)
                self.opt.zero_grad(set_to_none=True)
                loss.backward()
                self.opt.step()
        finally:
            self.model.train(was_training).requires_grad_(False)
        return {f"refresh/{k.split('/')[-1]}": v for k, v in metrics.items()}
