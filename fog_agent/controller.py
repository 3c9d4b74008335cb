"""Deploy a trained DMO-SAPO actor on a real system: an observer filters real frames, the actor acts."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol

import numpy as np
import torch


class Observer(Protocol):
    """Turns real observations into the latent state the agent was trained on (e.g. an RSSM filter)."""

    def reset(self, obs: np.ndarray) -> torch.Tensor: ...

    def update(self, action: np.ndarray, obs: np.ndarray) -> torch.Tensor: ...


class Planner(Protocol):
    """Chooses the action in a latent state at decision time (e.g. :class:`fog_agent.planner.PolicyCEM`)."""

    def reset(self) -> None: ...

    def plan(self, x: torch.Tensor) -> torch.Tensor: ...


class FogController:
    """``fog_envs.evaluation.Controller`` for a DMO-SAPO agent: deterministic ``tanh(μ)`` actions, actions
    sampled from the policy as in training (``deterministic=False``; from the agent's own seeded generator), or
    the action a ``planner`` chooses in the filtered latent state. With ``search_action``, that action instead
    while the observer has lost what the task is about (its ``lost`` is true: e.g. the cube not yet seen by the
    robot's camera, :class:`fog_envs.wm.cube_finder.CubeTrack`)."""

    def __init__(self, agent: Any, observer: Observer, deterministic: bool = True,
                 planner: Planner | None = None, search_action: Sequence[float] | None = None) -> None:
        if planner is not None and not deterministic:
            raise ValueError("FogController: a planner chooses the actions itself; use deterministic=True with it")
        if search_action is not None and not hasattr(observer, "lost"):
            raise ValueError(f"FogController: search_action needs an observer that says when it is lost; "
                             f"{type(observer).__name__} has no 'lost'")
        self.agent = agent
        self.observer = observer
        self.deterministic = deterministic
        self.planner = planner
        self.search_action = None if search_action is None else np.clip(
            np.asarray(search_action, dtype=np.float32), -1.0, 1.0)
        self._latent: torch.Tensor | None = None
        self._last_action: np.ndarray | None = None

    def reset(self, obs: np.ndarray, info: dict[str, Any]) -> None:
        self.start(self.observer.reset(obs))

    def start(self, latent: torch.Tensor) -> None:
        """Begin an episode in the filtered latent state ``latent`` (no last action, no last plan)."""
        self._latent = latent
        self._last_action = None
        if self.planner is not None:
            self.planner.reset()
        if hasattr(self.agent, "reset"):  # an ensemble that follows the episode (fog_agent.ensemble.StallHandover)
            self.agent.reset()

    def act(self, obs: np.ndarray, info: dict[str, Any]) -> np.ndarray:
        if self._last_action is not None:
            self._latent = self.observer.update(self._last_action, obs)
        if self.search_action is not None and self.observer.lost:  # type: ignore[attr-defined]
            self._last_action = self.search_action.copy()
        else:
            self._last_action = self.choose(self._latent)
        return self._last_action

    def choose(self, latent: torch.Tensor) -> np.ndarray:
        """The action (clipped to [-1, 1]) for a filtered latent state: the planner's, else the actor's."""
        if self.planner is not None:
            action = self.planner.plan(latent).cpu().numpy()
        else:
            action = self.agent.act(latent[None], deterministic=self.deterministic).squeeze(0).cpu().numpy()
        return np.clip(action.astype(np.float32), -1.0, 1.0)
