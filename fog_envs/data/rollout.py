"""Run one play episode on a Gymnasium env and return its rows in the dataset's row convention."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import gymnasium as gym
import numpy as np

from fog_envs.play.base import PlayPolicy

#: Builds the play policy for an env id (must be picklable, e.g. a module-level function, for workers).
PolicyFactory = Callable[[str], PlayPolicy]


def policy_name(policy: object) -> str:
    """A provenance string for a policy: its qualified class name, plus ``repr(policy.config)`` if any."""
    cls = type(policy)
    name = f"{cls.__module__}.{cls.__qualname__}"
    config = getattr(policy, "config", None)
    return f"{name}({config!r})" if config is not None else name


def _true_state(info: dict[str, Any], env_id: str) -> np.ndarray:
    if "state" not in info:
        raise ValueError(f"{env_id}: info has no 'state' entry; the collector needs the true state in info")
    return np.asarray(info["state"], dtype=np.float64).reshape(-1)


def run_episode(env: gym.Env, policy: PlayPolicy, seed: int, rng: np.random.Generator) -> dict[str, np.ndarray]:
    """Play one episode until ``terminated`` or ``truncated``; returns the dataset arrays of its rows.

    A policy may choose the episode's start through an optional ``reset_options(rng) -> dict | None``, and see
    each observation through an optional ``observe(obs)``, called just before the call that acts on it.
    Row t: ``frames[t]`` = o_t, ``state[t]`` = ``info["state"]`` at o_t, ``actions[t]`` = a_t = policy(info_t),
    and ``rewards/terminated/truncated/is_success[t]`` from ``env.step(a_t)``. The final observation (after
    the last action) is not stored. The env must end episodes itself (e.g. a ``TimeLimit``).
    """
    env_id = env.spec.id if env.spec is not None else type(env).__name__
    reset_options = getattr(policy, "reset_options", None)
    obs, info = env.reset(seed=seed, options=reset_options(rng) if reset_options is not None else None)
    policy.reset(info, rng)
    observe = getattr(policy, "observe", None)
    frames, states, actions, rewards, terminated, truncated, success = [], [], [], [], [], [], []
    while True:
        frames.append(np.asarray(obs, dtype=np.uint8))
        states.append(_true_state(info, env_id))
        if observe is not None:
            observe(obs)
        action = np.asarray(policy(info), dtype=np.float32)
        obs, reward, term, trunc, info = env.step(action)
        actions.append(action)
        rewards.append(float(reward))
        terminated.append(bool(term))
        truncated.append(bool(trunc))
        success.append(bool(info.get("is_success", False)))
        if term or trunc:
            break
    return {
        "frames": np.stack(frames), "actions": np.stack(actions),
        "rewards": np.asarray(rewards, dtype=np.float32), "terminated": np.asarray(terminated),
        "truncated": np.asarray(truncated), "state": np.stack(states), "is_success": np.asarray(success),
    }
