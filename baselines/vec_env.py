"""``LearnedVecEnv``: a stable-baselines3 ``VecEnv`` over a natively batched learned env.

The learned env (``gym.make_vec(env_id, vectorization_mode="vector_entry_point")``) steps all N envs in one
model call and auto-resets in the same step (``AutoresetMode.SAME_STEP``). This adapter only converts the
Gymnasium vector API into SB3's 4-tuple API::

    obs, rewards (float32), dones (bool), infos (list of N dicts)

with, for every env that ended this step, ``infos[i]["terminal_observation"]`` (the observation the env
really reached) and ``infos[i]["TimeLimit.truncated"]`` (``truncated and not terminated``), while ``obs[i]``
is already the first observation of the next episode. Every info also carries ``is_success`` (SB3's
Monitor/EvalCallback convention: success at this step) and the env's aux values (e.g. ``coverage``).
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium.vector import AutoresetMode, VectorEnv
from stable_baselines3.common.vec_env import VecEnv
from stable_baselines3.common.vec_env.base_vec_env import VecEnvIndices, VecEnvObs, VecEnvStepReturn

import fog_envs  # noqa: F401  (registers the env ids)

_FINAL_KEYS = ("final_obs", "_final_obs", "final_info", "_final_info")


class LearnedVecEnv(VecEnv):
    """SB3 view of a batched Gymnasium ``VectorEnv`` with same-step autoreset (see the module docstring).

    ``get_attr``/``set_attr``/``env_method`` act on the one batched env object: a value read is the same for
    every index, and a method is called once (its result repeated for each requested index).
    """

    def __init__(self, venv: VectorEnv) -> None:
        mode = venv.metadata.get("autoreset_mode")
        if mode != AutoresetMode.SAME_STEP:
            raise ValueError(f"LearnedVecEnv needs a vector env with AutoresetMode.SAME_STEP, got {mode!r}")
        self.venv = venv
        self._actions: np.ndarray | None = None
        super().__init__(venv.num_envs, venv.single_observation_space, venv.single_action_space)
        self.metadata = {**venv.metadata, **self.metadata}

    # --- the SB3 VecEnv API ------------------------------------------------------------------------
    def reset(self) -> VecEnvObs:
        """Reset every env; a seed set by :meth:`seed` is used once (env i gets ``seed + i``)."""
        seed = self._seeds[0]
        options = self._options[0] or None
        obs, info = self.venv.reset(seed=seed, options=options)
        self.reset_infos = [_env_slice(info, i) for i in range(self.num_envs)]
        self._reset_seeds()
        self._reset_options()
        return obs

    def step_async(self, actions: np.ndarray) -> None:
        self._actions = np.asarray(actions)

    def step_wait(self) -> VecEnvStepReturn:
        if self._actions is None:
            raise RuntimeError("step_wait() called without step_async()")
        actions = self._actions.reshape(self.num_envs, *self.action_space.shape).astype(np.float32, copy=False)
        self._actions = None
        obs, reward, terminated, truncated, info = self.venv.step(actions)
        terminated = np.asarray(terminated, dtype=bool)
        truncated = np.asarray(truncated, dtype=bool)
        dones = terminated | truncated
        infos = [_env_slice(info, i) for i in range(self.num_envs)]
        if dones.any():
            final_obs = info.get("final_obs")
            for i in np.flatnonzero(dones):
                if final_obs is None or final_obs[i] is None:
                    raise RuntimeError("the vector env ended an episode without reporting infos['final_obs']")
                infos[i]["terminal_observation"] = final_obs[i]
                infos[i]["TimeLimit.truncated"] = bool(truncated[i] and not terminated[i])
                final_info = info.get("final_info")
                if isinstance(final_info, dict):  # Gymnasium's own vector envs: a vector info dict
                    infos[i].update(_env_slice(final_info, i))
                elif final_info is not None and final_info[i] is not None:  # an object array of dicts
                    infos[i].update(_scalars(final_info[i]))
        return obs, np.asarray(reward, dtype=np.float32), dones, infos

    def seed(self, seed: int | None = None) -> Sequence[int | None]:
        """Seed the next :meth:`reset` (env i gets ``seed + i``)."""
        return super().seed(seed)

    def close(self) -> None:
        self.venv.close()

    def get_attr(self, attr_name: str, indices: VecEnvIndices = None) -> list[Any]:
        value = getattr(self.venv, attr_name)
        return [value for _ in self._get_indices(indices)]

    def set_attr(self, attr_name: str, value: Any, indices: VecEnvIndices = None) -> None:
        """Set an attribute of the batched env (shared by all envs, whatever ``indices``)."""
        setattr(self.venv, attr_name, value)

    def env_method(self, method_name: str, *method_args, indices: VecEnvIndices = None, **method_kwargs) -> list[Any]:
        """Call a method of the batched env once; its result is repeated for each index."""
        result = getattr(self.venv, method_name)(*method_args, **method_kwargs)
        return [result for _ in self._get_indices(indices)]

    def env_is_wrapped(self, wrapper_class: type[gym.Wrapper], indices: VecEnvIndices = None) -> list[bool]:
        """The batched env has no per-env Gymnasium wrappers."""
        return [False for _ in self._get_indices(indices)]

    def get_images(self) -> Sequence[np.ndarray | None]:
        if self.render_mode != "rgb_array":
            warnings.warn(f"render mode is {self.render_mode!r}; images need render_mode='rgb_array'",
                          stacklevel=2)
            return [None] * self.num_envs
        frames = self.venv.render()
        return [np.asarray(f) for f in frames]


def _scalar(key: str, value: Any) -> Any:
    if key == "is_success":
        return bool(value)
    return value.item() if isinstance(value, np.generic) else value


def _scalars(info: dict[str, Any]) -> dict[str, Any]:
    """A single env's info with numpy scalars as Python scalars (``is_success`` as bool)."""
    return {k: _scalar(k, v) for k, v in info.items() if not k.startswith("_") and k not in _FINAL_KEYS}


def _env_slice(info: dict[str, Any], i: int) -> dict[str, Any]:
    """Env ``i``'s entries of a Gymnasium vector info dict (masked-out keys and final-episode entries left out)."""
    out: dict[str, Any] = {}
    for k, v in info.items():
        if k.startswith("_") or k in _FINAL_KEYS:
            continue
        mask = info.get("_" + k)
        if mask is not None and not mask[i]:
            continue
        if isinstance(v, dict):
            out[k] = _env_slice(v, i)
        elif np.ndim(v) >= 1:
            out[k] = _scalar(k, v[i])
    return out


def make_learned_vec_env(env_id: str, num_envs: int, obs_type: str = "pixels",
                         max_episode_steps: int | None = None, **env_kwargs: Any) -> LearnedVecEnv:
    """Build ``env_id``'s batched learned env (one model call per step) and wrap it for SB3.

    ``max_episode_steps=None`` keeps the id's registered episode length.
    """
    kwargs: dict[str, Any] = dict(env_kwargs)
    if max_episode_steps is not None:
        kwargs["max_episode_steps"] = max_episode_steps
    venv = gym.make_vec(env_id, num_envs=num_envs, vectorization_mode="vector_entry_point", obs_type=obs_type,
                        **kwargs)
    return LearnedVecEnv(venv)
