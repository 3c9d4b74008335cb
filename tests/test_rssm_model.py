"""The RSSM: shapes, KL, filtering conventions, masking."""

from __future__ import annotations

import torch

from fog_envs.wm.rssm import RSSM, RSSMConfig, RSSMState, gaussian_kl

CFG = RSSMConfig(latent_shape=(4, 8, 8), action_dim=3, deter=16, stoch=6, hidden=24, embed=20)


def _data(b=3, t=7, seed=0):
    g = torch.Generator().manual_seed(seed)
    lat = torch.randn(b, t, 4, 8, 8, generator=g)
    act = torch.rand(b, t, 3, generator=g) * 2 - 1
    rew = torch.rand(b, t, generator=g)
    return lat, act, rew


def test_shapes():
    torch.manual_seed(0)
    rssm = RSSM(CFG)
    lat, act, rew = _data()
    first = torch.zeros(3, 7, dtype=torch.bool)
    posts, priors = rssm.observe(lat, act, first)
    assert posts.deter.shape == (3, 7, 16) and posts.stoch.shape == (3, 7, 6) and priors.std.shape == (3, 7, 6)
    feat = rssm.features(posts)
    assert feat.shape == (3, 7, CFG.feature_dim)
    assert rssm.decode(feat).shape == lat.shape and rssm.reward(feat).shape == (3, 7)
    img = rssm.imagine(RSSMState(posts.deter[:, -1], posts.stoch[:, -1], posts.mean[:, -1], posts.std[:, -1]), act)
    assert img.deter.shape == (3, 7, 16)
    assert (priors.std >= CFG.min_std).all()


def test_kl_is_non_negative_and_zero_for_equal_gaussians():
    g = torch.Generator().manual_seed(1)
    m1, m2 = torch.randn(50, 6, generator=g), torch.randn(50, 6, generator=g)
    s1, s2 = torch.rand(50, 6, generator=g) + 0.1, torch.rand(50, 6, generator=g) + 0.1
    assert (gaussian_kl(m1, s1, m2, s2) >= 0).all()
    torch.testing.assert_close(gaussian_kl(m1, s1, m1, s1), torch.zeros(50))
    ref = torch.distributions.kl_divergence(torch.distributions.Normal(m1, s1), torch.distributions.Normal(m2, s2)).sum(-1)
    torch.testing.assert_close(gaussian_kl(m1, s1, m2, s2), ref)


def test_observe_equals_chained_obs_steps_and_img_step_matches_the_prior():
    torch.manual_seed(0)
    rssm = RSSM(CFG)
    lat, act, _ = _data()
    posts, priors = rssm.observe(lat, act, torch.zeros(3, 7, dtype=torch.bool))
    state = rssm.initial(3)
    for t in range(7):
        action = torch.zeros(3, 3) if t == 0 else act[:, t - 1]
        prior_from_img = rssm.img_step(state, action)
        post, prior = rssm.obs_step(state, action, lat[:, t])
        torch.testing.assert_close(prior.mean, prior_from_img.mean)
        torch.testing.assert_close(post.deter, posts.deter[:, t])
        torch.testing.assert_close(post.mean, posts.mean[:, t])
        torch.testing.assert_close(prior.mean, priors.mean[:, t])
        state = post


def test_is_first_resets_the_state():
    torch.manual_seed(0)
    rssm = RSSM(CFG)
    lat, act, _ = _data()
    first = torch.zeros(3, 7, dtype=torch.bool)
    first[:, 4] = True
    posts, _ = rssm.observe(lat, act, first)
    fresh, _ = rssm.observe(lat[:, 4:], act[:, 4:], torch.zeros(3, 3, dtype=torch.bool))
    torch.testing.assert_close(posts.mean[:, 4:], fresh.mean)


def test_masked_positions_do_not_change_the_loss():
    torch.manual_seed(0)
    rssm = RSSM(CFG)
    lat, act, rew = _data()
    first = torch.zeros(3, 7, dtype=torch.bool)
    mask = torch.ones(3, 7, dtype=torch.bool)
    mask[:, 5:] = False
    g = lambda: torch.Generator().manual_seed(3)  # noqa: E731
    loss1, _ = rssm.loss(lat, act, rew, first, mask, generator=g())
    lat2, rew2 = lat.clone(), rew.clone()
    lat2[:, 5:] = 100.0
    rew2[:, 5:] = -7.0
    loss2, _ = rssm.loss(lat2, act, rew2, first, mask, generator=g())
    torch.testing.assert_close(loss1, loss2)


def test_tiny_rssm_loss_falls():
    torch.manual_seed(0)
    rssm = RSSM(CFG)
    lat, act, rew = _data(b=8, t=6)
    lat = lat * 0.1 + torch.linspace(-1, 1, 6)[None, :, None, None, None]  # a learnable trend
    first = torch.zeros(8, 6, dtype=torch.bool)
    mask = torch.ones(8, 6, dtype=torch.bool)
    opt = torch.optim.Adam(rssm.parameters(), lr=3e-3)
    losses = []
    for i in range(80):
        loss, _ = rssm.loss(lat, act, rew, first, mask, generator=torch.Generator().manual_seed(i))
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < 0.5 * losses[0]  # stated factor: at least halves in 80 steps
