"""Near-wall starts of the reference cube (``RealPushCubeEnv(wall_start_band_m=B)``) and collections that use them
(``CollectConfig.wall_start_band_m``): the resets conditioned on the cube next to a wall, the default resets left
bit for bit as they were, the start part of a collection's identity, bad settings named."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest

import fog_envs  # noqa: F401  (registers the envs)
from fog_envs.data.collect import CollectConfig, CollectMismatchError, collect
from fog_envs.data.format import dataset_info, load_arrays
from fog_envs.real.cube import (ARENA_HALF_SIZE, CUBE_RESET_MARGIN, GOAL_CENTER, MIN_RESET_CUBE_GOAL,
                                MIN_RESET_ROBOT_CUBE, RealPushCubeEnv)

_LIMIT = ARENA_HALF_SIZE - CUBE_RESET_MARGIN


def _reset_states(band: float | None, seeds: range) -> np.ndarray:
    env = RealPushCubeEnv(render_mode=None, wall_start_band_m=band)
    try:
        return np.stack([env.reset(seed=s)[1]["state"] for s in seeds])
    finally:
        env.close()


def test_near_wall_resets_meet_the_reset_conditions_and_lie_in_the_band():
    states = _reset_states(0.15, range(40))
    cube, robot = states[:, 3:5], states[:, :2]
    gap = _LIMIT - np.abs(cube).max(-1)
    assert np.all(gap <= 0.15 + 1e-12) and np.all(gap >= -1e-12)
    assert np.all(np.linalg.norm(cube - np.asarray(GOAL_CENTER)[:2], axis=-1) > MIN_RESET_CUBE_GOAL)
    assert np.all(np.linalg.norm(cube - robot, axis=-1) > MIN_RESET_ROBOT_CUBE)
    assert len(np.unique(states[:, 3].round(6))) == 40  # not one start repeated
    np.testing.assert_array_equal(states, _reset_states(0.15, range(40)))  # seeded


def test_the_default_resets_are_unchanged_and_a_band_keeps_the_draws_the_resets_would_keep():
    """Without a band nothing changes; with one, the draws are the resets' own, kept only near a wall: the
    near-wall resets are exactly the default resets that land in the band (same generator, one more condition)."""
    plain = _reset_states(None, range(60))
    gym_env = gym.make("RealPushCube-v0")
    try:
        np.testing.assert_array_equal(plain[:5], np.stack([gym_env.reset(seed=s)[1]["state"] for s in range(5)]))
    finally:
        gym_env.close()
    near = plain[_LIMIT - np.abs(plain[:, 3:5]).max(-1) <= 0.15]
    assert 3 <= len(near) <= 30  # the band holds a fifth of the resets
    banded = _reset_states(0.15, range(60))
    first_in_band = [s for s in range(60) if _LIMIT - np.abs(plain[s, 3:5]).max() <= 0.15]
    np.testing.assert_array_equal(banded[first_in_band], plain[first_in_band])


def test_bad_bands_are_named():
    with pytest.raises(ValueError, match="wall_start_band_m must be > 0"):
        RealPushCubeEnv(render_mode=None, wall_start_band_m=0.0)
    with pytest.raises(ValueError, match="wall_start_band_m must be > 0"):
        CollectConfig(env_id="RealPushCube-v0", wall_start_band_m=-0.1)
    with pytest.raises(ValueError, match="wall_start_band_m is for RealPushCube-v0, not 'RealPushT-v0'"):
        CollectConfig(env_id="RealPushT-v0", wall_start_band_m=0.15)


def test_a_near_wall_collection_starts_by_the_walls_records_it_and_is_not_mixed_with_resets(tmp_path):
    out = tmp_path / "near.h5"
    cfg = CollectConfig(env_id="RealPushCube-v0", out=out, num_episodes=2, seed=7, workers=1,
                        max_episode_steps=3, wall_start_band_m=0.15)
    assert cfg.start == "near_wall:0.15"
    collect(cfg)
    arrays, attrs = load_arrays(out), dataset_info(out).attrs
    assert attrs["start"] == "near_wall:0.15"
    firsts = arrays["state"][np.concatenate([[0], arrays["episode_ends"][:-1]])]
    assert np.all(_LIMIT - np.abs(firsts[:, 3:5]).max(-1) <= 0.15 + 1e-12)
    np.testing.assert_array_equal(firsts, _reset_states(0.15, range(7, 9)))
    with pytest.raises(CollectMismatchError, match="start: 'near_wall:0.15' \\(existing\\) vs 'reset'"):
        collect(CollectConfig(env_id="RealPushCube-v0", out=out, num_episodes=2, seed=7, workers=1,
                              max_episode_steps=3))
    plain = tmp_path / "plain.h5"
    collect(CollectConfig(env_id="RealPushCube-v0", out=plain, num_episodes=1, seed=7, workers=1,
                          max_episode_steps=3))
    assert "start" not in dataset_info(plain).attrs  # files of the env's own resets are written as before
    assert collect(CollectConfig(env_id="RealPushCube-v0", out=plain, num_episodes=1, seed=7, workers=1,
                                 max_episode_steps=3)).already_existed
