"""Every registered id makes, resets and steps, as a single env and as a vector env; shipped bundles load."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
import torch

import fog_envs  # noqa: F401
from fog_envs.registration import LEARNED_ENVS, REFERENCE_SYSTEMS
from fog_envs.wm.bundle import SHIPPED_DIR

ALL_IDS = [*REFERENCE_SYSTEMS, *LEARNED_ENVS]


def _needs_bundle(env_id: str) -> None:
    task = LEARNED_ENVS.get(env_id, (None,))[0]
    if task in ("pusht", "cube") and not (SHIPPED_DIR / task / "weights.safetensors").exists():
        pytest.skip(f"no shipped {task} bundle in this checkout")


@pytest.mark.parametrize("env_id", ALL_IDS)
def test_make_reset_step(env_id):
    _needs_bundle(env_id)
    env = gym.make(env_id)
    obs, info = env.reset(seed=0)
    assert obs in env.observation_space
    obs, reward, terminated, truncated, info = env.step(env.action_space.sample())
    assert obs in env.observation_space and np.isfinite(reward)
    assert env.spec.max_episode_steps in (100, 200, 300)
    env.close()


@pytest.mark.parametrize("env_id", list(LEARNED_ENVS))
def test_make_vec_native(env_id):
    _needs_bundle(env_id)
    envs = gym.make_vec(env_id, num_envs=3, vectorization_mode="vector_entry_point")
    obs, _ = envs.reset(seed=0)
    assert obs.shape[0] == 3
    obs, rewards, term, trunc, infos = envs.step(envs.action_space.sample())
    assert rewards.shape == (3,) and np.isfinite(rewards).all() and "is_success" in infos


@pytest.mark.parametrize("env_id", list(LEARNED_ENVS))
def test_shipped_envs_pass_check_env(env_id):
    _needs_bundle(env_id)
    from gymnasium.utils.env_checker import check_env

    check_env(gym.make(env_id).unwrapped)


def test_shipped_pusht_matches_the_reference_action_space():
    _needs_bundle("WMPushT-v0")
    assert gym.make("WMPushT-v0").action_space == gym.make("RealPushT-v0").action_space
    assert gym.make("WMPushT-v0").observation_space == gym.make("RealPushT-v0").observation_space


def test_long_rollout_of_the_shipped_pusht_model_stays_finite():
    _needs_bundle("WMPushT-v0")
    envs = gym.make_vec("WMPushT-v0", num_envs=16, vectorization_mode="vector_entry_point", max_episode_steps=1000)
    envs.reset(seed=0)
    rng = np.random.default_rng(0)
    for _ in range(625):  # 10,000 imagined steps, pixels decoded at every step
        obs, rewards, *_ = envs.step(rng.uniform(-1, 1, (16, 2)).astype(np.float32))
        assert np.isfinite(rewards).all() and np.abs(rewards).max() < 10
    latents = envs.unwrapped.backend.ctx
    assert latents.isfinite().all() and latents.abs().max() < 50
    assert obs.dtype == np.uint8


def test_bf16_sampling_is_seeded_and_close_to_float32():
    """``bf16=True`` (the default where the CPU has fast bf16) reproduces itself exactly under a seed and
    stays close to the float32 model; ``bf16=False`` is plain float32."""
    _needs_bundle("WMPushT-v0")
    acts = np.random.default_rng(0).uniform(-1, 1, (4, 4, 2)).astype(np.float32)

    def run(bf16):
        envs = gym.make_vec("WMPushT-v0", num_envs=4, vectorization_mode="vector_entry_point", obs_type="latent",
                            bf16=bf16)
        envs.reset(seed=3)
        out = [envs.step(a) for a in acts]
        assert envs.unwrapped.backend.bf16 is bf16
        return np.stack([o[0] for o in out]), np.stack([o[1] for o in out]), envs

    obs16, rew16, envs16 = run(True)
    obs16b, rew16b, _ = run(True)
    obs32, rew32, _ = run(False)
    np.testing.assert_array_equal(obs16, obs16b)
    np.testing.assert_array_equal(rew16, rew16b)
    assert not np.array_equal(obs16, obs32)
    np.testing.assert_allclose(rew16, rew32, atol=0.05)
    frames = envs16.unwrapped.backend.render_obs("pixels")
    assert frames.dtype == np.uint8 and frames.shape == (4, 64, 64, 3)


def test_bad_bf16_setting_names_the_problem():
    _needs_bundle("WMPushT-v0")
    with pytest.raises(ValueError, match="bf16 must be"):
        gym.make_vec("WMPushT-v0", num_envs=1, vectorization_mode="vector_entry_point", bf16="yes")


def test_bf16_auto_only_for_batches_where_it_pays():
    _needs_bundle("WMPushT-v0")
    import torch

    from fog_envs.learned.factory import BF16_MIN_ENVS
    from fog_envs.runtime import use_bf16

    single = gym.make("WMPushT-v0").unwrapped
    assert single.vec.backend.bf16 is False
    envs = gym.make_vec("WMPushT-v0", num_envs=BF16_MIN_ENVS, vectorization_mode="vector_entry_point")
    assert envs.unwrapped.backend.bf16 is use_bf16(torch.device("cpu"))
    forced = gym.make("WMPushT-v0", bf16=True).unwrapped
    assert forced.vec.backend.bf16 is True


def test_start_sigma_reaches_the_sampler_and_is_refused_where_it_means_nothing():
    """``start_sigma`` overrides the bundle's sampler start for that env only (same seed, other samples; the
    shipped bundle keeps its own); the toy env, which has no sampler, refuses it by name."""
    _needs_bundle("WMPushT-v0")

    def run(**kw):
        envs = gym.make_vec("WMPushT-v0", num_envs=2, vectorization_mode="vector_entry_point", obs_type="latent",
                            bf16=False, **kw)
        envs.reset(seed=5)
        obs, *_ = envs.step(np.zeros((2, 2), np.float32))
        return obs, envs.unwrapped.backend.model.config.edm.start_sigma

    own, own_start = run()
    warm, warm_start = run(start_sigma=0.5)
    assert (own_start, warm_start) == (0.0, 0.5)
    assert not np.array_equal(own, warm)
    np.testing.assert_array_equal(run()[0], own)
    with pytest.raises(ValueError, match="start_sigma"):
        gym.make("WMToy-v0", start_sigma=0.5)


@pytest.mark.parametrize("env_id, task, action_dim", [("WMPushT-v0", "pusht", 2), ("WMPushCube-v0", "cube", 3)])
def test_shipped_state_model_drives_the_learned_env_in_state_space(env_id, task, action_dim):
    """``local_model="state"`` with the task's shipped state model: 2 × probe-target observations ``[ŝ_t,
    ŝ_{t−1}]``, finite steps, and the task's reward formula as the local reward (both tasks have one); with
    ``forward_model="state"`` as well, the state model alone steps the env and the formula rewards it."""
    _needs_bundle(env_id)
    if not (SHIPPED_DIR / f"{task}_state" / "weights.safetensors").exists():
        pytest.skip(f"no shipped {task}_state model in this checkout")
    envs = gym.make_vec(env_id, num_envs=2, vectorization_mode="vector_entry_point", obs_type="latent",
                        local_model="state")
    obs, _ = envs.reset(seed=0)
    p = obs.shape[1] // 2
    assert obs.shape == (2, 2 * p) and p == envs.unwrapped.backend.model.task.probe_dim
    obs2, reward, *_ = envs.step(np.zeros((2, action_dim), np.float32))
    assert np.all(np.isfinite(obs2)) and np.allclose(obs2[:, p:], obs[:, :p])
    assert envs.unwrapped.backend.state_local.reward_source == "task"
    envs.close()
    dream = gym.make_vec(env_id, num_envs=2, vectorization_mode="vector_entry_point", obs_type="latent",
                         local_model="state", forward_model="state")
    obs, _ = dream.reset(seed=0)
    obs2, reward, *_ = dream.step(np.zeros((2, action_dim), np.float32))
    spec = dream.unwrapped.backend.model.task
    np.testing.assert_allclose(reward, spec.state_reward(torch.from_numpy(obs2[:, :p])).numpy(), rtol=1e-5, atol=1e-6)
    dream.close()
