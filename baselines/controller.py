"""Deploy a trained SB3 policy on a reference system through ``fog_envs.evaluation``'s Controller protocol."""

from __future__ import annotations

from typing import Any, Callable

import numpy as np


class PPOController:
    """Deterministic ``model.predict`` on the real system's frames, stacked as ``VecFrameStack`` does.

    ``VecFrameStack`` (channels last) starts every episode from zeros and appends each new frame on the
    last axis; the controller does the same so the policy sees what it saw in training.
    ``normalize_obs`` (e.g. ``VecNormalize.normalize_obs``) is applied to the stacked observation.
    """

    def __init__(self, model: Any, frame_stack: int = 1,
                 normalize_obs: Callable[[np.ndarray], np.ndarray] | None = None) -> None:
        if frame_stack < 1:
            raise ValueError(f"frame_stack must be >= 1, got {frame_stack}")
        self.model = model
        self.frame_stack = frame_stack
        self.normalize_obs = normalize_obs
        self._stack: np.ndarray | None = None

    def reset(self, obs: np.ndarray, info: dict[str, Any]) -> None:
        obs = np.asarray(obs)
        self._stack = np.zeros((*obs.shape[:-1], obs.shape[-1] * self.frame_stack), dtype=obs.dtype)

    def act(self, obs: np.ndarray, info: dict[str, Any]) -> np.ndarray:
        if self._stack is None:
            raise RuntimeError("call reset() before act()")
        obs = np.asarray(obs)
        c = obs.shape[-1]
        self._stack = np.roll(self._stack, -c, axis=-1)
        self._stack[..., -c:] = obs
        x = self._stack if self.normalize_obs is None else self.normalize_obs(self._stack)
        action, _ = self.model.predict(x, deterministic=True)
        return np.clip(np.asarray(action, dtype=np.float32), -1.0, 1.0)


class LatentPPOController:
    """Deterministic ``model.predict`` on RSSM features of the real system's frames (latent-obs policies).

    ``observer`` is the learned env's deployment filter (``make_observer()``: the RSSM posterior over the
    real frames), the same one the FoG agent is evaluated with, so both see the same kind of state.
    """

    def __init__(self, model: Any, observer: Any,
                 normalize_obs: Callable[[np.ndarray], np.ndarray] | None = None) -> None:
        self.model = model
        self.observer = observer
        self.normalize_obs = normalize_obs
        self._latent: np.ndarray | None = None
        self._last_action: np.ndarray | None = None

    def reset(self, obs: np.ndarray, info: dict[str, Any]) -> None:
        self._latent = self.observer.reset(obs).detach().cpu().numpy().astype(np.float32)
        self._last_action = None

    def act(self, obs: np.ndarray, info: dict[str, Any]) -> np.ndarray:
        if self._latent is None:
            raise RuntimeError("call reset() before act()")
        if self._last_action is not None:
            self._latent = self.observer.update(self._last_action, obs).detach().cpu().numpy().astype(np.float32)
        x = self._latent if self.normalize_obs is None else self.normalize_obs(self._latent)
        action, _ = self.model.predict(x, deterministic=True)
        self._last_action = np.clip(np.asarray(action, dtype=np.float32), -1.0, 1.0)
        return self._last_action
