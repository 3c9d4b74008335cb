"""Deploy a trained DMO-SAPO actor on a real system: an observer filters real frames, the actor acts."""

from __future__ import annotations

from typing import Any, Protocol

import numpy as np
import torch


class Observer(Protocol):
    """Turns real observations into the latent state the agent was trained on (e.g. an RSSM filter)."""

    def reset(self, obs: np.ndarray) -> torch.Tensor: ...

    def update(self, action: np.ndarray, obs: np.ndarray) -> torch.Tensor: ...


class FogController:
    """``fog_envs.evaluation.Controller`` for a DMO-SAPO agent: deterministic ``tanh(μ)`` actions, or actions
    sampled from the policy as in training (``deterministic=False``; from the agent's own seeded generator)."""

    def __init__(self, agent: Any, observer: Observer, deterministic: bool = True) -> None:
        self.agent = agent
        self.observer = observer
        self.deterministic = deterministic
        self._latent: torch.Tensor | None = None
        self._last_action: np.ndarray | None = None

    def reset(self, obs: np.ndarray, info: dict[str, Any]) -> None:
        self._latent = self.observer.reset(obs)
        self._last_action = None

    def act(self, obs: np.ndarray, info: dict[str, Any]) -> np.ndarray:
        if self._last_action is not None:
            self._latent = self.observer.update(self._last_action, obs)
        action = self.agent.act(self._latent[None], deterministic=self.deterministic).squeeze(0).cpu().numpy()
        action = action.astype(np.float32)
        self._last_action = np.clip(action, -1.0, 1.0)
        return self._last_action
