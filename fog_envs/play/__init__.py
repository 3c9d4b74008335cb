"""Scripted play policies for the reference systems (the stand-in for human play data)."""

from __future__ import annotations

from fog_envs.play.base import PlayPolicy


def make_play_policy(env_id: str, random_action_prob: float = 0.0, nudge_prob: float = 0.0,
                     wall_prob: float = 0.0, drive_prob: float = 0.0) -> PlayPolicy:
    """The scripted play policy for a reference-system id (with one-step uniformly random actions mixed in
    w.p. ``random_action_prob``, see :mod:`fog_envs.play.random_mix`; Push-T: each planned push a nudge w.p.
    ``nudge_prob``, see :class:`fog_envs.play.pusht.PushTPlayConfig`; push-cube: each segment wall play w.p.
    ``wall_prob`` and a drive w.p. ``drive_prob``, see :class:`fog_envs.play.cube.PushCubePlayConfig`);
    ``ValueError`` for an unknown id."""
    if nudge_prob and env_id != "RealPushT-v0":
        raise ValueError(f"nudge_prob applies to RealPushT-v0's play policy only, got env id {env_id!r}")
    if (wall_prob or drive_prob) and env_id != "RealPushCube-v0":
        raise ValueError(f"wall_prob and drive_prob apply to RealPushCube-v0's play policy only, got env id "
                         f"{env_id!r}")
    if env_id == "RealPushT-v0":
        from fog_envs.play.pusht import PushTPlayConfig, PushTPlayPolicy

        policy: PlayPolicy = PushTPlayPolicy(PushTPlayConfig(p_nudge=nudge_prob))
    elif env_id == "RealPushCube-v0":
        from fog_envs.play.cube import PushCubePlayConfig, PushCubePlayPolicy

        policy = PushCubePlayPolicy(PushCubePlayConfig(p_wall=wall_prob, p_drive=drive_prob))
    else:
        raise ValueError(f"no play policy for env id {env_id!r}; known: 'RealPushT-v0', 'RealPushCube-v0'")
    if random_action_prob == 0.0:
        return policy
    from fog_envs.play.random_mix import RandomActionMix

    return RandomActionMix(policy, random_action_prob)


__all__ = ["PlayPolicy", "make_play_policy"]
