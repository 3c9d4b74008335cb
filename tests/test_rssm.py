"""The local RSSM and its Jacobian hook: shapes, filtering conventions, masking, training, and the hook's
VJP/JVP/dense Jacobians against autograd, forward-mode AD and finite differences (float64)."""

from __future__ import annotations

import math

import pytest
import torch

from fog_envs.wm.rssm import RSSM, RSSMConfig, RSSMState, gaussian_kl

B, T, A = 3, 7, 3
CFG = RSSMConfig(latent_shape=(4, 4, 4), action_dim=A, deter=16, stoch=6, hidden=24, embed=20)
X = CFG.deter + CFG.stoch


pytestmark = pytest.mark.usefixtures("one_thread")


def _model(dtype: torch.dtype = torch.float32, seed: int = 0) -> RSSM:
    torch.manual_seed(seed)
    return RSSM(CFG).to(dtype)


def _data(b: int = B, t: int = T, seed: int = 0, dtype: torch.dtype = torch.float32):
    g = torch.Generator().manual_seed(seed)
    lat = torch.randn(b, t, *CFG.latent_shape, generator=g, dtype=dtype)
    act = torch.rand(b, t, A, generator=g, dtype=dtype) * 2 - 1
    rew = torch.rand(b, t, generator=g, dtype=dtype) * 1.5
    return lat, act, rew


def _row(state: RSSMState, t: int) -> RSSMState:
    return RSSMState(state.deter[:, t], state.stoch[:, t], state.mean[:, t], state.std[:, t])


def _assert_states_close(a: RSSMState, b: RSSMState, exact: bool = True) -> None:
    tol = {"rtol": 0, "atol": 0} if exact else {}
    for f in ("deter", "stoch", "mean", "std"):
        torch.testing.assert_close(getattr(a, f), getattr(b, f), **tol)


# --- the model --------------------------------------------------------------------------------------------

def local_step(rssm, deter, stoch, action):
    """The hook's one-step function on split states (as ``WorldModel.local_step`` computes it)."""
    d = rssm.next_deter(deter, stoch, action)
    return d, rssm.prior(d)[0]


def test_shapes_of_every_output():
    rssm = _model()
    lat, act, rew = _data()
    s0 = rssm.initial(B)
    assert s0.deter.shape == (B, 16) and s0.stoch.shape == s0.mean.shape == s0.std.shape == (B, 6)
    prior = rssm.img_step(s0, act[:, 0])
    assert prior.deter.shape == (B, 16) and prior.stoch.shape == (B, 6) and (prior.std >= CFG.min_std).all()
    post, prior2 = rssm.obs_step(s0, act[:, 0], lat[:, 0])
    assert post.deter.shape == prior2.deter.shape == (B, 16) and post.stoch.shape == (B, 6)
    posts, priors = rssm.observe(lat, act, torch.zeros(B, T, dtype=torch.bool))
    for s in (posts, priors):
        assert s.deter.shape == (B, T, 16) and s.stoch.shape == s.mean.shape == s.std.shape == (B, T, 6)
    feat = rssm.features(posts)
    assert feat.shape == (B, T, X) and rssm.latent_dim_features == X
    assert rssm.decode(feat).shape == lat.shape and rssm.reward(feat).shape == (B, T)
    assert rssm.reward(feat[:, 0]).shape == (B,)
    img = rssm.imagine(_row(posts, -1), act)
    assert img.deter.shape == (B, T, 16) and img.stoch.shape == (B, T, 6)
    loss, metrics = rssm.loss(lat, act, rew, torch.zeros(B, T, dtype=torch.bool), torch.ones(B, T, dtype=torch.bool))
    assert loss.shape == () and torch.isfinite(loss)
    assert {"rssm/recon", "rssm/reward_mse", "rssm/kl", "rssm/kl_free_bits", "rssm/loss"} <= set(metrics)
    d, s = local_step(rssm, post.deter, post.stoch, act[:, 1])
    assert d.shape == (B, 16) and s.shape == (B, 6)


def test_float64_model_filters_from_its_own_initial_state():
    rssm = _model(torch.float64)
    lat, act, _ = _data(dtype=torch.float64)
    assert rssm.initial(B).deter.dtype == torch.float64
    posts, _ = rssm.observe(lat, act, torch.zeros(B, T, dtype=torch.bool))
    assert posts.deter.dtype == torch.float64


def test_kl_is_non_negative():
    g = torch.Generator().manual_seed(1)
    m1, m2 = torch.randn(200, 6, generator=g), torch.randn(200, 6, generator=g)
    s1, s2 = torch.rand(200, 6, generator=g) + 0.1, torch.rand(200, 6, generator=g) + 0.1
    kl = gaussian_kl(m1, s1, m2, s2)
    assert (kl >= 0).all()
    torch.testing.assert_close(gaussian_kl(m1, s1, m1, s1), torch.zeros(200))
    ref = torch.distributions.kl_divergence(torch.distributions.Normal(m1, s1), torch.distributions.Normal(m2, s2))
    torch.testing.assert_close(kl, ref.sum(-1))
    rssm = _model()
    lat, act, rew = _data()
    posts, priors = rssm.observe(lat, act, torch.zeros(B, T, dtype=torch.bool))
    assert (gaussian_kl(posts.mean, posts.std, priors.mean, priors.std) >= 0).all()
    _, metrics = rssm.loss(lat, act, rew, torch.zeros(B, T, dtype=torch.bool), torch.ones(B, T, dtype=torch.bool))
    assert metrics["rssm/kl"] >= 0 and metrics["rssm/kl_free_bits"] >= CFG.free_bits - 1e-6


@pytest.mark.parametrize("sample", [False, True])
def test_observe_equals_chained_obs_steps(sample):
    """Convention: the transition into latents[t] uses actions[t-1] (zeros at t=0)."""
    rssm = _model()
    lat, act, _ = _data()
    posts, priors = rssm.observe(lat, act, torch.zeros(B, T, dtype=torch.bool), sample=sample,
                                 generator=torch.Generator().manual_seed(5))
    g = torch.Generator().manual_seed(5)
    state = rssm.initial(B)
    for t in range(T):
        action = torch.zeros(B, A) if t == 0 else act[:, t - 1]
        post, prior = rssm.obs_step(state, action, lat[:, t], sample=sample, generator=g)
        # observe embeds all frames in one batched conv call: equal up to float32 rounding
        _assert_states_close(post, _row(posts, t), exact=False)
        _assert_states_close(prior, _row(priors, t), exact=False)
        state = post


def test_img_step_from_a_posterior_equals_the_prior_of_obs_step():
    rssm = _model()
    lat, act, _ = _data()
    posts, priors = rssm.observe(lat, act, torch.zeros(B, T, dtype=torch.bool))
    for t in range(1, T):
        prior = rssm.img_step(_row(posts, t - 1), act[:, t - 1])
        _assert_states_close(prior, _row(priors, t))
        _, prior_obs = rssm.obs_step(_row(posts, t - 1), act[:, t - 1], lat[:, t])
        _assert_states_close(prior, prior_obs)
        d, s = local_step(rssm, posts.deter[:, t - 1], posts.stoch[:, t - 1], act[:, t - 1])
        torch.testing.assert_close(d, prior.deter, rtol=0, atol=0)
        torch.testing.assert_close(s, prior.mean, rtol=0, atol=0)
    # imagine chains img_step
    img = rssm.imagine(_row(posts, 0), act[:, :3])
    state = _row(posts, 0)
    for k in range(3):
        state = rssm.img_step(state, act[:, k])
        _assert_states_close(state, _row(img, k))


def test_is_first_resets_the_state():
    rssm = _model()
    lat, act, _ = _data()
    first = torch.zeros(B, T, dtype=torch.bool)
    first[:, 4] = True
    posts, priors = rssm.observe(lat, act, first)
    fresh, fresh_priors = rssm.observe(lat[:, 4:], act[:, 4:], torch.zeros(B, T - 4, dtype=torch.bool))
    torch.testing.assert_close(posts.mean[:, 4:], fresh.mean)
    torch.testing.assert_close(priors.mean[:, 4:], fresh_priors.mean)
    # nothing before the reset (frames, or the action that led into it) reaches the new episode
    lat2, act2 = lat.clone(), act.clone()
    lat2[:, :4] = torch.randn_like(lat2[:, :4])
    act2[:, :4] = -act2[:, :4]
    posts2, _ = rssm.observe(lat2, act2, first)
    torch.testing.assert_close(posts2.mean[:, 4:], posts.mean[:, 4:], rtol=0, atol=0)
    assert not torch.allclose(posts2.mean[:, :4], posts.mean[:, :4])


def test_masked_positions_do_not_affect_the_loss():
    rssm = _model()
    lat, act, rew = _data()
    first = torch.zeros(B, T, dtype=torch.bool)
    mask = torch.ones(B, T, dtype=torch.bool)
    mask[0, 5:] = False  # padding at the end of different lengths
    mask[1, 3:] = False

    def run(lat, act, rew):
        rssm.zero_grad()
        loss, _ = rssm.loss(lat, act, rew, first, mask, generator=torch.Generator().manual_seed(3))
        loss.backward()
        return loss.detach(), [p.grad.clone() for p in rssm.parameters()]

    loss1, grads1 = run(lat, act, rew)
    lat2, act2, rew2 = lat.clone(), act.clone(), rew.clone()
    lat2[~mask] = 100.0
    act2[~mask] = float("nan")
    rew2[~mask] = float("inf")
    loss2, grads2 = run(lat2, act2, rew2)
    torch.testing.assert_close(loss1, loss2, rtol=0, atol=0)
    for g1, g2 in zip(grads1, grads2):
        torch.testing.assert_close(g1, g2, rtol=0, atol=0)
    # but the real positions do matter
    lat3 = lat.clone()
    lat3[0, 2] += 1.0
    assert not torch.equal(run(lat3, act, rew)[0], loss1)


def test_loss_falls_when_training_a_tiny_rssm():
    """100 Adam steps on 16 short sequences of a learnable action-driven latent process: the total loss falls
    ≥ 2.5× (measured ≈3.4×; its floor is the free-bits KL, 0.6 nats) and recon + reward MSE fall ≥ 10× (≈27×)."""
    rssm = _model()
    g = torch.Generator().manual_seed(0)
    n, t = 16, 8
    act = torch.rand(n, t, A, generator=g) * 2 - 1
    pos = torch.cumsum(0.3 * act[..., :2], 1)  # a point moved by the actions ...
    grid = torch.linspace(-1, 1, 4)
    lat = torch.stack([torch.tanh(pos[..., 0, None, None] - grid[:, None]).expand(n, t, 4, 4),
                       torch.tanh(pos[..., 1, None, None] - grid[None, :]).expand(n, t, 4, 4),
                       torch.cos(pos[..., 0, None, None] + grid[None, :]).expand(n, t, 4, 4),
                       0.1 * torch.randn(n, t, 4, 4, generator=g)], 2)  # ... rendered into a latent frame
    rew = (1.5 * torch.exp(-pos.roll(-1, 1).pow(2).sum(-1)))  # reward for action[t] = f(state at t+1)
    first = torch.zeros(n, t, dtype=torch.bool)
    first[:, 0] = True
    mask = torch.ones(n, t, dtype=torch.bool)
    opt = torch.optim.Adam(rssm.parameters(), lr=3e-3)
    losses, fits = [], []
    for i in range(100):
        loss, metrics = rssm.loss(lat, act, rew, first, mask, generator=torch.Generator().manual_seed(i))
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
        fits.append(metrics["rssm/recon"] + metrics["rssm/reward_mse"])
    avg = lambda xs: sum(xs) / len(xs)  # noqa: E731
    assert math.isfinite(losses[-1])
    assert avg(losses[-5:]) < avg(losses[:5]) / 2.5, (losses[:5], losses[-5:])
    assert avg(fits[-5:]) < avg(fits[:5]) / 10, (fits[:5], fits[-5:])


# --- the Jacobian hook ----------------------------------------------------------------------------------

def _point(seed: int = 1):
    rssm = _model(torch.float64)
    g = torch.Generator().manual_seed(seed)
    d = torch.randn(4, CFG.deter, generator=g, dtype=torch.float64)
    s = torch.randn(4, CFG.stoch, generator=g, dtype=torch.float64)
    a = torch.rand(4, A, generator=g, dtype=torch.float64) * 2 - 1
    return rssm, d, s, a


def test_motion_weighted_reconstruction():
    """A static sequence gets all-one weights (the loss is unchanged); a sequence where one element moves
    gets a different loss than the plain one."""
    from dataclasses import replace

    plain = _model()
    weighted = RSSM(replace(CFG, motion_weight=2.0))
    weighted.load_state_dict(plain.state_dict())
    lat, act, rew = _data()
    first = torch.zeros(B, T, dtype=torch.bool)
    mask = torch.ones(B, T, dtype=torch.bool)
    static = lat[:, :1].expand_as(lat).contiguous()

    def loss(model, latents):
        return model.loss(latents, act, rew, first, mask, generator=torch.Generator().manual_seed(0))[0]

    torch.testing.assert_close(loss(weighted, static), loss(plain, static))
    moving = static.clone()
    moving[:, 1:, 0, 0, 0] += 3.0
    assert not torch.allclose(loss(weighted, moving), loss(plain, moving))


def test_state_head_loss_is_the_weighted_mse_on_posterior_and_prior_features():
    """With a state head, the loss adds ``state_weight·(MSE(head(post)) + MSE(head(prior)))``, the prior term
    skipping each sequence's first step; without states (imagined data) the loss is the plain one; a model
    without a head ignores states and says so when asked for them; a wrong states shape is named."""
    from dataclasses import replace

    cfg = replace(CFG, state_dim=2, state_weight=3.0)
    torch.manual_seed(0)
    model = RSSM(cfg)
    lat, act, rew = _data()
    first = torch.zeros(B, T, dtype=torch.bool)
    mask = torch.ones(B, T, dtype=torch.bool)
    states = torch.randn(B, T, 2, generator=torch.Generator().manual_seed(1))
    gen = lambda: torch.Generator().manual_seed(0)  # noqa: E731
    plain, _ = model.loss(lat, act, rew, first, mask, generator=gen())
    full, metrics = model.loss(lat, act, rew, first, mask, generator=gen(), states=states)
    posts, priors = model.observe(lat, act, first, sample=True, generator=gen())
    post_mse = (model.state(model.features(posts)) - states).pow(2).mean()
    prior_feat = torch.cat([priors.deter, priors.mean], -1)
    prior_mse = (model.state(prior_feat) - states).pow(2).mean(-1)[:, 1:].mean()
    torch.testing.assert_close(full, plain + 3.0 * (post_mse + prior_mse))
    assert metrics["rssm/state_mse_post"] == pytest.approx(post_mse.item(), rel=1e-5)
    assert metrics["rssm/state_mse_prior"] == pytest.approx(prior_mse.item(), rel=1e-5)
    # the state head's gradient reaches the dynamics (GRU) through the prior term
    full.backward()
    assert model.gru.weight_ih.grad.abs().sum() > 0
    with pytest.raises(ValueError, match="states must have shape"):
        model.loss(lat, act, rew, first, mask, states=states[..., :1])
    no_head = _model()
    torch.testing.assert_close(no_head.loss(lat, act, rew, first, mask, generator=gen(), states=states)[0],
                               no_head.loss(lat, act, rew, first, mask, generator=gen())[0])
    with pytest.raises(ValueError, match="no state head"):
        no_head.state(torch.zeros(1, X))
    assert not any(k.startswith("state_head") for k in no_head.state_dict())  # old bundles still load
