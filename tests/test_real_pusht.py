"""Contracts of the RealPushT-v0 reference system and its reward."""

from __future__ import annotations

import numpy as np
import pytest
import gymnasium as gym
from gymnasium.utils.env_checker import check_env

import fog_envs  # noqa: F401
from fog_envs.play import make_play_policy
from fog_envs.real import pusht_reward
from fog_envs.real.pusht import MAX_TARGET_DELTA


@pytest.fixture
def env():
    e = gym.make("RealPushT-v0")
    yield e
    e.close()


def test_check_env_and_spaces(env):
    check_env(env.unwrapped, skip_render_check=False)
    assert env.observation_space == gym.spaces.Box(0, 255, (64, 64, 3), np.uint8)
    assert env.action_space == gym.spaces.Box(-1, 1, (2,), np.float32)
    assert env.spec.max_episode_steps == 300
    assert env.metadata["render_fps"] == 10


def test_state_observations_are_the_true_state_and_the_same_trajectory():
    """``obs_type="state"``: the observation is ``info["state"]``, nothing is drawn, and the physics, rewards
    and infos are those of the pixel env under the same seed and actions; an unknown obs_type is named."""
    pixels, state = gym.make("RealPushT-v0"), gym.make("RealPushT-v0", obs_type="state")
    check_env(state.unwrapped, skip_render_check=True)
    assert state.observation_space.shape == (5,) and state.observation_space.dtype == np.float64
    actions = np.random.default_rng(0).uniform(-1, 1, (20, 2)).astype(np.float32)
    (_, info_p), (obs_s, info_s) = pixels.reset(seed=4), state.reset(seed=4)
    np.testing.assert_array_equal(obs_s, info_s["state"])
    for a in actions:
        _, r_p, _, _, info_p = pixels.step(a)
        obs_s, r_s, _, _, info_s = state.step(a)
        np.testing.assert_array_equal(obs_s, info_s["state"])
        np.testing.assert_array_equal(info_s["state"], info_p["state"])
        assert r_s == r_p and info_s["coverage"] == info_p["coverage"]
        assert r_s == pytest.approx(pusht_reward.reward(info_s["state"])[0], abs=1e-12)
    with pytest.raises(ValueError, match="obs_type must be 'pixels' or 'state', got 'rgb'"):
        gym.make("RealPushT-v0", obs_type="rgb")


def _rollout(env, seed: int, actions: np.ndarray):
    obs, info = env.reset(seed=seed)
    frames, states = [obs], [info["state"]]
    for a in actions:
        obs, _, _, _, info = env.step(a)
        frames.append(obs)
        states.append(info["state"])
    return np.stack(frames), np.stack(states)


def test_seeded_rollouts_are_bit_exact(env):
    actions = np.random.default_rng(0).uniform(-1, 1, size=(30, 2)).astype(np.float32)
    f1, s1 = _rollout(env, 7, actions)
    f2, s2 = _rollout(env, 7, actions)
    assert f1.tobytes() == f2.tobytes()
    assert s1.tobytes() == s2.tobytes()
    _, s3 = _rollout(env, 8, actions[:1])
    assert not np.array_equal(s1[0], s3[0])


def test_coverage_matches_gym_pusht_on_random_states(env):
    for seed in range(10):
        env.reset(seed=seed)
        inner = env.unwrapped
        block_pose = np.array([*inner.block.position, inner.block.angle])
        assert pusht_reward.coverage(block_pose) == pytest.approx(inner._get_coverage(), abs=1e-9)


def test_reward_on_hand_built_states():
    on_goal = np.array([100.0, 100.0, *pusht_reward.GOAL_POSE])
    rew, cov = pusht_reward.reward(on_goal)
    assert cov == pytest.approx(1.0)
    terms = pusht_reward.reward_terms(on_goal)
    assert terms["pose_term"] == pytest.approx(1.0)
    # agent far from the block: approach term is small but the rest is maximal
    assert rew == pytest.approx(0.6 + 0.3 + 0.1 * terms["approach_term"])
    far = np.array([256.0, 256.0, 60.0, 60.0, 0.0])
    rew_far, cov_far = pusht_reward.reward(far)
    assert cov_far == 0.0
    assert rew_far < 0.35
    # the agent touching the block maximises the approach term
    touching = np.array([256.0, 256.0 - 15.0, 256.0, 256.0, 0.0])  # disk tangent to the T's top edge
    assert pusht_reward.reward_terms(touching)["approach_term"] == pytest.approx(1.0)


def test_reset_to_goal_state_reports_success(env):
    _, info = env.reset(seed=0, options={"reset_to_state": [100.0, 100.0, *pusht_reward.GOAL_POSE]})
    assert info["coverage"] == pytest.approx(1.0, abs=1e-6)
    assert info["is_success"] is True
    _, info = env.reset(seed=0, options={"reset_to_state": [100.0, 100.0, 60.0, 400.0, 0.0]})
    assert info["coverage"] == 0.0 and info["is_success"] is False


def test_action_scaling_moves_agent_towards_target(env):
    env.reset(seed=0, options={"reset_to_state": [256.0, 400.0, 100.0, 100.0, 0.0]})
    start = env.unwrapped.true_state()[:2]
    for _ in range(10):
        _, _, _, _, info = env.step(np.array([1.0, 0.0], dtype=np.float32))
    moved = info["state"][:2] - start
    assert moved[0] > 5 * 10 and moved[0] <= 10 * MAX_TARGET_DELTA
    assert abs(moved[1]) < 1.0
    # a zero action keeps the agent (nearly) where it is once it has stopped
    for _ in range(20):
        env.step(np.zeros(2, dtype=np.float32))
    before = env.unwrapped.true_state()[:2]
    env.step(np.zeros(2, dtype=np.float32))
    assert np.linalg.norm(env.unwrapped.true_state()[:2] - before) < 1.0


@pytest.mark.parametrize(
    "action, kind, words",
    [
        (np.zeros(3, dtype=np.float32), ValueError, "shape"),
        (np.array([np.nan, 0.0], dtype=np.float32), ValueError, "NaN"),
        (np.array([np.inf, 0.0], dtype=np.float32), ValueError, "NaN or inf"),
        (np.array([1.5, 0.0], dtype=np.float32), ValueError, "outside the action space"),
        (np.array(["a", "b"]), TypeError, "numeric"),
    ],
)
def test_bad_actions_raise_clear_errors(env, action, kind, words):
    env.reset(seed=0)
    with pytest.raises(kind, match=words):
        env.step(action)


def test_step_before_reset_raises():
    from fog_envs.real.pusht import RealPushTEnv

    with pytest.raises(RuntimeError, match="reset"):
        RealPushTEnv().step(np.zeros(2, dtype=np.float32))


def test_terminate_on_success_option():
    e = gym.make("RealPushT-v0", terminate_on_success=True)
    e.reset(seed=0, options={"reset_to_state": [100.0, 100.0, *pusht_reward.GOAL_POSE]})
    _, _, terminated, truncated, info = e.step(np.zeros(2, dtype=np.float32))
    assert info["is_success"] and terminated and not truncated


def test_time_limit_truncates_at_300(env):
    env.reset(seed=1)
    for t in range(300):
        _, _, terminated, truncated, _ = env.step(np.zeros(2, dtype=np.float32))
        assert not terminated
    assert truncated and t == 299


def test_play_policy_moves_the_block(env):
    moved, steps = 0, 0
    for ep in range(2):
        _, info = env.reset(seed=ep)
        policy = make_play_policy("RealPushT-v0")
        policy.reset(info, np.random.default_rng(ep))
        prev = info["state"]
        for _ in range(100):
            action = policy(info)
            assert action.shape == (2,) and action.dtype == np.float32 and np.all(np.abs(action) <= 1)
            _, _, _, _, info = env.step(action)
            moved += np.linalg.norm(info["state"][2:4] - prev[2:4]) > 0.5
            steps += 1
            prev = info["state"]
    assert moved / steps > 0.2


def test_record_video_headless(tmp_path):
    e = gym.wrappers.RecordVideo(gym.make("RealPushT-v0"), str(tmp_path), episode_trigger=lambda i: True,
                                 disable_logger=True)
    e.reset(seed=0)
    for _ in range(12):
        e.step(e.action_space.sample())
    e.close()
    videos = list(tmp_path.glob("*.mp4"))
    assert videos and videos[0].stat().st_size > 0


def test_differentiable_reward_mirrors_the_reward_on_probe_states():
    """The torch reward: pose and approach terms exactly the numpy ones; the cell-area soft coverage within 0.005
    of the exact polygon coverage (1 at the goal pose, so success is reachable); finite gradients everywhere
    (agent inside the T included)."""
    import torch

    from fog_envs.real import pusht_reward
    from fog_envs.real.pusht_reward_torch import reward, soft_coverage
    from fog_envs.wm.tasks import get_task

    rng = np.random.default_rng(0)
    states = np.column_stack([rng.uniform(50, 460, (200, 4)), rng.uniform(0, 2 * np.pi, 200)])
    states[:20, 2:5] = pusht_reward.GOAL_POSE + rng.normal(0, [8, 8, 0.1], (20, 3))  # near the goal
    states[20, :2] = states[20, 2:4]  # the agent at the block's origin (inside the T)
    probe = torch.tensor(get_task("pusht").probe_targets(states), requires_grad=True)
    cov = soft_coverage(probe).detach().numpy()
    exact_cov = np.array([pusht_reward.coverage(s[2:5]) for s in states])
    assert np.abs(cov - exact_cov).max() < 0.005
    home = torch.tensor(get_task("pusht").probe_targets(np.array([[100.0, 100.0, *pusht_reward.GOAL_POSE]])))
    assert soft_coverage(home).item() == pytest.approx(1.0, abs=1e-4)
    cov_term = np.minimum(cov / pusht_reward.SUCCESS_COVERAGE, 1.0)
    terms = [pusht_reward.reward_terms(s) for s in states]
    expected = np.array([0.6 * c + 0.3 * t["pose_term"] + 0.1 * t["approach_term"] for c, t in zip(cov_term, terms)])
    r = reward(probe)
    np.testing.assert_allclose(r.detach().numpy(), expected, atol=1e-5)
    r.sum().backward()
    assert torch.isfinite(probe.grad).all()
    weights = {"coverage": 0.2, "pose": 0.5, "approach": 0.03}  # other weights: the same terms, reweighted
    reweighted = np.array([0.2 * c + 0.5 * t["pose_term"] + 0.03 * t["approach_term"] for c, t in zip(cov_term, terms)])
    np.testing.assert_allclose(reward(probe, weights).detach().numpy(), reweighted, atol=1e-5)
    exact = [0.2 * t["coverage_term"] + 0.5 * t["pose_term"] + 0.03 * t["approach_term"] for t in terms]
    np.testing.assert_allclose([pusht_reward.combine_terms(t, weights) for t in terms], exact, rtol=1e-12)
    np.testing.assert_allclose([pusht_reward.combine_terms(t) for t in terms], [pusht_reward.reward(s)[0] for s in states])


def test_reward_coverage_cap_lets_the_coverage_term_grow_past_the_threshold():
    """``coverage_cap`` 1: the coverage term is 0.6·coverage/0.95 up to full coverage (0.6/0.95 at the goal pose),
    the task's own reward below the threshold; a cap outside [0.95, 1] is refused by name."""
    import torch

    from fog_envs.real import pusht_reward
    from fog_envs.real.pusht_reward_torch import reward, soft_coverage
    from fog_envs.wm.tasks import get_task

    poses = pusht_reward.GOAL_POSE + np.array([[0.0, 0.0, 0.0], [1.0, 0.0, 0.0], [40.0, 10.0, 0.3]])
    probe = torch.tensor(get_task("pusht").probe_targets(np.column_stack([np.full((3, 2), 100.0), poses])))
    cov = soft_coverage(probe)
    assert cov[0] > cov[1] > pusht_reward.SUCCESS_COVERAGE > cov[2]
    capped, free = reward(probe), reward(probe, coverage_cap=1.0)
    torch.testing.assert_close(free - capped, 0.6 * (cov / 0.95 - 1.0).clamp(min=0.0))
    assert free[0] - capped[0] == pytest.approx(0.6 * (1 / 0.95 - 1), abs=1e-4) and free[2] == capped[2]
    with pytest.raises(ValueError, match="coverage_cap must lie in"):
        reward(probe, coverage_cap=0.9)


def test_soft_coverage_gradient_matches_the_exact_coverage_slope():
    """Near the goal the soft coverage's gradient with respect to the block's x and angle is the slope of the
    exact polygon coverage (central differences of 0.25 px / 0.5°), so the reward pulls the block home."""
    import torch

    from fog_envs.real import pusht_reward
    from fog_envs.real.pusht_reward_torch import TABLE, soft_coverage
    from fog_envs.wm.tasks import get_task

    pose = pusht_reward.GOAL_POSE + np.array([6.0, -4.0, 0.05])
    probe = torch.tensor(get_task("pusht").probe_targets(np.array([[100.0, 100.0, *pose]])), requires_grad=True)
    soft_coverage(probe).sum().backward()
    dx, da = 0.25, np.radians(0.5)
    slope_x = (pusht_reward.coverage(pose + [dx, 0, 0]) - pusht_reward.coverage(pose - [dx, 0, 0])) / (2 * dx)
    slope_a = (pusht_reward.coverage(pose + [0, 0, da]) - pusht_reward.coverage(pose - [0, 0, da])) / (2 * da)
    grad_x = probe.grad[0, 2].item() / TABLE  # probe x is px / TABLE
    c, s = np.cos(pose[2]), np.sin(pose[2])  # d/dθ through (cos θ, sin θ)
    grad_a = probe.grad[0, 4].item() * -s + probe.grad[0, 5].item() * c
    assert slope_x < 0 and grad_x == pytest.approx(slope_x, rel=0.1)
    assert slope_a < 0 and grad_a == pytest.approx(slope_a, rel=0.1)


def test_evaluation_resets_each_episode_with_its_options():
    """``reset_options(i)``: episode i starts where its options say; a block already home scores success."""
    from fog_envs.evaluation import ZeroActionController, evaluate

    home = np.array([100.0, 100.0, *pusht_reward.GOAL_POSE])
    away = np.array([100.0, 100.0, 150.0, 350.0, 0.0])
    result = evaluate(lambda: ZeroActionController(2), "RealPushT-v0", episodes=2, seed=3,
                      env_kwargs={"obs_type": "state"}, reset_options=lambda i: {"reset_to_state": (home, away)[i]})
    assert result.successes == [True, False]
    assert result.max_coverages[0] == pytest.approx(1.0, abs=1e-6)
    assert result.max_coverages[1] == pytest.approx(pusht_reward.coverage(away[2:]), abs=1e-6)


def test_episode_gains_by_hand():
    from fog_envs.evaluation import episode_gains

    g = episode_gains(np.array([0.5, 0.2, 0.1, 0.33]), np.array([0.2, 0.2, 0.3, 0.3]), 0.05)
    assert g["improved"] == 1 and g["worse"] == 1 and g["episodes"] == 4
    assert g["mean_gain_where_improved"] == pytest.approx(0.3)
    assert g["mean_agent"] == pytest.approx(0.2825) and g["mean_baseline"] == pytest.approx(0.25)
    assert episode_gains(np.zeros(2), np.zeros(2), 0.05)["mean_gain_where_improved"] == 0.0


def test_zero_action_controller_keeps_the_scene_still():
    """The do-nothing baseline of the zero-shot comparisons: on RealPushT-v0 zero actions leave the agent and the
    block where they started, so every episode scores its start coverage."""
    from fog_envs.evaluation import ZeroActionController, evaluate

    env = gym.make("RealPushT-v0")
    obs, info = env.reset(seed=3)
    start = info["state"].copy()
    controller = ZeroActionController(2)
    controller.reset(obs, info)
    for _ in range(5):
        obs, _, _, _, info = env.step(controller.act(obs, info))
    np.testing.assert_allclose(info["state"], start, atol=1e-6)
    env.close()
    result = evaluate(lambda: ZeroActionController(2), "RealPushT-v0", episodes=2, seed=3)
    assert result.max_coverages[0] == pytest.approx(pusht_reward.reward(start)[1])


def test_evaluation_plays_exactly_the_episode_seeds_given():
    """``episode_seeds``: the episodes are those seeds' resets in order (each starts where ``env.reset(seed=s)``
    does), recorded in the result; an empty list is refused."""
    from fog_envs.evaluation import ZeroActionController, evaluate

    env = gym.make("RealPushT-v0")
    start = {s: env.reset(seed=s)[1]["state"].copy() for s in (3, 11, 4)}
    env.close()
    seen: list[np.ndarray] = []

    class Recording(ZeroActionController):
        def reset(self, obs, info):
            seen.append(np.asarray(info["state"]).copy())
            super().reset(obs, info)

    result = evaluate(lambda: Recording(2), "RealPushT-v0", episode_seeds=[11, 3, 4])
    assert result.episodes == 3 and result.seed == 11 and result.episode_seeds == [11, 3, 4]
    for got, s in zip(seen, (11, 3, 4)):
        np.testing.assert_allclose(got, start[s])
    assert not np.allclose(start[3], start[11])
    assert evaluate(lambda: ZeroActionController(2), "RealPushT-v0", episodes=1, seed=3).episode_seeds is None
    with pytest.raises(ValueError, match="episode_seeds is empty"):
        evaluate(lambda: ZeroActionController(2), "RealPushT-v0", episode_seeds=[])
