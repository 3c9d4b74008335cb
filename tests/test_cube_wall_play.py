"""Wall play of the push-cube play policy (``PushCubePlayConfig.p_wall``): off by default without a single extra
draw, on it pins the cube against the walls and drives the robot into them; bad settings are named."""

from __future__ import annotations

import hashlib

import gymnasium as gym
import numpy as np
import pytest

import fog_envs  # noqa: F401  (registers the envs)
from fog_envs.data.collect import CollectConfig
from fog_envs.play import make_play_policy
from fog_envs.play.cube import PushCubePlayConfig, PushCubePlayPolicy
from fog_envs.real.cube import ARENA_HALF_SIZE, CUBE_HALF_SIZE, MAX_VX, MAX_VY, MAX_YAW_RATE

_PINNED = ARENA_HALF_SIZE - CUBE_HALF_SIZE - 0.02  # cube centres beyond this touch a wall
_ROBOT_AT_WALL = ARENA_HALF_SIZE - 0.2  # robot centres beyond this touch a wall (half extents 0.22 x 0.15)


def _kinematic_digest(config: PushCubePlayConfig, episodes: int = 2, steps: int = 150) -> str:
    """sha256 of the policy's actions on a pure-numpy stand-in for the arena (the robot integrates its body
    velocity and stops at the walls, the cube stays put): the same on every machine, unlike MuJoCo's contacts."""
    digest = hashlib.sha256()
    for ep in range(episodes):
        rng = np.random.default_rng([0, ep])
        state = np.array([-0.8 + 0.3 * ep, 0.2, 0.5, 0.4, -0.6 + 0.2 * ep, 0.0])
        policy = PushCubePlayPolicy(config)
        policy.reset({"state": state}, rng)
        for _ in range(steps):
            action = policy({"state": state})
            digest.update(action.tobytes())
            c, s = np.cos(state[2]), np.sin(state[2])
            vx, vy = action[0] * MAX_VX, action[1] * MAX_VY
            state = state.copy()
            state[:2] = np.clip(state[:2] + 0.2 * np.array([c * vx - s * vy, s * vx + c * vy]), -1.3, 1.3)
            state[2] = np.arctan2(np.sin(state[2] + 0.2 * action[2] * MAX_YAW_RATE),
                                  np.cos(state[2] + 0.2 * action[2] * MAX_YAW_RATE))
    return digest.hexdigest()


def test_wall_play_off_draws_nothing_extra():
    """``p_wall=0`` (the default) plays exactly as the policy did before wall play existed (digest taken with
    that code), so the shipped datasets' recipe still holds."""
    assert _kinematic_digest(PushCubePlayConfig()) == (
        "a490c3db26c96a2bcaedafbb807619e0b50bee8d7e6a0c1ac94725eb84cd87c7")
    assert _kinematic_digest(PushCubePlayConfig(p_wall=0.5)) != _kinematic_digest(PushCubePlayConfig())


def _wall_shares(p_wall: float, episodes: int = 3) -> tuple[float, float]:
    """(share of steps with the robot touching a cube that touches a wall, share with the robot at a wall)."""
    env = gym.make("RealPushCube-v0", obs_size=16)
    pinned = at_wall = total = 0
    for ep in range(episodes):
        policy, rng = PushCubePlayPolicy(PushCubePlayConfig(p_wall=p_wall)), np.random.default_rng([0, ep])
        _, info = env.reset(seed=ep)
        policy.reset(info, rng)
        for _ in range(200):
            s = info["state"]
            touching = np.linalg.norm(s[3:5] - s[:2]) < 0.45
            pinned += bool(touching and np.abs(s[3:5]).max() > _PINNED)
            at_wall += bool(np.abs(s[:2]).max() > _ROBOT_AT_WALL)
            total += 1
            *_, info = env.step(policy(info))
    env.close()
    return pinned / total, at_wall / total


def test_wall_play_pins_the_cube_and_drives_the_robot_into_walls():
    """The default play keeps the cube off the walls (a few percent of steps pinned); ``p_wall=0.6`` spends
    a large share of its steps pushing a pinned cube and some with the robot itself at a wall."""
    plain_pinned, plain_wall = _wall_shares(0.0)
    wall_pinned, wall_wall = _wall_shares(0.6)
    assert plain_pinned < 0.1
    assert wall_pinned > 0.3 and wall_pinned > 4 * plain_pinned
    assert wall_wall > plain_wall


def test_bad_wall_play_settings_are_named():
    with pytest.raises(ValueError, match="p_wall and p_drive must be in"):
        PushCubePlayConfig(p_wall=1.5)
    with pytest.raises(ValueError, match="p_wall and p_drive must be in"):
        PushCubePlayConfig(p_wall=0.9)  # with the default wander/look/random shares the sum passes 1
    with pytest.raises(ValueError, match="wall_prob and drive_prob apply to RealPushCube-v0"):
        make_play_policy("RealPushT-v0", wall_prob=0.3)
    with pytest.raises(ValueError, match="wall_prob must be in"):
        CollectConfig(env_id="RealPushCube-v0", wall_prob=-0.1)
    assert "p_wall=0.3" in repr(make_play_policy("RealPushCube-v0", wall_prob=0.3).config)


def test_drives_hold_full_reverse_and_full_turns():
    """The default play never reverses at full speed while turning hard (its wanders stay inside the usual
    speeds); with ``p_drive=0.8`` a few percent of its steps do, held over consecutive steps."""

    def reverse_turn_share(config: PushCubePlayConfig) -> float:
        policy, rng, state, hits = PushCubePlayPolicy(config), np.random.default_rng([0, 0]), np.zeros(6), 0
        state[3:5] = (0.8, 0.8)
        policy.reset({"state": state}, rng)
        for _ in range(2000):
            action = policy({"state": state})
            hits += bool(action[0] < -0.8 and abs(action[2]) > 0.8)
        return hits / 2000

    assert reverse_turn_share(PushCubePlayConfig()) < 0.01
    assert reverse_turn_share(PushCubePlayConfig(p_drive=0.8)) > 0.03
    with pytest.raises(ValueError, match="p_wall and p_drive must be in"):
        PushCubePlayConfig(p_drive=-0.1)
    with pytest.raises(ValueError, match="drive_prob must be in"):
        CollectConfig(env_id="RealPushCube-v0", drive_prob=1.5)
