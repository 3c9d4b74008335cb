"""Deploy a trained SB3 policy on a reference system through ``fog_envs.evaluation``'s Controller protocol."""

from __future__ import annotations

from typing import Any, Callable

import numpy as np
import torch

from fog_agent.controller import FogController


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


class PredictAgent:
    """An SB3 model behind the FoG agent's ``act(latents (B, D)) -> actions (B, A)`` interface, so a
    latent-obs policy deploys through :class:`fog_agent.controller.FogController` (same filter, same
    bookkeeping). ``normalize_obs`` (e.g. ``VecNormalize.normalize_obs``) is applied to each latent."""

    def __init__(self, model: Any, normalize_obs: Callable[[np.ndarray], np.ndarray] | None = None) -> None:
        self.model = model
        self.normalize_obs = normalize_obs

    def act(self, latents: torch.Tensor, deterministic: bool = True) -> torch.Tensor:
        rows = latents.detach().cpu().numpy().astype(np.float32)
        if self.normalize_obs is not None:
            rows = np.stack([self.normalize_obs(r) for r in rows])
        actions = [np.asarray(self.model.predict(r, deterministic=deterministic)[0], np.float32) for r in rows]
        return torch.from_numpy(np.stack(actions))


def LatentPPOController(model: Any, observer: Any,  # noqa: N802  (a factory named like the controllers)
                        normalize_obs: Callable[[np.ndarray], np.ndarray] | None = None) -> FogController:
    """Deterministic ``model.predict`` on RSSM features of the real system's frames (latent-obs policies):
    the learned env's deployment filter (``make_observer()``) feeds the policy, exactly as for the FoG agent."""
    return FogController(PredictAgent(model, normalize_obs), observer)
