"""Decision-time planning (``fog_agent.planner``): the objective by hand, a planner that beats an untrained policy
on the toy env's true dynamics, determinism, and errors that name the problem."""

from __future__ import annotations

import dataclasses

import gymnasium as gym
import numpy as np
import pytest
import torch

import fog_envs  # noqa: F401
from fog_agent.config import make_preset
from fog_agent.controller import FogController
from fog_agent.planner import PlannerConfig, PolicyCEM, colored_noise, colored_noise_amplitudes, sequence_returns
from fog_agent.sapo import DMOSAPO
from fog_envs.learned.toy import ToyConfig, toy_reward, toy_step


def test_sequence_returns_by_hand():
    """x' = x + a, r(x) = x, V(x) = 10·x, γ = 0.5, reward scale 2: from 0 with actions (1, 2) the states are 1 and 3,
    so the return is 2·1 + 0.5·2·3 + 0.25·10·3 = 12.5 (5 without the value)."""
    actions = torch.tensor([[[1.0], [2.0]], [[0.0], [0.0]]])
    step = lambda x, a: x + a  # noqa: E731
    reward = lambda x: x[:, 0]  # noqa: E731
    value = lambda x: 10.0 * x[:, 0]  # noqa: E731
    x0 = torch.zeros(1)
    out = sequence_returns(x0, actions, step, reward, value, gamma=0.5, reward_scale=2.0, value_weight=1.0)
    torch.testing.assert_close(out, torch.tensor([12.5, 0.0]))
    out = sequence_returns(x0, actions, step, reward, value, gamma=0.5, reward_scale=2.0, value_weight=0.0)
    torch.testing.assert_close(out, torch.tensor([5.0, 0.0]))


def _toy():
    envs = gym.make_vec("WMToy-v0", num_envs=1, vectorization_mode="vector_entry_point").unwrapped
    return envs.diff


def _play(choose, start: torch.Tensor, steps: int) -> float:
    """The true toy reward summed over ``steps`` steps of the true dynamics under ``choose(x) -> a``."""
    cfg, x, total = ToyConfig(), start.clone(), 0.0
    for _ in range(steps):
        x = toy_step(x[None], choose(x)[None].clamp(-1.0, 1.0), cfg, cfg.damping)[0]
        total += float(toy_reward(x))
    return total


def test_planning_in_the_local_model_beats_an_untrained_policy_on_the_true_dynamics():
    """The toy's local model is its exact dynamics: planning on the reward alone must bring the point mass nearer
    the origin than an untrained policy does."""
    env = _toy()
    agent = DMOSAPO(4, 2, make_preset("debug"), seed=0)
    planner = PolicyCEM(agent, env.local_step, env.local_reward, PlannerConfig(horizon=6, value_weight=0.0))
    start = torch.tensor([0.8, -0.7, 0.0, 0.0])
    policy_total = _play(lambda x: agent.act(x[None]).squeeze(0), start, 20)
    planned_total = _play(planner.plan, start, 20)
    assert planned_total > policy_total + 1.0, (planned_total, policy_total)
    assert planner.last_info["best_return"] >= planner.last_info["policy_return"] - 1e-6  # the policy is a candidate


def test_planner_is_reproducible_and_reset_forgets_the_last_plan():
    env = _toy()
    agent = DMOSAPO(4, 2, make_preset("debug"), seed=0)
    x = torch.tensor([0.5, 0.2, 0.1, 0.0])
    runs = []
    for _ in range(2):
        planner = PolicyCEM(agent, env.local_step, env.local_reward, PlannerConfig(samples=16, seed=3))
        runs.append(torch.stack([planner.plan(x), planner.plan(x)]))
    torch.testing.assert_close(runs[0], runs[1], rtol=0, atol=0)
    planner.reset()
    assert planner._previous is None
    other = PolicyCEM(agent, env.local_step, env.local_reward, PlannerConfig(samples=16, seed=4)).plan(x)
    assert not torch.equal(other, runs[0][0])
    assert runs[0].abs().max() <= 1.0


def test_controller_acts_with_the_plan_and_refuses_sampled_actions():
    env = _toy()
    agent = DMOSAPO(4, 2, make_preset("debug"), seed=0)
    latent = torch.tensor([0.5, 0.2, 0.1, 0.0])

    class Fixed:
        def reset(self, obs):
            return latent

        def update(self, action, obs):
            return latent

    planner = PolicyCEM(agent, env.local_step, env.local_reward, PlannerConfig(samples=16, seed=1))
    controller = FogController(agent, Fixed(), planner=planner)
    controller.reset(np.zeros(1), {})
    action = controller.act(np.zeros(1), {})
    reference = PolicyCEM(agent, env.local_step, env.local_reward, PlannerConfig(samples=16, seed=1)).plan(latent)
    np.testing.assert_allclose(action, reference.numpy(), rtol=1e-6)
    with pytest.raises(ValueError, match="planner chooses the actions"):
        FogController(agent, Fixed(), deterministic=False, planner=planner)


@pytest.mark.parametrize("field, value, match", [
    ("horizon", 0, "horizon, samples"), ("policy_samples", -1, "policy_samples"), ("elites", 100, "must not exceed"),
    ("min_std", 0.5, "min_std <= init_std"), ("value_weight", -1.0, "value_weight"),
    ("value_disagreement", -0.5, "value_disagreement"),
    ("noise_beta", -1.0, "noise_beta"), ("keep_elites", 9, "keep_elites"), ("act", "median", "act must be"),
    ("disengaged", "mode", "disengaged must be"),
])
def test_planner_config_names_bad_values(field, value, match):
    with pytest.raises(ValueError, match=match):
        PlannerConfig(**{field: value})


def test_eval_config_refuses_plan_with_sampled_actions_and_a_plan_model_without_plan():
    from fog_agent.evaluate import EvalConfig

    with pytest.raises(ValueError, match="exclude each other"):
        EvalConfig(plan=True, stochastic=True)
    with pytest.raises(ValueError, match="needs --plan"):
        EvalConfig(plan_state_model="pusht_state")


def test_planner_acts_as_the_policy_where_the_reward_is_below_its_engage_threshold():
    env = _toy()
    agent = DMOSAPO(4, 2, make_preset("debug"), seed=0)
    far, near = torch.tensor([2.0, 2.0, 0.0, 0.0]), torch.tensor([0.1, 0.0, 0.0, 0.0])  # toy reward 3e-4 and 0.99
    planner = PolicyCEM(agent, env.local_step, env.local_reward, PlannerConfig(samples=16, engage_reward=0.5))
    torch.testing.assert_close(planner.plan(far), agent.act(far[None]).squeeze(0))
    assert planner.last_info["planned"] == 0.0
    planner.plan(near)
    assert planner.last_info["planned"] == 1.0


def test_disengaged_sample_draws_the_policy_as_in_training_where_the_planner_does_not_engage():
    """Below ``engage_reward`` with ``disengaged="sample"`` the action is the agent's own seeded sample (the same
    draw ``agent.act(deterministic=False)`` makes from the same generator state), not its mean."""
    env = _toy()
    far = torch.tensor([2.0, 2.0, 0.0, 0.0])  # toy reward 3e-4
    agent = DMOSAPO(4, 2, make_preset("debug"), seed=0)
    twin = DMOSAPO(4, 2, make_preset("debug"), seed=0)
    planner = PolicyCEM(agent, env.local_step, env.local_reward,
                        PlannerConfig(samples=16, engage_reward=0.5, disengaged="sample"))
    actions = torch.stack([planner.plan(far) for _ in range(3)])
    torch.testing.assert_close(actions, torch.cat([twin.act(far[None], deterministic=False) for _ in range(3)]))
    assert planner.last_info["planned"] == 0.0
    assert not torch.allclose(actions[0], agent.act(far[None]).squeeze(0)) and not torch.allclose(actions[0], actions[1])


def test_planner_drops_the_critics_value_where_the_reward_reaches_its_finish_threshold():
    """Above ``finish_reward`` the plan is the one the reward alone (value_weight 0) picks, below it the one with
    the value: the same seeded draws, so the actions agree exactly."""
    env = _toy()
    agent = DMOSAPO(4, 2, make_preset("debug"), seed=0)
    with torch.no_grad():  # a critic whose value differs a lot between states, so dropping it changes the plan
        for p in agent.critic.parameters():
            p.mul_(50.0)
    far, near = torch.tensor([1.0, -0.8, 0.0, 0.0]), torch.tensor([0.1, 0.0, 0.0, 0.0])  # toy reward ~0.2 and 0.99
    plan = lambda x, **kw: PolicyCEM(agent, env.local_step, env.local_reward,  # noqa: E731
                                     PlannerConfig(samples=16, seed=2, **kw)).plan(x)
    for x, finishing, reference in [(near, 1.0, plan(near, value_weight=0.0)), (far, 0.0, plan(far))]:
        finisher = PolicyCEM(agent, env.local_step, env.local_reward,
                             PlannerConfig(samples=16, seed=2, finish_reward=0.9))
        torch.testing.assert_close(finisher.plan(x), reference, rtol=0, atol=0)
        assert finisher.last_info["finishing"] == finishing
    for x in (near, far):  # the value changes the plan in both states, so the two branches are told apart
        assert not torch.equal(plan(x), plan(x, value_weight=0.0))


def test_the_finish_phase_searches_with_its_own_budget_and_only_there():
    """``finish_samples``/``finish_iterations`` give the plan a planner with that budget and no value picks in a
    finish state, and change nothing below ``finish_reward``: the same seeded draws, so the actions agree exactly."""
    env = _toy()
    agent = DMOSAPO(4, 2, make_preset("debug"), seed=0)
    far, near = torch.tensor([1.0, -0.8, 0.0, 0.0]), torch.tensor([0.1, 0.0, 0.0, 0.0])
    plan = lambda x, **kw: PolicyCEM(agent, env.local_step, env.local_reward,  # noqa: E731
                                     PlannerConfig(**{"samples": 16, "seed": 2, **kw})).plan(x)
    finish = dict(finish_reward=0.9, finish_samples=48, finish_iterations=5)
    torch.testing.assert_close(plan(near, **finish), plan(near, samples=48, iterations=5, value_weight=0.0),
                               rtol=0, atol=0)
    torch.testing.assert_close(plan(far, **finish), plan(far), rtol=0, atol=0)
    assert not torch.equal(plan(near, **finish), plan(near, finish_reward=0.9))  # the budget did change the plan


def test_the_finish_phase_scores_with_finish_score_and_only_there():
    """With ``finish_score`` the finish phase plans as a value-free planner whose reward is that score, and below
    ``finish_reward`` nothing changes (the same seeded draws, so the actions agree exactly)."""
    env = _toy()
    agent = DMOSAPO(4, 2, make_preset("debug"), seed=0)
    far, near = torch.tensor([1.0, -0.8, 0.0, 0.0]), torch.tensor([0.1, 0.0, 0.0, 0.0])
    aim = lambda x: -(x[..., :2] - torch.tensor([0.3, -0.2])).square().sum(-1)  # noqa: E731  another target
    cfg = PlannerConfig(samples=16, seed=2, finish_reward=0.9)
    finisher = lambda x: PolicyCEM(agent, env.local_step, env.local_reward, cfg, finish_score=aim).plan(x)  # noqa: E731
    reference = PolicyCEM(agent, env.local_step, aim, PlannerConfig(samples=16, seed=2, value_weight=0.0)).plan(near)
    torch.testing.assert_close(finisher(near), reference, rtol=0, atol=0)
    plain = PolicyCEM(agent, env.local_step, env.local_reward, cfg)
    torch.testing.assert_close(finisher(far), plain.plan(far), rtol=0, atol=0)
    assert not torch.equal(finisher(near), PolicyCEM(agent, env.local_step, env.local_reward, cfg).plan(near))
    with pytest.raises(ValueError, match="finish_score needs PlannerConfig.finish_reward"):
        PolicyCEM(agent, env.local_step, env.local_reward, PlannerConfig(), finish_score=aim)


@pytest.mark.parametrize("kwargs, message", [
    (dict(finish_reward=0.9, finish_samples=0), "finish_samples must be >= 1"),
    (dict(finish_reward=0.9, finish_iterations=0), "finish_iterations must be >= 1"),
    (dict(finish_reward=0.9, finish_samples=4), "must not exceed finish_samples"),
    (dict(finish_samples=64), "need finish_reward"),
])
def test_finish_budget_errors_name_the_field(kwargs, message):
    with pytest.raises(ValueError, match=message):
        PlannerConfig(**kwargs)


def test_white_noise_is_torchs_own_draws():
    """β = 0 keeps plain CEM's candidates exactly: the same generator state gives ``torch.randn``'s numbers."""
    draw = lambda f: f(torch.Generator().manual_seed(3))  # noqa: E731
    torch.testing.assert_close(draw(lambda g: colored_noise((5, 8, 2), 0.0, g)),
                               draw(lambda g: torch.randn((5, 8, 2), generator=g)), rtol=0, atol=0)


@pytest.mark.parametrize("horizon", [8, 9])
@pytest.mark.parametrize("beta", [1.0, 2.0])
def test_colored_noise_has_unit_variance_and_the_autocorrelation_of_its_spectrum(horizon, beta):
    """Each step's marginal variance is 1 and the lag-ℓ correlation is the spectrum's cosine transform,
    ``(a₀² + 4 Σ_k a_k² cos(2πkℓ/H) + a_N² (-1)^ℓ) / H²`` for the amplitudes a (Nyquist term for even H only),
    checked on 40,000 draws; it exceeds white noise's 0 at lag 1 and grows with β."""
    noise = colored_noise((40_000, horizon, 1), beta, torch.Generator().manual_seed(0)).double()[..., 0]
    k = torch.arange(horizon // 2 + 1, dtype=torch.float64)
    weights = torch.full_like(k, 4.0)
    weights[0] = 1.0
    if horizon % 2 == 0:
        weights[-1] = 1.0

    def autocorrelation(b: float, lag: int) -> float:
        amp = colored_noise_amplitudes(horizon, b)
        return float((weights * amp ** 2 * torch.cos(2 * torch.pi * k * lag / horizon)).sum() / horizon ** 2)

    for lag in range(horizon):
        expected = autocorrelation(beta, lag)
        measured = float((noise * noise.roll(-lag, dims=1)).mean())
        assert abs(measured - expected) < 0.03, (lag, measured, expected)
    assert abs(float(noise.var()) - 1.0) < 0.02
    assert 0.0 < autocorrelation(1.0, 1) < autocorrelation(2.0, 1) < 1.0

def test_kept_elites_make_the_best_return_monotone_and_act_best_executes_it():
    """With ``keep_elites`` every round's best return is at least the last round's; ``act="best"`` returns the first
    action of the best sequence scored, whose return the planner reports."""
    env = _toy()
    agent = DMOSAPO(4, 2, make_preset("debug"), seed=0)
    x = torch.tensor([1.0, -0.8, 0.0, 0.0])
    cfg = PlannerConfig(samples=16, iterations=4, keep_elites=4, act="best", noise_beta=2.0, seed=0)
    planner = PolicyCEM(agent, env.local_step, env.local_reward, cfg)

    def round_bests(keep: int) -> list[float]:  # each round's best: the same seeded planner stopped after 1–4 rounds
        bests = []
        for rounds in range(1, 5):
            p = PolicyCEM(agent, env.local_step, env.local_reward, PlannerConfig(
                samples=16, iterations=rounds, keep_elites=keep, act="best", noise_beta=2.0, seed=0))
            p.plan(x)
            bests.append(p.last_info["last_best_return"])
        return bests

    kept, plain = round_bests(4), round_bests(0)
    assert all(b >= a - 1e-9 for a, b in zip(kept, kept[1:])), kept
    assert any(b < a for a, b in zip(plain, plain[1:])), plain  # without memory this seed's best falls once
    action = planner.plan(x)
    plan = planner._previous
    assert plan is not None and torch.equal(action, plan[0])
    with torch.no_grad():
        again = sequence_returns(x.float(), plan[None], env.local_step, env.local_reward,
                                 lambda s: agent.critic(agent.obs_norm(s)).mean(0), agent.cfg.gamma,
                                 agent.cfg.reward_scale, cfg.value_weight)
    assert abs(float(again[0]) - planner.last_info["best_return"]) < 1e-4
    assert planner.last_info["best_return"] >= planner.last_info["policy_return"]


def test_companions_average_the_critics_and_add_their_policies_sequences():
    """With companion agents the value is the mean of every agent's mean critic value (each on its own observation
    normalisation), and every agent's deterministic sequence is a candidate."""
    env = _toy()
    agents = [DMOSAPO(4, 2, make_preset("debug"), seed=s) for s in range(3)]
    with torch.no_grad():
        agents[1].obs_norm.mean.fill_(0.3)
    planner = PolicyCEM(agents[0], env.local_step, env.local_reward, PlannerConfig(samples=16, policy_samples=2),
                        companions=agents[1:])
    x = torch.tensor([[0.5, 0.2, 0.1, 0.0], [-0.3, 0.4, 0.0, 0.2]])
    with torch.no_grad():
        expected = sum(a.critic(a.obs_norm(x)).mean(0) for a in agents) / 3
        torch.testing.assert_close(planner._value(x), expected)
        seqs = planner._policy_sequences(x[0])
    assert seqs.shape == (9, 8, 2)
    for i, a in enumerate(agents):  # row 3·i: agent i's own deterministic first action
        torch.testing.assert_close(seqs[3 * i, 0], a.act(x[:1]).squeeze(0))


def test_value_disagreement_takes_kappa_times_the_critics_spread_off_their_mean():
    """κ = 0 is the plain mean; κ > 0 subtracts κ·|Q₁ − Q₂| per agent (by hand)."""
    env = _toy()
    agents = [DMOSAPO(4, 2, make_preset("debug"), seed=s) for s in range(2)]
    x = torch.tensor([[0.5, 0.2, 0.1, 0.0], [-0.3, 0.4, 0.0, 0.2], [2.0, -1.0, 0.5, 0.5]])
    with torch.no_grad():
        q = [a.critic(a.obs_norm(x)) for a in agents]
        assert q[0].shape[0] == 2  # the clipped double critics
        plain = PolicyCEM(agents[0], env.local_step, env.local_reward, PlannerConfig(samples=16), companions=agents[1:])
        wary = PolicyCEM(agents[0], env.local_step, env.local_reward,
                         PlannerConfig(samples=16, value_disagreement=0.75), companions=agents[1:])
        torch.testing.assert_close(plain._value(x), (q[0].mean(0) + q[1].mean(0)) / 2)
        expected = sum(qi.mean(0) - 0.75 * (qi[0] - qi[1]).abs() for qi in q) / 2
        torch.testing.assert_close(wary._value(x), expected)
        assert bool((wary._value(x) < plain._value(x)).all())


def test_companions_must_share_the_objective_and_the_local_state():
    env = _toy()
    agent = DMOSAPO(4, 2, make_preset("debug"), seed=0)
    other_gamma = DMOSAPO(4, 2, dataclasses.replace(make_preset("debug"), gamma=0.9), seed=1)
    with pytest.raises(ValueError, match="companion agent 0 differs from the agent in gamma"):
        PolicyCEM(agent, env.local_step, env.local_reward, companions=[other_gamma])
    with pytest.raises(ValueError, match="observation size"):
        PolicyCEM(agent, env.local_step, env.local_reward, companions=[DMOSAPO(6, 2, make_preset("debug"))])


def test_critic_map_bench_rates_each_pusher_position_with_the_block_at_rest():
    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    from benchmarks.bench_critic_map import critic_map

    agent = DMOSAPO(12, 2, make_preset("debug"), seed=0)
    block, grid = np.array([0.4, 0.7, 0.5, -0.8]), np.array([0.1, 0.5, 0.9])
    mean, spread = critic_map(agent, block, grid)
    assert mean.shape == spread.shape == (3, 3) and (spread >= 0).all()
    s = torch.tensor([[0.9, 0.5, *block]], dtype=torch.float32)  # row 1 (y = 0.5), column 2 (x = 0.9)
    with torch.no_grad():
        q = agent.critic(agent.obs_norm(torch.cat([s, s], -1))).reshape(2)
    assert mean[1, 2] == pytest.approx(float(q.mean()), rel=1e-5)
    assert spread[1, 2] == pytest.approx(float((q[0] - q[1]).abs()), rel=1e-4, abs=1e-5)
