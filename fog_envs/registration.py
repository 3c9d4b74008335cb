"""Gymnasium registration of every fog environment id."""

from __future__ import annotations

from gymnasium.envs.registration import register, registry

#: Reference systems ("the real robot"): id -> (entry point, max episode steps).
REFERENCE_SYSTEMS: dict[str, tuple[str, int]] = {
    "RealPushT-v0": ("fog_envs.real.pusht:RealPushTEnv", 300),
    "RealPushCube-v0": ("fog_envs.real.cube:RealPushCubeEnv", 200),
}

#: Learned envs: id -> (task, max episode steps, default kwargs).
LEARNED_ENVS: dict[str, tuple[str, int, dict]] = {
    "WMPushT-v0": ("pusht", 300, {}),
    "WMPushCube-v0": ("cube", 200, {}),
    "WMToy-v0": ("toy", 100, {"obs_type": "latent"}),
}


def register_envs() -> None:
    """Register all fog env ids (idempotent: ids already registered are left alone)."""
    for env_id, (entry_point, max_steps) in REFERENCE_SYSTEMS.items():
        if env_id not in registry:
            register(id=env_id, entry_point=entry_point, max_episode_steps=max_steps)
    for env_id, (task, max_steps, kwargs) in LEARNED_ENVS.items():
        if env_id not in registry:
            register(id=env_id, entry_point="fog_envs.learned.env:LearnedEnv",
                     vector_entry_point="fog_envs.learned.vector_env:LearnedVectorEnv",
                     max_episode_steps=max_steps, kwargs={"task": task, **kwargs})
