"""Scripted play policies for the reference systems (the stand-in for human play data)."""

from __future__ import annotations

from fog_envs.play.base import PlayPolicy


def make_play_policy(env_id: str) -> PlayPolicy:
    """The scripted play policy for a reference-system id; ``ValueError`` for an unknown id."""
    if env_id == "RealPushT-v0":
        from fog_envs.play.pusht import PushTPlayPolicy

        return PushTPlayPolicy()
    if env_id == "RealPushCube-v0":
        from fog_envs.play.cube import PushCubePlayPolicy

        return PushCubePlayPolicy()
    raise ValueError(f"no play policy for env id {env_id!r}; known: 'RealPushT-v0', 'RealPushCube-v0'")


__all__ = ["PlayPolicy", "make_play_policy"]
