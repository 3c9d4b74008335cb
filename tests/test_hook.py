"""The Jacobian hook against analytic Jacobians (toy), autograd and finite differences (RSSM)."""

from __future__ import annotations

import numpy as np
import torch

from fog_envs.learned.hook import action_jacobian, dense_jacobians, state_jacobian, step_jvp, step_vjp
from fog_envs.learned.toy import ToyBackend, ToyConfig, analytic_jacobians
from fog_envs.wm.rssm import RSSM, RSSMConfig


def _toy():
    backend = ToyBackend(3, ToyConfig(surrogate_error=0.2), dtype=torch.float64)
    g = torch.Generator().manual_seed(0)
    x = torch.randn(3, 4, generator=g, dtype=torch.float64)
    a = torch.rand(3, 2, generator=g, dtype=torch.float64) * 2 - 1
    return backend, x, a


def test_dense_jacobians_match_the_analytic_toy():
    backend, x, a = _toy()
    jac = dense_jacobians(backend.local_step, x, a)
    cfg = backend.config
    for i in range(3):
        jx, ja = analytic_jacobians(x[i].numpy(), cfg, cfg.damping + cfg.surrogate_error)
        np.testing.assert_allclose(jac["state"][i].numpy(), jx, atol=1e-12)
        np.testing.assert_allclose(jac["action"][i].numpy(), ja, atol=1e-12)


def _rssm_step():
    torch.manual_seed(0)
    cfg = RSSMConfig(latent_shape=(4, 8, 8), action_dim=2, deter=12, stoch=5, hidden=16, embed=16)
    rssm = RSSM(cfg).double()

    def step(x, a):
        deter, stoch = x[..., :12], x[..., 12:]
        d = rssm.next_deter(deter, stoch, a)
        return torch.cat([d, rssm.prior(d)[0].to(d.dtype)], -1)

    g = torch.Generator().manual_seed(1)
    x = torch.randn(4, 17, generator=g, dtype=torch.float64)
    a = torch.rand(4, 2, generator=g, dtype=torch.float64) * 2 - 1
    return step, x, a


def test_rssm_vjp_equals_autograd_and_gradcheck():
    step, x, a = _rssm_step()
    cot = torch.randn(4, 17, dtype=torch.float64)
    gx, ga = step_vjp(step, x, a, cot)
    xr, ar = x.clone().requires_grad_(True), a.clone().requires_grad_(True)
    ex, ea = torch.autograd.grad((step(xr, ar) * cot).sum(), (xr, ar))
    torch.testing.assert_close(gx, ex)
    torch.testing.assert_close(ga, ea)
    assert torch.autograd.gradcheck(step, (xr, ar), eps=1e-6, atol=1e-5)


def test_rssm_jvp_equals_finite_differences():
    step, x, a = _rssm_step()
    tx, ta = torch.randn_like(x), torch.randn_like(a)
    out, tangent = step_jvp(step, x, a, tx, ta)
    eps = 1e-6
    fd = (step(x + eps * tx, a + eps * ta) - step(x - eps * tx, a - eps * ta)) / (2 * eps)
    torch.testing.assert_close(out, step(x, a))
    torch.testing.assert_close(tangent, fd, atol=1e-7, rtol=1e-5)


def test_dense_jacobians_equal_stacked_vjps_and_modes_agree():
    step, x, a = _rssm_step()
    jac_a = action_jacobian(step, x, a)
    jac_x = state_jacobian(step, x, a)
    for k in range(17):
        cot = torch.zeros(4, 17, dtype=torch.float64)
        cot[:, k] = 1.0
        gx, ga = step_vjp(step, x, a, cot)
        torch.testing.assert_close(jac_x[:, k], gx)
        torch.testing.assert_close(jac_a[:, k], ga)
    torch.testing.assert_close(state_jacobian(step, x, a, mode="fwd"), jac_x)
    from torch.func import jacrev, vmap

    rev = vmap(jacrev(lambda xx, aa: step(xx[None], aa[None])[0], argnums=1))(x, a)
    torch.testing.assert_close(rev, jac_a)
