"""The learned-env machinery on the analytic toy world model: Gym API, autoreset, and exact gradients."""

from __future__ import annotations

import runpy
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest
import torch
from gymnasium.utils.env_checker import check_env

import fog_envs  # noqa: F401
from fog_envs.learned.diff import DifferentiableEnv, straight_through
from fog_envs.learned.toy import ToyBackend, ToyConfig, analytic_jacobians, toy_reward, toy_step

ROOT = Path(__file__).resolve().parent.parent


def test_make_and_check_env():
    for obs_type in ("latent", "pixels"):
        env = gym.make("WMToy-v0", obs_type=obs_type, render_mode="rgb_array")
        check_env(env.unwrapped)
        assert env.spec.max_episode_steps == 100
        env.reset(seed=0)
        assert env.render().shape == (64, 64, 3)


def test_seeded_reset_is_reproducible():
    env = gym.make("WMToy-v0")
    a = [env.reset(seed=3)[0], env.step(np.array([0.5, -0.5], np.float32))[0], env.reset()[0]]
    b = [env.reset(seed=3)[0], env.step(np.array([0.5, -0.5], np.float32))[0], env.reset()[0]]
    for x, y in zip(a, b):
        np.testing.assert_array_equal(x, y)
    assert not np.array_equal(env.reset(seed=4)[0], a[0])


def test_vector_env_same_step_autoreset_keeps_final_obs():
    envs = gym.make_vec("WMToy-v0", num_envs=3, vectorization_mode="vector_entry_point", max_episode_steps=5)
    assert envs.metadata["autoreset_mode"] == gym.vector.AutoresetMode.SAME_STEP
    obs, _ = envs.reset(seed=0)
    act = np.full((3, 2), 0.3, np.float32)
    for t in range(5):
        prev = obs
        obs, rew, term, trunc, infos = envs.step(act)
    assert trunc.all() and not term.any()
    # the final observation is the step from `prev`, the returned one is a fresh start
    expected_final = toy_step(torch.from_numpy(prev), torch.from_numpy(act), ToyConfig(), ToyConfig().damping)
    final = np.stack(infos["final_obs"])
    np.testing.assert_allclose(final, expected_final.numpy(), rtol=1e-5, atol=1e-6)
    assert infos["_final_obs"].all()
    np.testing.assert_array_equal(obs[:, 2:], 0.0)  # fresh episodes start at rest
    assert infos["final_info"][0]["distance"] == pytest.approx(np.linalg.norm(final[0, :2]), rel=1e-5)


@pytest.mark.parametrize("bad, words", [
    (np.zeros((3, 3), np.float32), "shape"),
    (np.full((3, 2), np.nan, np.float32), "NaN"),
    (np.full((3, 2), 2.0, np.float32), "outside the action space"),
])
def test_vector_env_bad_actions(bad, words):
    envs = gym.make_vec("WMToy-v0", num_envs=3, vectorization_mode="vector_entry_point")
    envs.reset(seed=0)
    with pytest.raises(ValueError, match=words):
        envs.step(bad)


def test_errors_name_the_problem():
    with pytest.raises(ValueError, match="obs_type"):
        gym.make("WMToy-v0", obs_type="rgb")
    with pytest.raises(ValueError, match="forward_model"):
        gym.make("WMToy-v0", forward_model="physics")
    env = gym.make("WMToy-v0")
    with pytest.raises(RuntimeError, match="reset"):
        env.unwrapped.step(np.zeros(2, np.float32))
    diff = DifferentiableEnv(ToyBackend(2), 10)
    with pytest.raises(RuntimeError, match="reset"):
        diff.step(torch.zeros(2, 2))


def _rollout_return(actions: torch.Tensor, cfg: ToyConfig, seed: int = 0) -> torch.Tensor:
    diff = DifferentiableEnv(ToyBackend(actions.shape[1], cfg, dtype=torch.float64), None)
    diff.reset(seed=seed)
    total = torch.zeros((), dtype=torch.float64)
    for a in actions:
        _, reward, _, _, _ = diff.step(a)
        total = total + reward.sum()
    return total


def test_differentiable_step_gradcheck_when_surrogate_is_exact():
    actions = (torch.rand(6, 3, 2, dtype=torch.float64, generator=torch.Generator().manual_seed(0)) * 2 - 1)
    actions.requires_grad_(True)
    assert torch.autograd.gradcheck(lambda a: _rollout_return(a, ToyConfig()), (actions,), eps=1e-6, atol=1e-6)


def test_gradient_is_the_surrogates_at_the_global_states():
    cfg = ToyConfig(surrogate_error=0.3)
    diff = DifferentiableEnv(ToyBackend(1, cfg, dtype=torch.float64), None)
    x0 = diff.reset(seed=1)[0].numpy()
    a0 = torch.tensor([[0.2, -0.4]], dtype=torch.float64, requires_grad=True)
    a1 = torch.tensor([[-0.1, 0.3]], dtype=torch.float64, requires_grad=True)
    x1, _, _, _, _ = diff.step(a0)
    x2, r1, _, _, _ = diff.step(a1)
    r1.sum().backward()
    # values: the true dynamics
    x1_true = toy_step(torch.from_numpy(x0)[None], a0.detach(), cfg, cfg.damping)
    x2_true = toy_step(x1_true, a1.detach(), cfg, cfg.damping)
    np.testing.assert_allclose(x2.detach().numpy(), x2_true.numpy(), atol=1e-12)
    assert r1.item() == pytest.approx(toy_reward(x2_true).item(), abs=1e-12)
    # gradients: the surrogate's Jacobians evaluated at the true states x1, x2
    jx1, ja1 = analytic_jacobians(x1_true[0].numpy(), cfg, cfg.damping + cfg.surrogate_error)
    _, ja0 = analytic_jacobians(x0, cfg, cfg.damping + cfg.surrogate_error)
    p2 = x2_true[0, :2].numpy()
    dr_dx2 = np.concatenate([-2 * p2 * np.exp(-(p2 ** 2).sum()), np.zeros(2)])
    np.testing.assert_allclose(a1.grad[0].numpy(), dr_dx2 @ ja1, atol=1e-12)
    np.testing.assert_allclose(a0.grad[0].numpy(), dr_dx2 @ jx1 @ ja0, atol=1e-12)


def test_no_gradient_crosses_a_graph_cut():
    diff = DifferentiableEnv(ToyBackend(2, dtype=torch.float64), None)
    diff.reset(seed=0)
    a0 = torch.full((2, 2), 0.5, dtype=torch.float64, requires_grad=True)
    diff.step(a0)
    diff.cut_graph()
    a1 = torch.full((2, 2), 0.5, dtype=torch.float64, requires_grad=True)
    _, reward, _, _, _ = diff.step(a1)
    reward.sum().backward()
    assert a0.grad is None
    assert a1.grad is not None and a1.grad.abs().sum() > 0


def test_done_envs_expose_pre_reset_state_with_gradient():
    diff = DifferentiableEnv(ToyBackend(2, dtype=torch.float64), max_episode_steps=2)
    diff.reset(seed=0)
    a = torch.full((2, 2), 0.5, dtype=torch.float64, requires_grad=True)
    diff.step(a)
    obs, _, _, truncated, extras = diff.step(a)
    assert truncated.all() and extras["episode_end"].all()
    assert extras["obs_before_reset"].requires_grad
    g_fresh = torch.autograd.grad(obs.sum(), a, retain_graph=True, allow_unused=True)[0]
    assert g_fresh is None or g_fresh.abs().sum() == 0  # reset rows carry no gradient
    torch.testing.assert_close(obs[:, 2:], torch.zeros(2, 2, dtype=torch.float64))
    extras["obs_before_reset"].sum().backward()
    assert a.grad.abs().sum() > 0


def test_straight_through_value_and_gradient():
    s = torch.tensor([1.0, 2.0], requires_grad=True)
    out = straight_through(s * 3, torch.tensor([10.0, 20.0]))
    torch.testing.assert_close(out, torch.tensor([10.0, 20.0]))
    out.sum().backward()
    torch.testing.assert_close(s.grad, torch.tensor([3.0, 3.0]))


def test_third_party_bptt_example_learns():
    example = runpy.run_path(str(ROOT / "examples" / "bptt_toy.py"))
    history = example["train"](iterations=40, num_envs=16)
    assert history[-1] > history[0] + 0.1
    assert np.isfinite(history).all()


def test_long_rollout_stays_finite():
    envs = gym.make_vec("WMToy-v0", num_envs=4, vectorization_mode="vector_entry_point", obs_type="pixels")
    obs, _ = envs.reset(seed=0)
    rng = np.random.default_rng(0)
    for _ in range(2000):
        obs, rew, *_ = envs.step(rng.uniform(-1, 1, (4, 2)).astype(np.float32))
        assert np.isfinite(rew).all()
    assert obs.dtype == np.uint8


def test_readme_example_runs():
    runpy.run_path(str(ROOT / "examples" / "differentiable_step.py"))


def test_hook_methods_of_the_differentiable_env():
    envs = gym.make_vec("WMToy-v0", num_envs=2, vectorization_mode="vector_entry_point")
    diff = envs.unwrapped.diff
    diff.reset(seed=0)
    x, a = diff.obs.double(), torch.full((2, 2), 0.1, dtype=torch.float64)
    cfg = envs.unwrapped.backend.config
    jac = diff.jacobians(x, a)
    jx, ja = analytic_jacobians(x[0].numpy(), cfg, cfg.damping)
    np.testing.assert_allclose(jac["action"][0].numpy(), ja, atol=1e-12)
    gx, ga = diff.vjp(x, a, torch.ones_like(x))
    np.testing.assert_allclose(ga[0].numpy(), np.ones(4) @ ja, atol=1e-12)
    _, tangent = diff.jvp(x, a, torch.zeros_like(x), torch.ones_like(a))
    np.testing.assert_allclose(tangent[0].numpy(), ja @ np.ones(2), atol=1e-12)
