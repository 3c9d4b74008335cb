"""EDM maths (preconditioning, schedules, noise, sampler) and the latent denoiser: contracts, not timings."""

from __future__ import annotations

import math
from dataclasses import replace

import pytest
import torch
from torch import nn

from fog_envs.wm.config_io import config_from_dict, config_to_dict
from fog_envs.wm.denoiser import DenoiserConfig, LatentDenoiser, point_planes
from fog_envs.wm.edm import (
    EDMConfig,
    denoise,
    edm_training_loss,
    euler_sample,
    from_target,
    karras_sigmas,
    preconditioners,
    sample_train_sigma,
    sampling_sigmas,
    to_target,
    train_context,
)
from fog_envs.wm.loss_weights import motion_weights

CFG = EDMConfig()
WARM = EDMConfig(start_sigma=0.5)  #: the sampler's warm start (from the last latent noised to σ = 0.5)


def _t(*v: float) -> torch.Tensor:
    return torch.tensor(v, dtype=torch.float64)


# --- preconditioning -----------------------------------------------------------------------------------

@pytest.mark.parametrize("sigma", [0.002, 0.5, 1.0, 5.0, 20.0])
def test_preconditioners_hand_computed(sigma: float) -> None:
    sd = 0.5
    c_in, c_skip, c_out, c_noise = preconditioners(_t(sigma), CFG)
    assert c_in.item() == pytest.approx(1 / math.sqrt(sigma**2 + sd**2), rel=1e-12)
    assert c_skip.item() == pytest.approx(sd**2 / (sigma**2 + sd**2), rel=1e-12)
    assert c_out.item() == pytest.approx(sigma * sd / math.sqrt(sigma**2 + sd**2), rel=1e-12)
    assert c_noise.item() == pytest.approx(math.log(sigma) / 4, rel=1e-12)


def test_preconditioners_at_sigma_data() -> None:
    # σ = σ_data = 0.5: c_skip = 1/2, c_in = 1/sqrt(0.5), c_out = 0.5/sqrt(2), c_noise = ln(0.5)/4
    c_in, c_skip, c_out, c_noise = preconditioners(_t(0.5), CFG)
    assert c_skip.item() == pytest.approx(0.5)
    assert c_in.item() == pytest.approx(1.4142135623730951)
    assert c_out.item() == pytest.approx(0.3535533905932738)
    assert c_noise.item() == pytest.approx(-0.17328679513998632)
    # EDM's defining identities: unit-variance input and target when the data std is σ_data
    s, sd = 0.5, 0.5
    assert (c_in**2 * (s**2 + sd**2)).item() == pytest.approx(1.0)
    assert ((sd**2 * (1 - c_skip) ** 2 + c_skip**2 * s**2) / c_out**2).item() == pytest.approx(1.0)


def test_preconditioners_use_effective_sigma_with_offset_noise() -> None:
    cfg = EDMConfig(sigma_offset_noise=0.3)
    sigma = _t(0.4)
    eff = math.sqrt(0.4**2 + 0.3**2)  # 0.5
    got = preconditioners(sigma, cfg)
    want = preconditioners(_t(eff), CFG)
    for g, w in zip(got, want):
        assert g.item() == pytest.approx(w.item(), rel=1e-12)


def test_preconditioning_matches_diffusers_edm_euler() -> None:
    """diffusers' EDMEulerScheduler (prediction_type="epsilon") uses the same c_in, c_skip, c_out, and
    c_noise = 0.25·ln σ — identical to ours (and DIAMOND's) when offset noise is off."""
    from diffusers import EDMEulerScheduler

    sched = EDMEulerScheduler(sigma_min=0.002, sigma_max=5.0, sigma_data=0.5, rho=7.0, sigma_schedule="karras")
    g = torch.Generator().manual_seed(0)
    x = torch.randn(3, 4, 8, 8, generator=g)
    f = torch.randn(3, 4, 8, 8, generator=g)
    for sigma in (0.002, 0.283, 1.0, 5.0):
        s = torch.tensor(sigma)
        c_in, c_skip, c_out, c_noise = preconditioners(s, CFG)
        torch.testing.assert_close(sched.precondition_inputs(x, s), c_in * x)
        torch.testing.assert_close(sched.precondition_noise(s), c_noise)
        torch.testing.assert_close(sched.precondition_outputs(x, f, s), c_skip * x + c_out * f)
        # and our denoise() wraps a model the same way
        d = denoise(lambda xi, cn, ctx, a, cc: f, x, sigma, torch.zeros(3, 1, 4, 8, 8), torch.zeros(3, 1, 2), CFG)
        torch.testing.assert_close(d, sched.precondition_outputs(x, f, s))


# --- schedules -----------------------------------------------------------------------------------------

def test_karras_sigmas_diamond_values() -> None:
    s = karras_sigmas(3, 2e-3, 5.0, 7.0, dtype=torch.float64)
    assert s.shape == (4,)
    assert s[0].item() == pytest.approx(5.0)
    assert s[1].item() == pytest.approx(0.2831, abs=1e-4)
    assert s[2].item() == pytest.approx(0.002)
    assert s[3].item() == 0.0


@pytest.mark.parametrize("n", [1, 2, 3, 5])
def test_karras_sigmas_match_diffusers(n: int) -> None:
    from diffusers import EDMEulerScheduler

    sched = EDMEulerScheduler(sigma_min=0.002, sigma_max=5.0, rho=7.0, sigma_schedule="karras")
    sched.set_timesteps(n)
    torch.testing.assert_close(karras_sigmas(n, 2e-3, 5.0, 7.0), sched.sigmas.float())


def test_sampling_sigmas_skip_the_near_identity_sigma_min_step() -> None:
    # default: 2 NFE = DIAMOND's 3-step schedule without its σ = 0.002 evaluation
    torch.testing.assert_close(sampling_sigmas(CFG, 2), karras_sigmas(3, 2e-3, 5.0, 7.0)[[0, 1, 3]])
    torch.testing.assert_close(sampling_sigmas(CFG, 1), torch.tensor([5.0, 0.0]))
    plain = EDMConfig(skip_sigma_min_step=False)
    torch.testing.assert_close(sampling_sigmas(plain, 2), torch.tensor([5.0, 0.002, 0.0]))
    torch.testing.assert_close(sampling_sigmas(plain, 3), karras_sigmas(3, 2e-3, 5.0, 7.0))
    assert len(sampling_sigmas(CFG)) == CFG.num_steps + 1


# --- training noise ------------------------------------------------------------------------------------

def test_train_sigma_statistics() -> None:
    g = torch.Generator().manual_seed(0)
    s = sample_train_sigma(200_000, CFG, g, dtype=torch.float64)
    assert s.min().item() >= 2e-3 and s.max().item() <= 20.0
    assert s.max().item() == 20.0  # ~0.2 % of draws exceed 20 and are clipped
    log = s.log()
    assert log.mean().item() == pytest.approx(-0.4, abs=0.02)
    assert log.std().item() == pytest.approx(1.2, abs=0.02)
    again = sample_train_sigma(200_000, CFG, torch.Generator().manual_seed(0), dtype=torch.float64)
    assert torch.equal(s, again)


def test_context_noise_augmentation() -> None:
    ctx = torch.zeros(4000, 2, 1, 2, 2)
    always = EDMConfig(context_noise_prob=1.0, context_sigma_max=0.5)
    noisy, sc = train_context(ctx, always, torch.Generator().manual_seed(1))
    assert sc.max().item() <= 0.5 and sc.min().item() >= always.train_sigma_min
    assert (noisy / sc[:, None, None, None, None]).std().item() == pytest.approx(1.0, rel=0.02)
    assert (sc == 0.5).float().mean().item() == pytest.approx(0.60, abs=0.03)  # P(σ > 0.5) under LogN(-0.4, 1.2)
    # default: half the samples keep the sampling-time level s_cond, the rest are capped at 0.2
    noisy, sc = train_context(ctx, CFG, torch.Generator().manual_seed(1))
    clean = sc == CFG.s_cond
    assert clean.float().mean().item() == pytest.approx(0.5, abs=0.03)
    assert sc.max().item() <= CFG.context_sigma_max + 1e-6
    assert (noisy[clean] / CFG.s_cond).std().item() == pytest.approx(1.0, rel=0.05)
    off = EDMConfig(context_noise_prob=0.0)
    noisy, sc = train_context(ctx, off, torch.Generator().manual_seed(1))
    assert torch.all(sc == off.s_cond)
    assert noisy.std().item() == pytest.approx(off.s_cond, rel=0.05)


# --- loss, denoise and sampler ------------------------------------------------------------------------

class RecordingModel(nn.Module):
    """F ≡ 0, recording what EDM passes in."""

    def __init__(self) -> None:
        super().__init__()
        self.calls: list[tuple[torch.Tensor, ...]] = []

    def forward(self, x_in, c_noise, context, actions, c_noise_cond):  # noqa: ANN001, ANN201
        self.calls.append((x_in, c_noise, context, actions, c_noise_cond))
        return torch.zeros_like(x_in)


def test_denoise_with_zero_network_is_c_skip_times_x() -> None:
    x = torch.randn(2, 4, 8, 8, dtype=torch.float64)
    ctx = torch.randn(2, 3, 4, 8, 8, dtype=torch.float64)
    a = torch.randn(2, 3, 2, dtype=torch.float64)
    model = RecordingModel()
    d = denoise(model, x, 0.5, ctx, a, CFG)
    torch.testing.assert_close(d, 0.5 * x)  # c_skip(0.5) = 0.25 / 0.5
    d = denoise(model, x, 1.0, ctx, a, CFG)
    torch.testing.assert_close(d, 0.2 * x)  # 0.25 / 1.25
    # what the network saw: c_in·x, ln σ / 4, the context scaled by 1/sqrt(s_cond² + σ_d²), ln(s_cond)/4
    x_in, c_noise, ctx_in, a_in, c_cond = model.calls[-1]
    torch.testing.assert_close(x_in, x / math.sqrt(1.25))
    torch.testing.assert_close(c_noise, torch.zeros(2, dtype=torch.float64))
    torch.testing.assert_close(ctx_in, ctx / math.sqrt(0.005**2 + 0.25))
    torch.testing.assert_close(c_cond, torch.full((2,), math.log(0.005) / 4, dtype=torch.float64))
    assert torch.equal(a_in, a)


def test_training_target_is_zero_for_the_exact_denoiser_of_a_point_mass() -> None:
    """Data ≡ 0: the ideal D is 0, i.e. F = −c_skip·x_noisy / c_out = −(σ_d/σ)·x_in; the loss must vanish."""

    def ideal(x_in, c_noise, context, actions, c_noise_cond):  # noqa: ANN001, ANN202
        sigma = (4 * c_noise).exp()
        return -(0.5 / sigma)[:, None, None, None] * x_in

    x0 = torch.zeros(64, 4, 8, 8, dtype=torch.float64)
    loss, metrics = edm_training_loss(ideal, x0, torch.zeros(64, 2, 4, 8, 8, dtype=torch.float64),
                                      torch.zeros(64, 2, 3, dtype=torch.float64), CFG, torch.Generator().manual_seed(0))
    assert loss.item() < 1e-20 and metrics["edm/x0_mse"] < 1e-20
    # and a zero network gets the EDM loss scale (about 1 per element for data of std σ_data)
    x0 = 0.5 * torch.randn(4096, 1, 2, 2, generator=torch.Generator().manual_seed(1))
    loss, _ = edm_training_loss(RecordingModel(), x0, torch.zeros(4096, 1, 1, 2, 2), torch.zeros(4096, 1, 1), CFG,
                                torch.Generator().manual_seed(2))
    assert 0.7 < loss.item() < 1.3


def _random_model(cfg: DenoiserConfig, seed: int = 0) -> LatentDenoiser:
    torch.manual_seed(seed)
    model = LatentDenoiser(cfg)
    with torch.no_grad():
        for p in model.parameters():  # undo the zero-inits so outputs depend on every input
            p.add_(0.05 * torch.randn_like(p))
    return model.eval()


def _inputs(cfg: DenoiserConfig, b: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    c, s = cfg.latent_channels, cfg.latent_size
    return (torch.randn(b, cfg.context_len, c, s, s, generator=g),
            torch.rand(b, cfg.context_len, cfg.action_dim, generator=g) * 2 - 1)


SMALL = DenoiserConfig(latent_channels=4, latent_size=8, context_len=2, action_dim=2, channels=16, num_blocks=1,
                       cond_dim=32)


@pytest.mark.parametrize("cfg", [CFG, WARM], ids=["pure-noise", "warm-start"])
def test_euler_sample_is_deterministic_given_the_generator_seed(cfg: EDMConfig) -> None:
    model = _random_model(SMALL)
    ctx, act = _inputs(SMALL, 5)
    with torch.no_grad():
        a = euler_sample(model, ctx, act, cfg, torch.Generator().manual_seed(7))
        b = euler_sample(model, ctx, act, cfg, torch.Generator().manual_seed(7))
        c = euler_sample(model, ctx, act, cfg, torch.Generator().manual_seed(8))
    assert torch.equal(a, b)
    assert not torch.allclose(a, c)
    # explicit noise: the generator no longer matters
    eps, ctx_eps = torch.randn(5, 4, 8, 8), torch.randn(5, 2, 4, 8, 8)
    with torch.no_grad():
        d = euler_sample(model, ctx, act, cfg, torch.Generator().manual_seed(1), noise=eps, context_noise=ctx_eps)
        e = euler_sample(model, ctx, act, cfg, torch.Generator().manual_seed(2), noise=eps, context_noise=ctx_eps)
    assert torch.equal(d, e)
    # draw order: initial noise, then context noise, from the same generator
    g = torch.Generator().manual_seed(7)
    eps, ctx_eps = torch.randn(5, 4, 8, 8, generator=g), torch.randn(5, 2, 4, 8, 8, generator=g)
    with torch.no_grad():
        f = euler_sample(model, ctx, act, cfg, None, noise=eps, context_noise=ctx_eps)
    assert torch.equal(a, f)


def test_motion_weights_hand_computed() -> None:
    x0 = torch.tensor([[[[1.0, 0.0], [0.0, 0.0]]]])  # (1, 1, 2, 2): one element moved by 1
    last = torch.zeros_like(x0)
    w = motion_weights(x0, last, strength=1.0, eps=0.0)
    # raw 1 + |Δ|/mean|Δ| = [5, 1, 1, 1], renormalised to mean 1: [2.5, 0.5, 0.5, 0.5]
    torch.testing.assert_close(w, torch.tensor([[[[2.5, 0.5], [0.5, 0.5]]]]))
    assert torch.equal(motion_weights(x0, last, 0.0), torch.ones_like(x0))
    with pytest.raises(ValueError, match="motion_weight"):
        EDMConfig(motion_weight=-1.0)


def test_motion_weighted_loss_equals_plain_loss_on_a_static_scene() -> None:
    """Nothing moves (target = last context latent): the weights are all ones and the loss is unchanged."""
    model = _random_model(SMALL)
    ctx, act = _inputs(SMALL, 3)
    x0 = ctx[:, -1].clone()
    plain, _ = edm_training_loss(model, x0, ctx, act, CFG, torch.Generator().manual_seed(0))
    weighted, _ = edm_training_loss(model, x0, ctx, act, replace(CFG, motion_weight=3.0),
                                    torch.Generator().manual_seed(0))
    torch.testing.assert_close(weighted, plain)


def test_euler_sample_bf16_runs_the_network_in_bf16_and_the_updates_in_float32() -> None:
    """``bf16=True``: float32 result close to the float32 sampler, deterministic, network calls in bf16."""
    model = _random_model(SMALL)
    seen: list[torch.dtype] = []
    model.register_forward_hook(lambda m, i, o: seen.append(o.dtype))
    ctx, act = _inputs(SMALL, 4)
    eps, ctx_eps = torch.randn(4, 4, 8, 8), torch.randn(4, 2, 4, 8, 8)
    with torch.no_grad():
        ref = euler_sample(model, ctx, act, CFG, noise=eps, context_noise=ctx_eps)
        a = euler_sample(model, ctx, act, CFG, noise=eps, context_noise=ctx_eps, bf16=True)
        b = euler_sample(model, ctx, act, CFG, noise=eps, context_noise=ctx_eps, bf16=True)
    assert seen == [torch.float32] * CFG.num_steps + [torch.bfloat16] * (2 * CFG.num_steps)
    assert a.dtype == torch.float32 and torch.equal(a, b)
    assert not torch.equal(a, ref)
    torch.testing.assert_close(a, ref, atol=0.05 * ref.abs().max().item(), rtol=0.05)


def test_euler_sample_walks_the_schedule_with_a_zero_network() -> None:
    model = RecordingModel()
    ctx, act = torch.zeros(3, 2, 4, 8, 8), torch.zeros(3, 2, 2)
    eps = torch.randn(3, 4, 8, 8)
    out = euler_sample(model, ctx, act, CFG, noise=eps, num_steps=2)
    sig = sampling_sigmas(CFG, 2)
    assert len(model.calls) == 2
    c_skip = lambda s: 0.25 / (s**2 + 0.25)  # noqa: E731
    # step 1 at σ0: D = c_skip·x; x1 = D + (x − D)·σ1/σ0; step 2 returns D(x1) = c_skip(σ1)·x1
    x = eps * sig[0]
    d = c_skip(sig[0]) * x
    x1 = d + (x - d) * sig[1] / sig[0]
    torch.testing.assert_close(out, c_skip(sig[1]) * x1)
    torch.testing.assert_close(model.calls[0][1], torch.full((3,), math.log(5.0) / 4))


def test_gradients_flow_through_the_sampler() -> None:
    model = _random_model(SMALL)
    ctx, act = _inputs(SMALL, 2)
    act = act.clone().requires_grad_(True)
    out = euler_sample(model, ctx, act, CFG, torch.Generator().manual_seed(0))
    out.square().sum().backward()
    assert act.grad is not None and act.grad.abs().sum().item() > 0


# --- the network ---------------------------------------------------------------------------------------

@pytest.mark.parametrize("cfg", [
    SMALL,
    DenoiserConfig(latent_channels=4, latent_size=16, context_len=4, action_dim=3, channels=16, num_blocks=1,
                   cond_dim=32, patch_size=2),
    DenoiserConfig(latent_channels=4, latent_size=16, context_len=4, action_dim=3, channels=16, num_blocks=2,
                   cond_dim=32, action_planes=False),
])
def test_denoiser_shapes_and_bf16_autocast(cfg: DenoiserConfig) -> None:
    model = _random_model(cfg)
    ctx, act = _inputs(cfg, 3)
    x = torch.randn(3, *cfg.latent_shape)
    c_noise, c_cond = torch.randn(3), torch.randn(3)
    with torch.no_grad():
        out = model(x, c_noise, ctx, act, c_cond)
        assert out.shape == x.shape and out.dtype == torch.float32 and out.is_contiguous()
        with torch.autocast("cpu", dtype=torch.bfloat16):
            out16 = model(x, c_noise, ctx, act, c_cond)
            sample = euler_sample(model, ctx, act, CFG, torch.Generator().manual_seed(0))
    assert out16.shape == x.shape and out16.dtype == torch.bfloat16
    assert torch.isfinite(out16).all()
    torch.testing.assert_close(out16.float(), out, atol=0.1 * out.abs().max().item(), rtol=0.05)
    assert sample.shape == x.shape and sample.dtype == torch.float32
    assert model.count_params() == sum(p.numel() for p in model.parameters())


def test_denoiser_output_starts_at_zero_and_rejects_bad_shapes() -> None:
    torch.manual_seed(0)
    model = LatentDenoiser(SMALL)
    ctx, act = _inputs(SMALL, 2)
    x = torch.randn(2, *SMALL.latent_shape)
    assert torch.equal(model(x, torch.zeros(2), ctx, act, torch.zeros(2)), torch.zeros_like(x))
    with pytest.raises(ValueError, match="context"):
        model(x, torch.zeros(2), ctx[:, :1], act, torch.zeros(2))
    with pytest.raises(ValueError, match="actions"):
        model(x, torch.zeros(2), ctx, act[..., :1], torch.zeros(2))
    with pytest.raises(ValueError):
        DenoiserConfig(latent_size=8, patch_size=3)


def test_point_planes_by_hand() -> None:
    """A point at (x, y) = (0.5, 0.3) of an 8×8 grid: cell (row i, column j) has centre ((j + 0.5)/8, (i + 0.5)/8),
    so its offset is (j + 0.5 − 4, i + 0.5 − 2.4) cells and the bump exp(−|offset|²/2)."""
    planes = point_planes(torch.tensor([[[0.5, 0.3]]]), 8)
    assert planes.shape == (1, 3, 8, 8)
    i, j = 3, 5
    dx, dy = j + 0.5 - 4.0, i + 0.5 - 2.4
    assert planes[0, 0, i, j].item() == pytest.approx(dx, abs=1e-5)
    assert planes[0, 1, i, j].item() == pytest.approx(dy, abs=1e-5)
    assert planes[0, 2, i, j].item() == pytest.approx(math.exp(-(dx * dx + dy * dy) / 2), abs=1e-6)
    assert divmod(int(planes[0, 2].argmax()), 8) == (2, 3)  # the cell under the point: row 2, column 3


def test_state_guided_denoiser_warm_starts_as_the_unguided_one_and_names_bad_inputs() -> None:
    torch.manual_seed(0)
    guided_cfg = replace(SMALL, state_dim=6, state_points=((0, 1), (2, 3)))
    assert guided_cfg.state_planes == 2 * 6 + 2 * 3 * 2
    plain, guided = LatentDenoiser(SMALL), LatentDenoiser(guided_cfg)
    for p in plain.parameters():
        nn.init.normal_(p, std=0.1)
    guided.load_unguided(plain.state_dict())
    ctx, act = _inputs(SMALL, 3)
    x, c_noise, state = torch.randn(3, *SMALL.latent_shape), torch.randn(3), torch.rand(3, 2, 6)
    torch.testing.assert_close(guided(x, c_noise, ctx, act, state=state), plain(x, c_noise, ctx, act))
    # the states reach the output once the new weights move off zero
    nn.init.normal_(guided.state_proj.weight, std=0.1)
    other = torch.rand(3, 2, 6)
    assert not torch.allclose(guided(x, c_noise, ctx, act, state=state), guided(x, c_noise, ctx, act, state=other))
    with pytest.raises(ValueError, match=r"expects state \(B, 2, 6\)"):
        guided(x, c_noise, ctx, act)
    with pytest.raises(ValueError, match="no state guidance"):
        plain(x, c_noise, ctx, act, state=state)
    with pytest.raises(ValueError, match="no state guidance; use load_state_dict"):
        plain.load_unguided(plain.state_dict())
    with pytest.raises(ValueError, match="state_points pair two indices below"):
        DenoiserConfig(state_dim=2, state_points=((0, 2),))
    assert config_from_dict(DenoiserConfig, config_to_dict(guided_cfg)) == guided_cfg


def test_withheld_context_leaves_the_state_as_the_only_clue() -> None:
    """``withhold_context``: the output does not depend on the context latents (it is the output for zero
    context), still depends on the state; without state guidance the option is refused by name."""
    torch.manual_seed(0)
    cfg = replace(SMALL, state_dim=6, state_points=((0, 1), (2, 3)), withhold_context=True)
    net, seeing = LatentDenoiser(cfg), LatentDenoiser(replace(cfg, withhold_context=False))
    for p in net.parameters():
        nn.init.normal_(p, std=0.1)
    seeing.load_state_dict(net.state_dict())
    ctx, act = _inputs(SMALL, 3)
    x, c_noise, state = torch.randn(3, *SMALL.latent_shape), torch.randn(3), torch.rand(3, 2, 6)
    out = net(x, c_noise, ctx, act, state=state)
    torch.testing.assert_close(out, net(x, c_noise, torch.randn_like(ctx), act, state=state))
    torch.testing.assert_close(out, seeing(x, c_noise, torch.zeros_like(ctx), act, state=state))
    assert not torch.allclose(out, seeing(x, c_noise, ctx, act, state=state))
    assert not torch.allclose(out, net(x, c_noise, ctx, act, state=torch.rand(3, 2, 6)))
    with pytest.raises(ValueError, match="withhold_context needs state guidance"):
        replace(SMALL, withhold_context=True)


def test_configs_round_trip_through_json_dicts() -> None:
    for cfg in (DenoiserConfig(), EDMConfig(), SMALL, EDMConfig(num_steps=1, sigma_offset_noise=0.3)):
        assert config_from_dict(type(cfg), config_to_dict(cfg)) == cfg


def test_tiny_denoiser_overfits_a_linear_latent_dynamics() -> None:
    """32 sequences whose next latent is a fixed linear map of the context and actions: the training
    loss (on fixed noise draws) falls by at least 5× in 200 Adam steps (≈25× observed), a 2-step sample
    lands well within the data's spread of the true next latent, and beats a 1-step sample (the 2-step
    schedule [5, 0.283, 0] does real work). Context-noise augmentation is off here: it makes the target
    unpredictable from the context and would put an irreducible floor under this loss."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny ops: one thread is as fast, and robust to a busy machine
    try:
        _overfit_linear_dynamics()
    finally:
        torch.set_num_threads(threads)


def _overfit_linear_dynamics() -> None:
    torch.manual_seed(0)
    edm = EDMConfig(context_noise_prob=0.0)
    cfg = DenoiserConfig(latent_channels=4, latent_size=8, context_len=4, action_dim=2, channels=32, num_blocks=2,
                         cond_dim=64)
    g = torch.Generator().manual_seed(0)
    n = 32
    ctx = torch.randn(n, 4, 4, 8, 8, generator=g)
    act = torch.rand(n, 4, 2, generator=g) * 2 - 1
    w_ctx = torch.tensor([0.1, 0.2, 0.3, 0.6])
    w_act = torch.randn(2, 4, generator=g) * 0.5
    target = torch.einsum("l,blchw->bchw", w_ctx, ctx) + (act[:, -1] @ w_act)[:, :, None, None]
    data_std = target.std().item()
    model = LatentDenoiser(cfg)
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)

    def eval_loss() -> float:
        with torch.no_grad():
            return sum(edm_training_loss(model, target, ctx, act, edm, torch.Generator().manual_seed(100 + k))[0].item()
                       for k in range(8)) / 8

    before = eval_loss()
    train_gen = torch.Generator().manual_seed(1)
    for _ in range(200):
        loss, _ = edm_training_loss(model, target, ctx, act, edm, train_gen)
        opt.zero_grad()
        loss.backward()
        opt.step()
    after = eval_loss()
    assert after < before / 5, (before, after)
    model.eval()
    rmse = {}
    with torch.no_grad():
        for steps in (1, 2):
            sample = euler_sample(model, ctx, act, edm, torch.Generator().manual_seed(3), num_steps=steps)
            rmse[steps] = (sample - target).square().mean().sqrt().item()
    assert rmse[2] < 0.2 * data_std, (rmse, data_std)
    assert rmse[2] < 0.8 * rmse[1], rmse


def test_rollout_context_replaces_the_last_k_context_latents_with_chained_samples() -> None:
    """Sample i's positions T-1-k_i .. T-2 become euler_sample outputs chained from the real frames before
    them; everything else (the target, samples with k = 0) stays real, and the draws are seeded."""
    from fog_envs.wm.edm import rollout_context

    cfg = EDMConfig(num_steps=2)
    torch.manual_seed(0)
    model = LatentDenoiser(DenoiserConfig(latent_channels=2, latent_size=4, context_len=2, action_dim=2,
                                          channels=8, num_blocks=1, cond_dim=16))
    with torch.no_grad():  # a non-zero network (its last layer starts at zero)
        for p in model.parameters():
            p.add_(0.05 * torch.randn_like(p))
    L, K = 2, 3
    lat = torch.randn(3, L + K + 1, 2, 4, 4)
    act = torch.rand(3, L + K + 1, 2) * 2 - 1
    k = torch.tensor([0, 1, 3])
    out = rollout_context(model, lat, act, k, L, cfg, torch.Generator().manual_seed(4))
    torch.testing.assert_close(out[0], lat[0])
    torch.testing.assert_close(out[:, -1], lat[:, -1])
    torch.testing.assert_close(out[1, :-2], lat[1, :-2])
    assert not torch.allclose(out[1, -2], lat[1, -2])
    torch.testing.assert_close(out[2, :L + K - 3], lat[2, :L + K - 3])
    # one sample by hand: three chained samples, each from the two latents before it, same draws in order
    g = torch.Generator().manual_seed(4)
    seq = lat[2:3].clone()
    with torch.no_grad():
        for pos in range(L + K - 3, L + K):
            seq[:, pos] = euler_sample(model, seq[:, pos - L:pos], act[2:3, pos - L:pos], cfg, g)
    single = rollout_context(model, lat[2:3], act[2:3], k[2:], L, cfg, torch.Generator().manual_seed(4))
    torch.testing.assert_close(single, seq, rtol=0, atol=0)
    again = rollout_context(model, lat, act, k, L, cfg, torch.Generator().manual_seed(4))
    torch.testing.assert_close(again, out, rtol=0, atol=0)
    with pytest.raises(ValueError, match="do not fit"):
        rollout_context(model, lat, act, torch.tensor([0, 0, 4]), L, cfg)


# --- delta parameterisation ----------------------------------------------------------------------------

DELTA = replace(CFG, predict_delta=True, delta_scale=0.4)


def test_delta_targets_hand_computed_and_inverse() -> None:
    ctx = torch.zeros(1, 2, 1, 1, 2)
    ctx[0, -1, 0, 0] = torch.tensor([1.0, -2.0])
    x_next = torch.tensor([[[[1.2, -1.0]]]])
    torch.testing.assert_close(to_target(x_next, ctx, DELTA), torch.tensor([[[[0.5, 2.5]]]]))  # (Δ) / 0.4
    torch.testing.assert_close(from_target(to_target(x_next, ctx, DELTA), ctx, DELTA), x_next)
    assert to_target(x_next, ctx, CFG) is x_next and from_target(x_next, ctx, CFG) is x_next
    with pytest.raises(ValueError, match="delta_scale"):
        EDMConfig(predict_delta=True, delta_scale=0.0)


def test_delta_sampler_adds_the_scaled_chain_to_the_clean_last_context_latent() -> None:
    """Same network, same draws: the delta sample is ``z_t + scale·(plain chain)``, with ``z_t`` before the
    sampler's context noise; and a chain that returns zero reproduces the last latent exactly."""
    model = _random_model(SMALL)
    ctx, act = _inputs(SMALL, 3)
    eps, ctx_eps = torch.randn(3, 4, 8, 8), torch.randn(3, 2, 4, 8, 8)
    with torch.no_grad():
        plain = euler_sample(model, ctx, act, CFG, noise=eps, context_noise=ctx_eps)
        delta = euler_sample(model, ctx, act, DELTA, noise=eps, context_noise=ctx_eps)
    torch.testing.assert_close(delta, ctx[:, -1] + 0.4 * plain)

    def still(x_in, c_noise, context_in, actions, c_cond):  # F with D(x; σ) = 0 at every σ
        sigma = (4 * c_noise).exp()
        c_in, c_skip, c_out, _ = preconditioners(sigma, CFG)
        x = x_in / c_in.reshape(-1, 1, 1, 1)
        return -(c_skip / c_out).reshape(-1, 1, 1, 1) * x

    with torch.no_grad():
        out = euler_sample(still, ctx, act, DELTA, torch.Generator().manual_seed(0))
    torch.testing.assert_close(out, ctx[:, -1])


def test_delta_training_loss_is_the_plain_loss_on_the_scaled_change() -> None:
    model = _random_model(SMALL)
    ctx, act = _inputs(SMALL, 4)
    x0 = torch.randn(4, 4, 8, 8)
    delta, _ = edm_training_loss(model, x0, ctx, act, DELTA, torch.Generator().manual_seed(3))
    plain, _ = edm_training_loss(model, (x0 - ctx[:, -1]) / 0.4, ctx, act, CFG, torch.Generator().manual_seed(3))
    torch.testing.assert_close(delta, plain)
    # motion weights still read the latents, not the scaled change: a static scene weighs all ones
    still = ctx[:, -1].clone()
    a, _ = edm_training_loss(model, still, ctx, act, DELTA, torch.Generator().manual_seed(3))
    b, _ = edm_training_loss(model, still, ctx, act, replace(DELTA, motion_weight=3.0), torch.Generator().manual_seed(3))
    torch.testing.assert_close(a, b)


# --- warm start (start_sigma) --------------------------------------------------------------------------


def test_warm_start_schedule_runs_from_start_sigma() -> None:
    torch.testing.assert_close(sampling_sigmas(WARM, 2), karras_sigmas(3, 2e-3, 0.5, 7.0)[[0, 1, 3]])
    torch.testing.assert_close(sampling_sigmas(WARM, 1), torch.tensor([0.5, 0.0]))


def test_warm_start_chain_starts_at_the_noised_last_latent() -> None:
    """Zero network (D = c_skip·x), one step at σs: ``c_skip(σs)·(z_t + σs·ε)`` by hand; with delta targets
    the start is the zero change, so the sample is ``z_t + scale·c_skip(σs)·σs·ε``."""
    model = RecordingModel()
    ctx, act = torch.randn(3, 2, 4, 8, 8), torch.zeros(3, 2, 2)
    eps = torch.randn(3, 4, 8, 8)
    c_skip = lambda s: 0.25 / (s**2 + 0.25)  # noqa: E731
    out = euler_sample(model, ctx, act, WARM, noise=eps, num_steps=1)
    torch.testing.assert_close(out, c_skip(0.5) * (ctx[:, -1] + 0.5 * eps))
    torch.testing.assert_close(model.calls[0][1], torch.full((3,), math.log(0.5) / 4))
    delta = replace(WARM, predict_delta=True, delta_scale=0.4)
    out = euler_sample(model, ctx, act, delta, noise=eps, num_steps=1)
    torch.testing.assert_close(out, ctx[:, -1] + 0.4 * c_skip(0.5) * 0.5 * eps)


def test_warm_start_bad_values_are_named() -> None:
    for bad in (-1.0, 1e-3):
        with pytest.raises(ValueError, match="start_sigma"):
            EDMConfig(start_sigma=bad)


def test_warm_start_training_samples_start_from_the_noised_last_latent() -> None:
    """start_prob 1: every sample is at σ = start_sigma, its input is the last context latent plus noise
    (the same whatever the target, under the same seed), and the loss is the EDM loss on that input by hand."""
    cfg = replace(WARM, start_prob=1.0, context_noise_prob=0.0)
    ctx, act = torch.randn(4, 2, 4, 8, 8), torch.zeros(4, 2, 2)
    inputs, losses = [], []
    for x0 in (torch.randn(4, 4, 8, 8), torch.randn(4, 4, 8, 8)):
        model = RecordingModel()
        loss, _ = edm_training_loss(model, x0, ctx, act, cfg, torch.Generator().manual_seed(1))
        x_in, c_noise = model.calls[0][0], model.calls[0][1]
        torch.testing.assert_close(c_noise, torch.full((4,), math.log(0.5) / 4))
        c_in, c_skip, c_out, _ = preconditioners(torch.tensor(0.5), cfg)
        x = x_in / c_in
        inputs.append(x)
        torch.testing.assert_close(loss, ((x0 - c_skip * x) / c_out).square().mean())
    torch.testing.assert_close(inputs[0], inputs[1])
    assert 0.4 < float((inputs[0] - ctx[:, -1]).std()) < 0.6  # the start's noise is σ = 0.5
    with pytest.raises(ValueError, match="needs start_sigma > 0"):  # no warm start to train from
        edm_training_loss(RecordingModel(), ctx[:, -1], ctx, act, EDMConfig(start_prob=0.5))
    with pytest.raises(ValueError, match="start_prob"):
        replace(WARM, start_prob=1.5)
