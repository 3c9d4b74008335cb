"""``LearnedEnv``: one learned environment as a standard ``gymnasium.Env`` (numpy in and out).

It is the ``entry_point`` of ``WMPushT-v0`` / ``WMPushCube-v0`` / ``WMToy-v0`` and runs a batch of one
through the same code as :class:`fog_envs.learned.vector_env.LearnedVectorEnv` (no autoreset: Gymnasium's
``TimeLimit`` ends episodes; call ``reset``).
"""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np

from fog_envs.learned.vector_env import LearnedVectorEnv


class LearnedEnv(gym.Env):
    """A single learned env; keyword arguments as :class:`LearnedVectorEnv` (without ``num_envs``)."""

    metadata = {"render_modes": ["rgb_array"], "render_fps": 10}

    def __init__(self, render_mode: str | None = None, **kwargs: Any) -> None:
        self.vec = LearnedVectorEnv(num_envs=1, render_mode=render_mode, autoreset=False, **kwargs)
        self.render_mode = render_mode
        self.metadata = {**self.metadata, "render_fps": self.vec.metadata["render_fps"]}
        self.observation_space = self.vec.single_observation_space
        self.action_space = self.vec.single_action_space
        self._has_reset = False

    @property
    def diff(self):
        """The differentiable view (batch of one) of this env."""
        return self.vec.diff

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        super().reset(seed=seed)
        obs, _ = self.vec.reset(seed=seed)
        self._has_reset = True
        return obs[0], {}

    def step(self, action: Any):
        if not self._has_reset:
            raise RuntimeError(f"{self.vec.env_name}: call reset() before step()")
        act = np.asarray(action)
        if act.shape != self.action_space.shape:
            raise ValueError(f"{self.vec.env_name}: action must have shape {self.action_space.shape}, got {act.shape}")
        obs, reward, terminated, truncated, infos = self.vec.step(act[None])
        info = {k: v[0] for k, v in infos.items()}
        return obs[0], float(reward[0]), bool(terminated[0]), bool(truncated[0]), info

    def render(self) -> np.ndarray | None:
        if self.render_mode is None:
            return None
        return self.vec.backend.render_obs("pixels")[0]
