"""``LearnedVectorEnv``: N copies of a learned environment stepped in one model call (numpy API).

This is the ``vector_entry_point`` of ``WMPushT-v0`` / ``WMPushCube-v0`` / ``WMToy-v0``. Autoreset mode is
``SAME_STEP``: an env that ends is reset inside the same ``step``; its true final observation and info are
in ``infos["final_obs"]`` / ``infos["final_info"]`` (masks ``infos["_final_obs"]``), as in Gymnasium's
``SyncVectorEnv`` with ``AutoresetMode.SAME_STEP``.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from gymnasium import spaces
from gymnasium.vector import AutoresetMode, VectorEnv
from gymnasium.vector.utils import batch_space

from fog_envs.action_checks import check_action
from fog_envs.learned.backend import Backend
from fog_envs.learned.diff import DifferentiableEnv
from fog_envs.learned.factory import OBS_TYPES, make_backend


class LearnedVectorEnv(VectorEnv):
    """Batched learned env; see the module docstring. ``diff`` gives its differentiable view."""

    metadata = {"render_modes": ["rgb_array"], "autoreset_mode": AutoresetMode.SAME_STEP}

    def __init__(
        self,
        num_envs: int = 1,
        task: str = "pusht",
        obs_type: str = "pixels",
        world_model: str | None = None,
        forward_model: str = "diffusion",
        denoising_steps: int | None = None,
        device: str = "cpu",
        bf16: bool | str = "auto",
        start_sigma: float | None = None,
        max_episode_steps: int | None = None,
        render_mode: str | None = None,
        terminate_on_success: bool = False,
        autoreset: bool = True,
        gradient_model: str = "rssm",
        local_model: str = "rssm",
        state_model: str | None = None,
        goal_starts: float = 0.0,
        state_ensemble: tuple[str, ...] = (),
        disagreement_weight: float = 0.0,
        disagreement_dims: tuple[int, ...] = (),
        wall_penalty: float = 0.0,
        wall_margin: float = 0.2,
        reset_starts: float = 0.0,
        reward_options: dict[str, Any] | None = None,
        ensemble_forward: bool = False,
        wall_starts: float = 0.0,
        backend: Backend | None = None,
    ) -> None:
        if obs_type not in OBS_TYPES:
            raise ValueError(f"unknown obs_type {obs_type!r}; choose one of {OBS_TYPES}")
        if render_mode not in (None, "rgb_array"):
            raise ValueError(f"render_mode must be 'rgb_array' or None, got {render_mode!r}")
        if num_envs < 1:
            raise ValueError(f"num_envs must be >= 1, got {num_envs}")
        self.backend = backend if backend is not None else make_backend(
            task, num_envs, world_model=world_model, forward_model=forward_model,
            denoising_steps=denoising_steps, device=device, bf16=bf16, start_sigma=start_sigma,
            local_model=local_model, state_model=state_model, goal_starts=goal_starts,
            state_ensemble=tuple(state_ensemble), disagreement_weight=disagreement_weight,
            disagreement_dims=tuple(disagreement_dims), wall_penalty=wall_penalty, wall_margin=wall_margin,
            reset_starts=reset_starts, reward_options=reward_options, ensemble_forward=ensemble_forward,
            wall_starts=wall_starts)
        if obs_type == "pixels" and getattr(self.backend, "forward_model", None) == "state":
            raise ValueError("forward_model='state' generates no frames: use obs_type='latent'")
        self.num_envs = num_envs
        self.obs_type = obs_type
        self.render_mode = render_mode
        self.autoreset = autoreset
        self.env_name = f"learned env ({task})"
        self.metadata = {**self.metadata, "render_fps": getattr(self.backend, "control_hz", 10)}
        if gradient_model == "rssm":
            self.diff = DifferentiableEnv(self.backend, max_episode_steps, terminate_on_success)
        elif gradient_model == "diffusion":
            from fog_envs.learned.diffusion_bptt import DiffusionBPTTEnv

            self.diff = DiffusionBPTTEnv(self.backend, max_episode_steps, terminate_on_success)
        else:
            raise ValueError(f"unknown gradient_model {gradient_model!r}; choose 'rssm' or 'diffusion'")
        a = self.backend.action_dim
        self.single_action_space = spaces.Box(-1.0, 1.0, shape=(a,), dtype=np.float32)
        if obs_type == "pixels":
            s = self.backend.obs_size
            self.single_observation_space = spaces.Box(0, 255, shape=(s, s, 3), dtype=np.uint8)
        else:
            self.single_observation_space = spaces.Box(-np.inf, np.inf, shape=(self.backend.state_dim,),
                                                       dtype=np.float32)
        self.action_space = batch_space(self.single_action_space, num_envs)
        self.observation_space = batch_space(self.single_observation_space, num_envs)
        self._has_reset = False

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        """Reset every env (env i seeded with ``seed + i``)."""
        super().reset(seed=seed)
        self.diff.reset(seed=seed)
        self._has_reset = True
        return self.backend.render_obs(self.obs_type), {}

    def step(self, actions: Any):
        """Step every env with ``actions`` (N, A) in [-1, 1]; see the module docstring for autoreset."""
        if not self._has_reset:
            raise RuntimeError(f"{self.env_name}: call reset() before step()")
        act = check_action(actions, self.action_space, self.env_name)
        action = torch.from_numpy(act).to(self.backend.device)
        with torch.no_grad():
            out = self.diff.global_step(action)
        truncated = self.diff.clock.tick()
        terminated = out.is_success.cpu().numpy() & self.diff.terminate_on_success
        reward = out.reward.float().cpu().numpy().astype(np.float64)
        obs = self.backend.render_obs(self.obs_type)
        infos: dict[str, Any] = {"is_success": out.is_success.cpu().numpy(),
                                 **{k: v.float().cpu().numpy() for k, v in out.aux.items()}}
        done = terminated | truncated
        if self.autoreset and done.any():
            ids = np.flatnonzero(done)
            infos["final_obs"] = np.array([None] * self.num_envs, dtype=object)
            infos["final_info"] = np.array([None] * self.num_envs, dtype=object)
            for i in ids:
                infos["final_obs"][i] = obs[i].copy()
                infos["final_info"][i] = {k: v[i] for k, v in infos.items() if not k.startswith("final")}
            infos["_final_obs"] = done.copy()
            infos["_final_info"] = done.copy()
            self.backend.reset(torch.from_numpy(ids), self.diff.clock.generators)
            self.diff.clock.restart(ids)
            self.diff.resync()
            obs = self.backend.render_obs(self.obs_type)
        return obs, reward, terminated, truncated, infos

    @property
    def reference_env_id(self) -> str | None:
        """The reference system this learned env stands for (``None`` for the toy)."""
        return getattr(self.backend, "reference_env_id", None)

    def make_observer(self, **kwargs: Any):
        """A filter that turns the reference system's frames into this env's latent observations (``kwargs``
        go to the backend's, e.g. ``readers``)."""
        make = getattr(self.backend, "make_observer", None)
        if make is None:
            raise NotImplementedError(f"{self.env_name} has no reference system to observe")
        return make(**kwargs)

    def refresh_local_model(self, steps: int) -> dict[str, float]:
        """Train the local surrogate for ``steps`` gradient steps on recent imagined + real data, if it can."""
        refresh = getattr(self.backend, "refresh_local_model", None)
        return refresh(steps) if refresh is not None and steps > 0 else {}

    def close_extras(self, **kwargs: Any) -> None:
        """Release what the backend holds (the reference systems of ``forward_model="reference"``)."""
        close = getattr(self.backend, "close", None)
        if close is not None:
            close()

    def render(self) -> np.ndarray | None:
        """The current pixel frames of every env, (N, H, W, 3) uint8."""
        if self.render_mode is None:
            return None
        return self.backend.render_obs("pixels")
