"""DMO-SAPO: its pure pieces against hand computations, its gradient against the analytic toy model,
and the training CLI's checkpoint/resume contract."""

from __future__ import annotations

import copy
import math
from dataclasses import replace

import gymnasium as gym
import numpy as np
import pytest
import torch

import fog_envs  # noqa: F401
from fog_agent.config import make_preset
from fog_agent.networks import SquashedGaussianActor
from fog_agent.normalizer import RunningNorm
from fog_agent.returns import (clip_row_norms, normalized_entropy, reward_to_go, td_lambda_reference,
                               td_lambda_targets)
from fog_agent.sapo import DMOSAPO
from fog_agent.train import AgentTrainConfig, train_agent
from fog_envs.learned.toy import ToyConfig, toy_reward, toy_step


def test_td_lambda_by_hand():
    # one env, H=3, gamma=0.5, lam=0.5, no done except the forced last one
    r = torch.tensor([[1.0], [2.0], [3.0]])
    v = torch.tensor([[10.0], [20.0], [30.0]])  # V(x_1), V(x_2), V(x_3)
    d = torch.zeros(3, 1, dtype=torch.bool)
    g2 = 3 + 0.5 * 30  # last step bootstraps fully: 18
    g1 = 2 + 0.5 * (0.5 * 20 + 0.5 * g2)  # 11.5
    g0 = 1 + 0.5 * (0.5 * 10 + 0.5 * g1)  # 6.375
    out = td_lambda_targets(r, v, d, gamma=0.5, lam=0.5)
    torch.testing.assert_close(out[:, 0], torch.tensor([g0, g1, g2]))
    # an episode end after step 0 bootstraps there
    d[0] = True
    out = td_lambda_targets(r, v, d, gamma=0.5, lam=0.5)
    assert out[0, 0].item() == pytest.approx(1 + 0.5 * 10)


def test_td_lambda_matches_textbook_recursion():
    g = torch.Generator().manual_seed(0)
    r, v = torch.randn(9, 6, generator=g, dtype=torch.float64), torch.randn(9, 6, generator=g, dtype=torch.float64)
    d = torch.rand(9, 6, generator=g) < 0.25
    torch.testing.assert_close(td_lambda_targets(r, v, d, 0.99, 0.95), td_lambda_reference(r, v, d, 0.99, 0.95))


def test_normalized_entropy():
    assert normalized_entropy(torch.tensor(-1.0), -1.0).item() == 0.0
    assert normalized_entropy(torch.tensor(1.0), -1.0).item() == 1.0
    assert normalized_entropy(torch.tensor(-1.5), -1.5).item() == 0.0
    assert normalized_entropy(torch.tensor(0.0), -1.5).item() == 0.5


def test_squashed_gaussian_log_prob_matches_change_of_variables():
    torch.manual_seed(0)
    actor = SquashedGaussianActor(3, 2, (8,))
    obs = torch.randn(5, 3)
    g = torch.Generator().manual_seed(1)
    action, neg_logp = actor.sample(obs, g)
    mu, log_std = actor.distribution(obs)
    u = torch.atanh(action.clamp(-1 + 1e-6, 1 - 1e-6))
    base = torch.distributions.Normal(mu, log_std.exp()).log_prob(u).sum(-1)
    expected = base - torch.log(1 - action.pow(2)).sum(-1)
    torch.testing.assert_close(-neg_logp, expected, atol=1e-3, rtol=1e-4)
    assert (action.abs() < 1).all()


def test_gaussian_log_prob_is_the_squashed_log_prob_without_the_tanh_term():
    torch.manual_seed(0)
    actor = SquashedGaussianActor(3, 2, (8,))
    obs = torch.randn(5, 3)
    action, neg_logp, u = actor.rsample(obs, torch.Generator().manual_seed(1))
    torch.testing.assert_close(action, torch.tanh(u))
    mu, log_std = actor.distribution(obs)
    base = torch.distributions.Normal(mu, log_std.exp()).log_prob(u).sum(-1)
    torch.testing.assert_close(actor.gaussian_log_prob(obs, u), base)
    torch.testing.assert_close(-neg_logp, base - torch.log(1 - action.pow(2)).sum(-1), atol=1e-3, rtol=1e-4)
    again, neg_again = actor.sample(obs, torch.Generator().manual_seed(1))
    torch.testing.assert_close(again, action)
    torch.testing.assert_close(neg_again, neg_logp)


def test_reward_to_go_by_hand():
    r = torch.tensor([[1.0, 1.0], [2.0, 2.0], [3.0, 3.0]])
    d = torch.tensor([[False, True], [False, False], [False, False]])
    out = reward_to_go(r, d, gamma=0.5)
    # env 0: one segment; env 1: an episode ends after step 0
    torch.testing.assert_close(out[:, 0], torch.tensor([1 + 0.5 * (2 + 0.5 * 3), 2 + 0.5 * 3, 3.0]))
    torch.testing.assert_close(out[:, 1], torch.tensor([1.0, 2 + 0.5 * 3, 3.0]))


def test_running_norm_matches_numpy():
    norm = RunningNorm(3)
    data = torch.randn(50, 3, dtype=torch.float64) * 3 + 1
    for chunk in data.split(7):
        norm.update(chunk)
    np.testing.assert_allclose(norm.mean.numpy(), data.mean(0).numpy(), rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(norm.var.numpy(), data.var(0, unbiased=False).numpy(), rtol=1e-5, atol=1e-5)


def _toy_env(num_envs: int, episode_steps: int = 50):
    envs = gym.make_vec("WMToy-v0", num_envs=num_envs, vectorization_mode="vector_entry_point",
                        max_episode_steps=episode_steps)
    return envs.unwrapped.diff


def test_clip_row_norms_by_hand():
    g = torch.tensor([[3.0, 4.0], [0.3, 0.4], [0.0, 0.0]])
    out = clip_row_norms(g, 1.0)
    torch.testing.assert_close(out, torch.tensor([[0.6, 0.8], [0.3, 0.4], [0.0, 0.0]]))


@pytest.mark.parametrize("field,value,match", [("horizon", 0, "horizon must be >= 1"),
                                               ("state_grad_clip", -1.0, "state_grad_clip must be >= 0"),
                                               ("num_envs", 0, "num_envs must be >= 1"),
                                               ("zeroth_order_weight", 1.5, r"zeroth_order_weight must lie in \[0, 1\]"),
                                               ("zeroth_order_weight", -0.1, "zeroth_order_weight must lie"),
                                               ("target_entropy_scale", 0.0, "target_entropy_scale must be > 0"),
                                               ("gamma", 0.0, "need 0 < gamma <= 1"), ("gamma", 1.01, "gamma=1.01"),
                                               ("lam", -0.1, "0 <= lam <= 1")])
def test_sapo_config_names_bad_values(field, value, match):
    with pytest.raises(ValueError, match=match):
        replace(make_preset("debug"), **{field: value})


@pytest.mark.parametrize("reward_scale,bootstrap,state_grad_clip", [(1.0, True, 0.0), (3.0, True, 0.0),
                                                                    (1.0, False, 0.0), (1.0, True, 0.05)])
def test_actor_gradient_equals_analytic_model_gradient(reward_scale, bootstrap, state_grad_clip):
    """Through the exact-surrogate toy env, the actor gradient equals autograd through the true dynamics
    (the reward scaled by ``reward_scale``, the entropy bonus not; without ``bootstrap`` no value term; with
    ``state_grad_clip`` each env's gradient w.r.t. every reached state clipped to that norm)."""
    cfg = replace(make_preset("debug"), num_envs=3, horizon=5, actor_hidden=(8,), critic_hidden=(8,),
                  reward_scale=reward_scale, bootstrap=bootstrap, state_grad_clip=state_grad_clip)
    env = _toy_env(cfg.num_envs)
    env.reset(seed=0)
    agent = DMOSAPO(env.state_dim, env.action_dim, cfg, seed=1)
    agent.obs_norm.update(torch.randn(20, env.state_dim))
    start = env.obs.clone()
    gen_state = agent.generator.get_state()
    alpha = torch.tensor(0.3)
    loss, _ = agent.rollout(env, agent.obs_norm, alpha)
    grads = torch.autograd.grad(loss, list(agent.actor.parameters()))

    # the same objective, written directly on the analytic model
    agent.generator.set_state(gen_state)
    x, toy = start.float(), ToyConfig()
    seg, disc, objective = torch.zeros(3), torch.ones(3), torch.zeros(())
    for t in range(cfg.horizon):
        a, neg_logp = agent.actor.sample(agent.obs_norm(x), agent.generator)
        x = toy_step(x, a, toy, toy.damping)
        if state_grad_clip:
            x.register_hook(lambda g: g * (state_grad_clip / g.norm(dim=-1, keepdim=True).clamp_min(state_grad_clip)))
        seg = seg + disc * (reward_scale * toy_reward(x) + alpha * normalized_entropy(neg_logp, agent.target_entropy))
        disc = disc * cfg.gamma
    objective = (seg + (disc * agent.critic(agent.obs_norm(x)).mean(0) if bootstrap else 0.0)).sum()
    ref = torch.autograd.grad(-objective / (3 * cfg.horizon), list(agent.actor.parameters()))
    for g, h in zip(grads, ref):
        torch.testing.assert_close(g, h, rtol=1e-4, atol=1e-6)
    if state_grad_clip:  # the clip is active here: the unclipped gradient differs
        agent.generator.set_state(gen_state)
        env.reset(seed=0)
        unclipped = DMOSAPO.rollout(_with(agent, state_grad_clip=0.0), env, agent.obs_norm, alpha)[0]
        free = torch.autograd.grad(unclipped, list(agent.actor.parameters()))
        assert sum((f - g).abs().sum() for f, g in zip(free, grads)) > 1e-3


def _with(agent: DMOSAPO, **changes) -> DMOSAPO:
    """The same agent (shared networks and generator) with some config fields changed."""
    other = copy.copy(agent)
    other.cfg = replace(agent.cfg, **changes)
    return other


def _actor_gradient(agent: DMOSAPO, env, alpha: float = 0.0, seed: int = 0) -> torch.Tensor:
    env.reset(seed=seed)
    loss, _ = agent.rollout(env, agent.obs_norm, torch.tensor(alpha))
    return torch.cat([g.flatten() for g in torch.autograd.grad(loss, list(agent.actor.parameters()))])


def test_likelihood_ratio_gradient_agrees_with_the_pathwise_one_on_the_toy_env():
    """On the smooth analytic env both estimate the gradient of the same window return: with 2^18 envs the
    pure score-function estimate (w = 1, no critic, batch-mean baseline) points where the exact pathwise one
    does (measured: cosine 0.976, norm ratio 1.09; 0.19 with 512 envs)."""
    cfg = replace(make_preset("debug"), num_envs=2**18, horizon=3, actor_hidden=(), bootstrap=False)
    env = _toy_env(cfg.num_envs)
    env.reset(seed=0)
    agent = DMOSAPO(env.state_dim, env.action_dim, cfg, seed=1)
    state = agent.generator.get_state()
    pathwise = _actor_gradient(agent, env)
    agent.generator.set_state(state)
    score = _actor_gradient(_with(agent, zeroth_order_weight=1.0), env)
    assert torch.nn.functional.cosine_similarity(pathwise, score, dim=0) > 0.93
    assert 0.8 < score.norm() / pathwise.norm() < 1.25


@pytest.mark.parametrize("bootstrap", [False, True])
def test_zeroth_order_weight_blends_the_two_gradients_linearly(bootstrap):
    cfg = replace(make_preset("debug"), num_envs=8, horizon=4, actor_hidden=(8,), critic_hidden=(8,),
                  bootstrap=bootstrap)
    env = _toy_env(cfg.num_envs, episode_steps=3)  # an episode end inside the window
    env.reset(seed=0)
    agent = DMOSAPO(env.state_dim, env.action_dim, cfg, seed=1)
    state = agent.generator.get_state()
    grads = {}
    for w in (0.0, 0.25, 1.0):
        agent.generator.set_state(state)
        grads[w] = _actor_gradient(_with(agent, zeroth_order_weight=w), env, alpha=0.3)
    torch.testing.assert_close(grads[0.25], 0.75 * grads[0.0] + 0.25 * grads[1.0], rtol=1e-4, atol=1e-7)
    assert (grads[1.0] - grads[0.0]).abs().sum() > 1e-4


def test_score_function_loss_vanishes_when_every_env_earns_the_same():
    """Without a critic the baseline is the envs' mean return-to-go: equal returns give no gradient."""
    cfg = replace(make_preset("debug"), num_envs=4, horizon=3, bootstrap=False, zeroth_order_weight=1.0)
    agent = DMOSAPO(2, 1, cfg, seed=0)
    obs = torch.randn(3, 4, 2)
    u = torch.randn(3, 4, 1)
    log_lik = agent.actor.gaussian_log_prob(obs.reshape(-1, 2), u.reshape(-1, 1)).reshape(3, 4)
    buf = {"rew": list(torch.full((3, 4), 0.7)), "done": list(torch.zeros(3, 4, dtype=torch.bool)),
           "obs": list(obs), "next_v": list(torch.zeros(3, 4))}
    loss = agent.score_function_loss(agent.obs_norm, log_lik, buf)
    grads = torch.autograd.grad(loss, list(agent.actor.parameters()))
    assert loss.item() == 0.0 and all(g.abs().max() == 0 for g in grads)
    buf["rew"][2] = torch.tensor([1.0, 0.0, 0.0, 0.0])  # env 0 earns more: its draws' likelihood rises
    loss = agent.score_function_loss(agent.obs_norm, log_lik, buf)
    expected = -(log_lik * torch.tensor([0.75, -0.25, -0.25, -0.25])
                 * torch.tensor([[cfg.gamma ** 2], [cfg.gamma], [1.0]])).mean()
    torch.testing.assert_close(loss, expected)


def test_temperature_moves_towards_target_entropy():
    cfg = make_preset("debug")
    env = _toy_env(cfg.num_envs)
    env.reset(seed=0)
    agent = DMOSAPO(env.state_dim, env.action_dim, cfg, seed=0)
    with torch.no_grad():  # σ = 1 before the tanh: entropy ≈ +1.1 nats, above the target -1 -> alpha falls
        agent.actor.net[-1].bias[env.action_dim:] = 0.0
        agent.actor.net[-1].weight[env.action_dim:] = 0.0
    a0 = agent.alpha.item()
    agent.iteration(env)
    assert agent.alpha.item() < a0
    agent2 = DMOSAPO(env.state_dim, env.action_dim, cfg, seed=0)
    with torch.no_grad():  # a near-deterministic policy: entropy below the target -> alpha must rise
        agent2.actor.net[-1].bias[env.action_dim:] = -5.0
        agent2.actor.net[-1].weight[env.action_dim:] = 0.0
    agent2.iteration(env)
    assert agent2.alpha.item() > a0


def test_debug_iterations_change_parameters_and_stay_finite():
    cfg = make_preset("debug")
    env = _toy_env(cfg.num_envs)
    env.reset(seed=0)
    agent = DMOSAPO(env.state_dim, env.action_dim, cfg, seed=0)
    before = copy.deepcopy(agent.state_dict())
    for _ in range(2):
        metrics = agent.iteration(env)
        assert all(math.isfinite(v) for v in metrics.values())
    after = agent.state_dict()
    for name in ("actor.net.0.weight", "critic.critics.0.0.weight", "critic.critics.1.0.weight", "log_alpha"):
        assert not torch.equal(before[name], after[name]), name


def test_checkpoint_resume_equals_uninterrupted(tmp_path):
    common = dict(env_id="WMToy-v0", preset="debug", iterations=5, eval_env_id=None, checkpoint_every=100)
    train_agent(AgentTrainConfig(run_dir=str(tmp_path / "a"), **common), progress=False)
    train_agent(AgentTrainConfig(run_dir=str(tmp_path / "b"), stop_after=2, **common), progress=False)
    train_agent(AgentTrainConfig(run_dir=str(tmp_path / "b"), **common), progress=False)
    a = torch.load(tmp_path / "a" / "checkpoints" / "latest.pt", weights_only=False)
    b = torch.load(tmp_path / "b" / "checkpoints" / "latest.pt", weights_only=False)
    for k, v in a["agent"]["model"].items():
        assert torch.equal(v, b["agent"]["model"][k]), k
    assert a["agent"]["imagined_steps"] == b["agent"]["imagined_steps"]
    rows = (tmp_path / "b" / "metrics.jsonl").read_text().splitlines()
    assert len(rows) == 5  # nothing duplicated or lost
    assert (tmp_path / "b" / "learning_curve.png").exists()


def test_zero_evaluation_episodes_skip_the_evaluations(tmp_path):
    """``final_eval_episodes=0`` (and ``eval_episodes=0``) evaluate nothing: no eval.json of NaNs, no evals.jsonl
    rows, though the learned env has a reference system; negative counts are refused by name."""
    run = tmp_path / "cube"
    final = train_agent(AgentTrainConfig(env_id="WMPushCube-v0", preset="debug", run_dir=str(run), local_model="state",
                                         forward_model="state", iterations=2, eval_every=1, eval_episodes=0,
                                         final_eval_episodes=0), progress=False)
    assert final == {"iteration": 2, "imagined_steps": final["imagined_steps"]} and final["imagined_steps"] > 0
    assert not (run / "eval.json").exists() and not (run / "evals.jsonl").exists()
    assert (run / "learning_curve.png").exists()
    with pytest.raises(ValueError, match="final_eval_episodes must be >= 0, got -1"):
        AgentTrainConfig(final_eval_episodes=-1)


def test_cli_overrides_reach_the_resolved_config():
    from fog_agent.train import resolve_sapo_config

    base = make_preset("cpu")
    cfg = resolve_sapo_config(AgentTrainConfig(preset="cpu", iterations=7, local_refresh_steps=0, reward_scale=3.0,
                                               alpha_init=0.1, target_entropy_scale=2.0, episode_steps=8, horizon=4,
                                               bootstrap=False, state_grad_clip=2.0, zeroth_order_weight=0.5,
                                               gamma=0.98))
    assert (cfg.iterations, cfg.local_refresh_steps, cfg.reward_scale, cfg.alpha_init, cfg.target_entropy_scale,
            cfg.episode_steps, cfg.horizon, cfg.bootstrap, cfg.state_grad_clip,
            cfg.zeroth_order_weight, cfg.gamma) == (7, 0, 3.0, 0.1, 2.0, 8, 4, False, 2.0, 0.5, 0.98)
    assert resolve_sapo_config(AgentTrainConfig(preset="cpu")) == base
    assert base.reward_scale == 10.0 and make_preset("debug").reward_scale == 1.0


class _FixedObserver:
    """An observer whose latent is always the same vector."""

    def __init__(self, latent: torch.Tensor) -> None:
        self.latent = latent

    def reset(self, obs: np.ndarray) -> torch.Tensor:
        return self.latent

    def update(self, action: np.ndarray, obs: np.ndarray) -> torch.Tensor:
        return self.latent


def test_controller_acts_with_tanh_mu_or_samples_from_the_agents_generator():
    """Deployment acts deterministically by default; ``deterministic=False`` samples as training does, reproducibly
    from the agent's generator (``fog-eval --stochastic``)."""
    from fog_agent.controller import FogController

    agent = DMOSAPO(3, 2, make_preset("debug"), seed=0)
    latent = torch.tensor([0.3, -0.2, 0.5])
    det = FogController(agent, _FixedObserver(latent))
    det.reset(np.zeros(1), {})
    a1, a2 = det.act(np.zeros(1), {}), det.act(np.zeros(1), {})
    np.testing.assert_array_equal(a1, a2)
    np.testing.assert_allclose(a1, agent.act(latent[None]).squeeze(0).numpy(), rtol=1e-6)
    state = agent.generator.get_state()
    sto = FogController(agent, _FixedObserver(latent), deterministic=False)
    sto.reset(np.zeros(1), {})
    s1, s2 = sto.act(np.zeros(1), {}), sto.act(np.zeros(1), {})
    assert not np.array_equal(s1, s2) and not np.array_equal(s1, a1)
    assert np.abs(s1).max() <= 1.0
    agent.generator.set_state(state)
    sto.reset(np.zeros(1), {})
    np.testing.assert_array_equal(sto.act(np.zeros(1), {}), s1)


def test_warm_start_loads_another_runs_agent_and_names_what_does_not_fit(tmp_path):
    from fog_agent.train import warm_start

    common = dict(env_id="WMToy-v0", preset="debug", eval_env_id=None, checkpoint_every=100)
    train_agent(AgentTrainConfig(run_dir=str(tmp_path / "a"), iterations=3, **common), progress=False)
    source = torch.load(tmp_path / "a" / "checkpoints" / "latest.pt", weights_only=False)
    cfg = make_preset("debug")
    agent = DMOSAPO(source["obs_dim"], source["action_dim"], cfg, seed=5)
    assert warm_start(agent, tmp_path / "a", "WMToy-v0") == tmp_path / "a" / "checkpoints" / "latest.pt"
    for k, v in source["agent"]["model"].items():
        assert torch.equal(agent.state_dict()[k], v), k
    assert agent.iteration_count == 0 and agent.imagined_steps == 0  # counters start fresh
    assert not agent.actor_opt.state  # so does the optimiser
    with pytest.raises(FileNotFoundError, match="no agent checkpoint"):
        warm_start(agent, tmp_path / "missing", "WMToy-v0")
    with pytest.raises(ValueError, match="WMToy-v0, this run trains in WMPushT-v0"):
        warm_start(agent, tmp_path / "a", "WMPushT-v0")
    wider = DMOSAPO(source["obs_dim"], source["action_dim"], replace(cfg, actor_hidden=(cfg.actor_hidden[0] + 8,)
                                                                     + tuple(cfg.actor_hidden[1:])))
    with pytest.raises(ValueError, match="does not fit"):
        warm_start(wider, tmp_path / "a", "WMToy-v0")

    # a run started from it trains on from a's weights with a fresh counter and optimiser, and says so in its
    # config: Adam's first step moves each weight by at most lr·(1 + weight_decay·|w|)
    train_agent(AgentTrainConfig(run_dir=str(tmp_path / "b"), iterations=1, init_from=str(tmp_path / "a"),
                                 **common), progress=False)
    b = torch.load(tmp_path / "b" / "checkpoints" / "latest.pt", weights_only=False)
    assert b["agent"]["iteration"] == 1
    w = "actor.net.0.weight"
    a_w, b_w = source["agent"]["model"][w], b["agent"]["model"][w]
    assert not torch.equal(a_w, b_w)
    assert ((b_w - a_w).abs() <= cfg.actor_lr * (1 + cfg.weight_decay * a_w.abs()) * 1.001).all()
    import json
    assert json.loads((tmp_path / "b" / "config.json").read_text())["train"]["init_from"] == str(tmp_path / "a")
