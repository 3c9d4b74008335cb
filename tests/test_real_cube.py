"""Contracts of the RealPushCube-v0 reference system, its reward and its play policy."""

from __future__ import annotations

import numpy as np
import pytest
import gymnasium as gym
from gymnasium.utils.env_checker import check_env

import fog_envs  # noqa: F401
from fog_envs.play import make_play_policy
from fog_envs.real import cube_reward
from fog_envs.real.cube import (
    ARENA_HALF_SIZE,
    CUBE_HALF_SIZE,
    GOAL_CENTER,
    GOAL_RADIUS,
    MAX_VX,
    MAX_YAW_RATE,
    RealPushCubeEnv,
)

FORWARD = np.array([1.0, 0.0, 0.0], dtype=np.float32)


@pytest.fixture
def env():
    e = gym.make("RealPushCube-v0")
    yield e
    e.close()


def test_check_env_and_spaces(env):
    check_env(env.unwrapped, skip_render_check=False)
    assert env.observation_space == gym.spaces.Box(0, 255, (64, 64, 3), np.uint8)
    assert env.action_space == gym.spaces.Box(-1, 1, (3,), np.float32)
    assert env.spec.max_episode_steps == 200
    assert env.metadata["render_fps"] == 5


def test_observation_and_info(env):
    obs, info = env.reset(seed=0)
    assert obs.dtype == np.uint8 and obs.shape == (64, 64, 3)
    assert obs.std() > 5  # a real image, not a blank buffer
    assert info["state"].dtype == np.float64 and info["state"].shape == (6,)
    assert set(info) >= {"state", "is_success", "cube_goal_distance", "robot_cube_distance"}
    obs, rew, terminated, truncated, info = env.step(env.action_space.sample())
    assert obs.dtype == np.uint8 and obs.shape == (64, 64, 3)
    assert rew == pytest.approx(cube_reward.reward(info["state"]))
    assert info["cube_goal_distance"] == pytest.approx(cube_reward.cube_goal_distance(info["state"]))
    assert np.array_equal(env.render(), obs)


def _rollout(env, seed: int, actions: np.ndarray):
    obs, info = env.reset(seed=seed)
    frames, states = [obs], [info["state"]]
    for a in actions:
        obs, _, _, _, info = env.step(a)
        frames.append(obs)
        states.append(info["state"])
    return np.stack(frames), np.stack(states)


def test_seeded_rollouts_are_bit_exact(env):
    actions = np.random.default_rng(0).uniform(-1, 1, size=(25, 3)).astype(np.float32)
    f1, s1 = _rollout(env, 7, actions)
    f2, s2 = _rollout(env, 7, actions)
    assert f1.tobytes() == f2.tobytes()
    assert s1.tobytes() == s2.tobytes()
    _, s3 = _rollout(env, 8, actions[:1])
    assert not np.array_equal(s1[0], s3[0])


def test_random_resets_are_valid(env):
    for seed in range(30):
        _, info = env.reset(seed=seed)
        s = info["state"]
        assert np.all(np.abs(s[[0, 1, 3, 4]]) < ARENA_HALF_SIZE - 0.25)
        assert info["cube_goal_distance"] > GOAL_RADIUS + 0.25 and not info["is_success"]
        assert info["robot_cube_distance"] > 0.5


@pytest.mark.parametrize(
    "action, words",
    [
        (np.zeros(2, dtype=np.float32), "shape"),
        (np.zeros((1, 3), dtype=np.float32), "shape"),
        (np.array([np.nan, 0.0, 0.0], dtype=np.float32), "NaN"),
        (np.array([0.0, np.inf, 0.0], dtype=np.float32), "NaN or inf"),
        (np.array([0.0, 0.0, 1.5], dtype=np.float32), "outside the action space"),
        (np.array([-2.0, 0.0, 0.0], dtype=np.float32), "outside the action space"),
    ],
)
def test_bad_actions_raise_clear_errors(env, action, words):
    env.reset(seed=0)
    with pytest.raises(ValueError, match=words):
        env.step(action)


def test_step_before_reset_raises():
    e = RealPushCubeEnv()
    with pytest.raises(RuntimeError, match="reset"):
        e.step(np.zeros(3, dtype=np.float32))
    e.close()


def test_reward_on_hand_built_states():
    gx, gy = GOAL_CENTER
    at_goal_touching = np.array([gx - cube_reward.CONTACT_DISTANCE, gy, 0.0, gx, gy, 0.3])
    terms = cube_reward.reward_terms(at_goal_touching)
    assert cube_reward.is_success(at_goal_touching)
    assert terms["progress_term"] == pytest.approx(1.0) and terms["approach_term"] == pytest.approx(1.0)
    assert cube_reward.reward(at_goal_touching) == pytest.approx(0.25 + 0.75 + 1.0)
    # cube just inside / outside the goal disc
    inside = np.array([0.0, 0.0, 0.0, gx + GOAL_RADIUS - 0.01, gy, 0.0])
    outside = np.array([0.0, 0.0, 0.0, gx + GOAL_RADIUS + 0.01, gy, 0.0])
    assert cube_reward.is_success(inside) and not cube_reward.is_success(outside)
    # cube in the far corner, robot far from it: no success, small reward
    far = np.array([1.2, -1.2, 0.0, -1.3, -1.3, 0.0])
    assert not cube_reward.is_success(far)
    assert cube_reward.reward_terms(far)["progress_term"] < 0.1
    assert cube_reward.reward(far) < 0.2
    # progress grows as the cube nears the goal; the batched form agrees with the scalar one
    states = np.array([far, outside, inside, at_goal_touching])
    batch = cube_reward.reward_batch(states)
    assert batch.shape == (4,) and np.all(np.diff(batch) > 0)
    assert batch == pytest.approx([cube_reward.reward(s) for s in states])
    with pytest.raises(ValueError, match="6"):
        cube_reward.reward(np.zeros(5))


def test_reset_to_state_and_success(env):
    gx, gy = GOAL_CENTER
    state = np.array([-0.5, 0.2, 0.4, gx, gy, 0.1])
    _, info = env.reset(seed=0, options={"reset_to_state": state})
    assert info["state"] == pytest.approx(state, abs=1e-9)
    assert info["is_success"] is True
    _, rew, terminated, truncated, info = env.step(np.zeros(3, dtype=np.float32))
    assert info["is_success"] and rew > 1.0 and not terminated and not truncated
    with pytest.raises(ValueError, match="reset_to_state"):
        env.reset(seed=0, options={"reset_to_state": [0.0, 0.0, 0.0]})


def test_terminate_on_success_option():
    e = gym.make("RealPushCube-v0", terminate_on_success=True)
    gx, gy = GOAL_CENTER
    e.reset(seed=0, options={"reset_to_state": [-0.5, 0.0, 0.0, gx, gy, 0.0]})
    _, _, terminated, truncated, info = e.step(np.zeros(3, dtype=np.float32))
    assert info["is_success"] and terminated and not truncated
    e.close()


def test_robot_moves_in_commanded_direction(env):
    # facing +y: forward moves +y, a left command moves -x, a yaw command turns counter-clockwise
    env.reset(seed=0, options={"reset_to_state": [0.0, -0.8, np.pi / 2, -1.0, 1.0, 0.0]})
    for _ in range(5):
        _, _, _, _, info = env.step(FORWARD)
    x, y, yaw = info["state"][:3]
    assert 0.7 * 5 * 0.2 * MAX_VX < y + 0.8 <= 5 * 0.2 * MAX_VX + 1e-3
    assert abs(x) < 0.02 and abs(yaw - np.pi / 2) < 0.02
    for _ in range(3):
        _, _, _, _, info = env.step(np.array([0.0, 1.0, 0.0], dtype=np.float32))
    assert info["state"][0] < -0.1 and abs(info["state"][1] - y) < 0.03
    yaw0 = info["state"][2]
    _, _, _, _, info = env.step(np.array([0.0, 0.0, 1.0], dtype=np.float32))
    assert 0.5 * 0.2 * MAX_YAW_RATE < info["state"][2] - yaw0 <= 0.2 * MAX_YAW_RATE + 1e-3
    # a zero command brings the robot to rest
    for _ in range(3):
        env.step(np.zeros(3, dtype=np.float32))
    before = env.unwrapped.true_state()
    env.step(np.zeros(3, dtype=np.float32))
    assert np.abs(env.unwrapped.true_state() - before).max() < 1e-3


def test_driving_into_the_cube_pushes_it(env):
    _, info = env.reset(seed=0, options={"reset_to_state": [-0.8, 0.0, 0.0, -0.2, 0.0, 0.0]})
    start = info["state"].copy()
    for _ in range(10):
        _, _, _, _, info = env.step(FORWARD)
    moved = info["state"][3:5] - start[3:5]
    assert moved[0] > 0.4 and abs(moved[1]) < 0.15
    assert info["robot_cube_distance"] < cube_reward.CONTACT_DISTANCE + 0.05  # still in contact
    z = env.unwrapped.data.body("cube").xpos[2]
    assert z == pytest.approx(CUBE_HALF_SIZE, abs=0.01)  # slid, not tipped or lifted


def test_time_limit_truncates_at_200(env):
    env.reset(seed=1)
    for t in range(200):
        _, _, terminated, truncated, _ = env.step(np.zeros(3, dtype=np.float32))
        assert not terminated
    assert truncated and t == 199


def test_overview_render():
    e = gym.make("RealPushCube-v0", render_view="overview", render_size=96)
    obs, _ = e.reset(seed=0)
    frame = e.render()
    assert frame.shape == (96, 96, 3) and frame.dtype == np.uint8 and obs.shape == (64, 64, 3)
    e.close()


def test_record_video_headless(tmp_path):
    folder = tmp_path / "videos"
    e = gym.wrappers.RecordVideo(gym.make("RealPushCube-v0", render_view="overview"), str(folder),
                                 episode_trigger=lambda i: True, disable_logger=True)
    e.reset(seed=0)
    for _ in range(12):
        e.step(e.action_space.sample())
    e.close()
    videos = list(folder.glob("*.mp4"))
    assert videos and videos[0].stat().st_size > 0


def test_play_policy_moves_the_cube(env):
    moved, steps = 0, 0
    for ep in range(2):
        _, info = env.reset(seed=ep)
        policy = make_play_policy("RealPushCube-v0")
        policy.reset(info, np.random.default_rng(ep))
        prev = info["state"]
        for _ in range(100):
            action = policy(info)
            assert action.shape == (3,) and action.dtype == np.float32 and np.all(np.abs(action) <= 1)
            _, _, _, _, info = env.step(action)
            moved += np.linalg.norm(info["state"][3:5] - prev[3:5]) > 1e-3
            steps += 1
            prev = info["state"]
    assert moved / steps > 0.2


def test_play_policy_is_reproducible(env):
    def run(seed: int) -> np.ndarray:
        _, info = env.reset(seed=seed)
        policy = make_play_policy("RealPushCube-v0")
        policy.reset(info, np.random.default_rng(seed))
        actions = []
        for _ in range(30):
            actions.append(policy(info))
            _, _, _, _, info = env.step(actions[-1])
        return np.stack(actions)

    assert run(3).tobytes() == run(3).tobytes()


def test_advance_on_a_copy_is_the_step_and_leaves_the_episode_alone(env):
    """A planner's copy advanced with ``advance`` follows the physics ``step`` does, bit for bit, while the episode's
    own state stays where it was; ``true_state(data)`` reads the copy."""
    import mujoco

    base = env.unwrapped
    env.reset(seed=0, options={"reset_to_state": [-0.8, 0.0, 0.0, -0.2, 0.0, 0.0]})
    before = base.true_state()
    copy = mujoco.MjData(base.model)
    mujoco.mj_copyData(copy, base.model, base.data)
    actions = np.random.default_rng(1).uniform(-1, 1, size=(6, 3)).astype(np.float32)
    for a in actions:
        base.advance(a, copy)
    assert np.array_equal(base.true_state(), before)  # the episode did not move
    for a in actions:
        env.step(a)
    assert np.array_equal(base.true_state(copy), base.true_state())
    assert not np.allclose(base.true_state(copy), before)
