"""Gymnasium registration of every fog environment id."""

from __future__ import annotations

from gymnasium.envs.registration import register, registry

#: Reference systems ("the real robot"): id -> (entry point, max episode steps).
REFERENCE_SYSTEMS: dict[str, tuple[str, int]] = {
    "RealPushT-v0": ("fog_envs.real.pusht:RealPushTEnv", 300),
    "RealPushCube-v0": ("fog_envs.real.cube:RealPushCubeEnv", 200),
}


def register_envs() -> None:
    """Register all fog env ids (idempotent: ids already registered are left alone)."""
    for env_id, (entry_point, max_steps) in REFERENCE_SYSTEMS.items():
        if env_id not in registry:
            register(id=env_id, entry_point=entry_point, max_episode_steps=max_steps)
