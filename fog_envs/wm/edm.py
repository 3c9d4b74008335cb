"""EDM diffusion maths for the global world model (the DIAMOND recipe), as pure functions.

The denoiser predicts the next latent ``z_{t+1}`` from the last ``L`` latents and actions. Following
Karras et al. (2022) and DIAMOND (Alonso et al., 2024), the network ``F`` is wrapped by the
preconditioning ``D(x; σ) = c_skip(σ)·x + c_out(σ)·F(c_in(σ)·x, c_noise(σ), context, actions)``, trained
with an MSE on ``F`` against ``(x0 − c_skip·x_noisy) / c_out`` at log-normally drawn σ, and sampled with a
few deterministic Euler steps on a Karras σ schedule.

A *model* here is any callable ``model(x_in, c_noise, context_in, actions, c_noise_cond) -> F`` with
``x_in`` (B, C, h, w), ``c_noise`` (B,), ``context_in`` (B, L, C, h, w), ``actions`` (B, L, A) and
``c_noise_cond`` (B,) (the embedded noise level of the context, see below); :class:`LatentDenoiser` is one.
Functions that take ``state`` (B, 2, S) (the physical states of the last context frame and of the generated
one, for a state-guided denoiser) pass it on as the keyword ``state=`` and only when it is given.

Choices that go beyond the letter of DIAMOND (all configurable in :class:`EDMConfig`):

* **Context-noise augmentation** (DIAMOND csgo's ``noise_previous_obs``): in training, each sample's
  context is noised w.p. ``context_noise_prob`` (default 0.5) with a σ_cond from the training log-normal,
  capped at ``context_sigma_max`` (default 0.2); the other samples, and every sample at sampling time,
  get σ_cond = ``s_cond`` (0.005). The network sees ``c_noise_cond = ln(σ_cond)/4`` and the context
  scaled by ``1/sqrt(σ_cond² + σ_data²)`` (≈ DIAMOND's ``context/σ_data`` at small σ_cond).
  Why not DIAMOND's "always noise" (prob 1): with the log-normal capped (or not), almost no training
  sample has a context as clean as at sampling time, so the sampler conditions the network on a noise
  level it never saw. On real Push-T latents (1,500 training steps, held-out windows, relative MSE of
  the next latent; copying the last latent scores 0.038) prob 1 with cap 0.5 or 0.1 gave 0.074–0.094
  at one step, no augmentation 0.038–0.043, and prob 0.5 with cap 0.2 0.041–0.044 at one step and the
  lowest 8-step rollout error (0.26 vs 0.29–0.37).
* **Offset noise** (``sigma_offset_noise``, default 0): training adds a per-(sample, channel) constant
  ``σ_off·N(0,1)`` to the noisy target (and to augmented contexts), and every conditioner uses the
  effective ``σ_eff = sqrt(σ² + σ_off²)``, training and sampling alike, as DIAMOND does.
* **Delta parameterisation** (``predict_delta``, default off): the chain denoises the scaled change
  from the last context latent rather than the next latent. With DIAMOND's parameterisation every
  sample re-draws the whole scene from σ_max; at 1–2 NFE that costs the Push-T block its shape and angle
  within a few open-loop steps (held-out, v4 bundle: 31° median angle error at 4 steps where copying the
  last frame errs 8°). With deltas a still scene is the zero target. Measured on Push-T (README): the
  block keeps its shape (13° at 4 steps), but the agent hardly answers the action (0.6 px per full push
  vs 15), so it is not the shipped default.
* **Warm start** (``start_sigma``, default off; ``start_prob`` to train for it): the chain starts from the
  last context latent noised to σ = ``start_sigma`` instead of pure noise at ``sigma_max`` (SDEdit-style).
  Measured on Push-T (README): a still scene drifts half as much, but what is kept from the last frame
  includes the agent, which then hardly answers the action; training a fraction of samples from that
  start gives the action back without keeping the pushed block's shape. Not the shipped default.
* **Sampling schedule**: Karras' ρ-ramp always ends at ``sigma_min`` (2e-3), and a network evaluation at
  σ = 2e-3 is almost the identity (c_skip ≈ 1). With ``skip_sigma_min_step`` (default) an ``n``-step
  sample uses the first ``n`` values of the ``n+1``-point Karras ramp, then 0: 2 steps give
  σ = [5.0, 0.283, 0], i.e. DIAMOND's 3-step schedule [5.0, 0.283, 0.002, 0] without its last,
  near-identity evaluation. Without it, 2 steps would be [5.0, 0.002, 0] (effectively one step).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch
from torch import Tensor

from fog_envs.wm.loss_weights import motion_weights

#: ``model(x_in, c_noise, context_in, actions, c_noise_cond) -> F``
DenoiserFn = Callable[[Tensor, Tensor, Tensor, Tensor, Tensor], Tensor]


@dataclass(frozen=True)
class EDMConfig:
    """EDM preconditioning, training-noise distribution and sampler settings (DIAMOND's defaults)."""

    sigma_data: float = 0.5
    sigma_offset_noise: float = 0.0  #: DIAMOND: 0.3 (Atari pixels), 0.1 (CS:GO)
    # training σ ~ exp(N(train_loc, train_scale²)), clipped to [train_sigma_min, train_sigma_max]
    train_loc: float = -0.4
    train_scale: float = 1.2
    train_sigma_min: float = 2e-3
    train_sigma_max: float = 20.0
    # context-noise augmentation (see the module docstring)
    context_noise_prob: float = 0.5
    context_sigma_max: float = 0.2
    motion_weight: float = 0.0
    """training-loss weight on what moves: each latent element is weighted ``1 + motion_weight·|Δ|/mean|Δ|``
    (Δ = target − last context latent; weights renormalised to mean 1), so a small moving object (the
    Push-T agent: ~2 px of a 64×64 frame per step) is not drowned by the static background. 0: plain EDM"""
    contact_sampling: float = 0.0
    """training windows are drawn with probability ``∝ 1 + contact_sampling·m/mean(m)``, m the motion of the
    task's passive object (block, cube; probe units) into the target frame (``fog_envs.wm.stages.
    window_probabilities``), so the transitions where the agent pushes it are seen more often. 0: uniform"""
    rollout_prob: float = 0.0
    """fraction of training samples whose last ``k`` context latents (``k`` uniform in 1..``rollout_steps``)
    are the model's *own* samples, generated from the real frames before them with the real actions (no
    gradient): the model learns to predict the real next latent from a context that has drifted as it does
    in an open-loop rollout (exposure bias; "self-forcing"). 0: always real context, as DIAMOND trains"""
    rollout_steps: int = 4
    """the most context latents replaced by the model's own samples (training windows grow by this much)"""
    predict_delta: bool = False
    """denoise the scaled change ``(z_{t+1} − z_t) / delta_scale`` from the last (clean) context latent
    instead of ``z_{t+1}`` itself; samples are returned as ``z_t + delta_scale·x``. What does not move is then
    a zero target, which a one- or two-step sampler reproduces exactly instead of re-drawing it (see the
    module docstring). False: DIAMOND's parameterisation"""
    delta_scale: float = 1.0
    """the change's unit when ``predict_delta``: about ``std(Δz)/sigma_data`` puts it at the scale the σ
    schedule and preconditioning were tuned for (Push-T latents: std(Δz) = 0.19, so 0.4)"""
    s_cond: float = 0.005  #: context noise at sampling time (and for non-augmented training samples)
    # sampler: Karras schedule, Euler (order 1), no churn
    sigma_min: float = 2e-3
    sigma_max: float = 5.0
    rho: float = 7.0
    num_steps: int = 2  #: network evaluations (NFE) per generated latent
    skip_sigma_min_step: bool = True
    start_sigma: float = 0.0
    """> 0: start the chain from the last context latent noised to this σ (the schedule runs from here instead
    of ``sigma_max``), so what the model is sure of is kept from the last frame rather than re-drawn from
    pure noise (SDEdit-style). 0: DIAMOND's chain from ``sigma_max·ε``"""
    start_prob: float = 0.0
    """fraction of training samples whose noisy input is the warm start the sampler begins from (the last
    context latent noised to ``start_sigma``, at σ = ``start_sigma``) instead of the target noised: the
    network learns to move what the action moves from there rather than keep the last frame. Training
    needs ``start_sigma > 0`` (sampling may still start from pure noise). 0: plain EDM training"""

    def __post_init__(self) -> None:
        if self.sigma_data <= 0 or self.sigma_min <= 0 or self.sigma_max <= self.sigma_min:
            raise ValueError(f"EDMConfig: need sigma_data > 0 and 0 < sigma_min < sigma_max, got {self}")
        if not 0 < self.train_sigma_min < self.train_sigma_max:
            raise ValueError(f"EDMConfig: need 0 < train_sigma_min < train_sigma_max, got {self}")
        if not 0.0 <= self.context_noise_prob <= 1.0:
            raise ValueError(f"EDMConfig: context_noise_prob must be in [0, 1], got {self.context_noise_prob}")
        if self.num_steps < 1:
            raise ValueError(f"EDMConfig: num_steps must be >= 1, got {self.num_steps}")
        if self.motion_weight < 0:
            raise ValueError(f"EDMConfig: motion_weight must be >= 0, got {self.motion_weight}")
        if not self.contact_sampling >= 0:
            raise ValueError(f"EDMConfig: contact_sampling must be >= 0, got {self.contact_sampling}")
        if not 0.0 <= self.rollout_prob <= 1.0 or self.rollout_steps < 1:
            raise ValueError(f"EDMConfig: need rollout_prob in [0, 1] and rollout_steps >= 1, got "
                             f"{self.rollout_prob}, {self.rollout_steps}")
        if self.sigma_offset_noise < 0 or self.s_cond < 0:
            raise ValueError(f"EDMConfig: sigma_offset_noise and s_cond must be >= 0, got {self}")
        if not self.delta_scale > 0:
            raise ValueError(f"EDMConfig: delta_scale must be > 0, got {self.delta_scale}")
        if self.start_sigma != 0 and not self.sigma_min < self.start_sigma:
            raise ValueError(f"EDMConfig: start_sigma must be 0 (off) or > sigma_min, got {self.start_sigma}")
        if not 0.0 <= self.start_prob <= 1.0:
            raise ValueError(f"EDMConfig: start_prob must be in [0, 1], got {self.start_prob}")


def _expand(v: Tensor, like: Tensor) -> Tensor:
    """(B,) -> (B, 1, ..., 1) broadcastable against ``like``."""
    return v.reshape(v.shape + (1,) * (like.dim() - v.dim()))


def effective_sigma(sigma: Tensor, cfg: EDMConfig) -> Tensor:
    """``sqrt(σ² + σ_offset²)``: the noise level the conditioners see (σ itself when offset noise is off)."""
    if cfg.sigma_offset_noise == 0:
        return sigma
    return (sigma.square() + cfg.sigma_offset_noise ** 2).sqrt()


def preconditioners(sigma: Tensor, cfg: EDMConfig) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """``(c_in, c_skip, c_out, c_noise)`` at noise level(s) ``sigma`` (elementwise, same shape as ``sigma``)."""
    s = effective_sigma(sigma, cfg)
    sd2 = cfg.sigma_data ** 2
    var = s.square() + sd2
    c_in = var.rsqrt()
    c_skip = sd2 / var
    c_out = s * cfg.sigma_data * c_in
    c_noise = s.log() / 4
    return c_in, c_skip, c_out, c_noise


def karras_sigmas(num_steps: int, sigma_min: float, sigma_max: float, rho: float = 7.0,
                  device: torch.device | str | None = None, dtype: torch.dtype = torch.float32) -> Tensor:
    """Karras et al.'s schedule: ``num_steps`` σ from ``sigma_max`` down to ``sigma_min``, then a trailing 0."""
    if num_steps < 1:
        raise ValueError(f"num_steps must be >= 1, got {num_steps}")
    ramp = torch.linspace(0, 1, num_steps, dtype=torch.float64)  # [0.] when num_steps == 1
    lo, hi = sigma_min ** (1 / rho), sigma_max ** (1 / rho)
    sigmas = (hi + ramp * (lo - hi)) ** rho
    return torch.cat([sigmas, sigmas.new_zeros(1)]).to(device=device, dtype=dtype)


def sampling_sigmas(cfg: EDMConfig, num_steps: int | None = None, device: torch.device | str | None = None,
                    dtype: torch.dtype = torch.float32) -> Tensor:
    """The ``num_steps + 1`` σ values :func:`euler_sample` walks through (see ``skip_sigma_min_step``)."""
    n = cfg.num_steps if num_steps is None else int(num_steps)
    if n < 1:
        raise ValueError(f"num_steps must be >= 1, got {n}")
    top = cfg.start_sigma if cfg.start_sigma > 0 else cfg.sigma_max
    if not cfg.skip_sigma_min_step or n == 1:
        return karras_sigmas(n, cfg.sigma_min, top, cfg.rho, device, dtype)
    full = karras_sigmas(n + 1, cfg.sigma_min, top, cfg.rho, device, dtype)
    return torch.cat([full[:n], full[-1:]])


def _randn(shape: tuple[int, ...], generator: torch.Generator | None, like: Tensor) -> Tensor:
    return torch.randn(shape, generator=generator, device=like.device, dtype=like.dtype)


def to_target(x_next: Tensor, context: Tensor, cfg: EDMConfig) -> Tensor:
    """What the chain denoises for next latent ``x_next`` (B, C, h, w) after clean ``context`` (B, L, C, h, w):
    ``x_next`` itself, or ``(x_next − context[:, -1]) / delta_scale`` with ``cfg.predict_delta``."""
    if not cfg.predict_delta:
        return x_next
    return (x_next - context[:, -1].to(x_next.dtype)) / cfg.delta_scale


def from_target(x: Tensor, context: Tensor, cfg: EDMConfig) -> Tensor:
    """The inverse of :func:`to_target`: the next latent from the chain's output ``x``."""
    if not cfg.predict_delta:
        return x
    return context[:, -1].to(x.dtype) + cfg.delta_scale * x


def sample_train_sigma(batch: int, cfg: EDMConfig, generator: torch.Generator | None = None,
                       device: torch.device | str | None = None, dtype: torch.dtype = torch.float32,
                       max_sigma: float | None = None) -> Tensor:
    """``batch`` training σ ~ LogNormal(train_loc, train_scale), clipped to [train_sigma_min, max_sigma].

    ``max_sigma`` defaults to ``cfg.train_sigma_max``; ``device`` to the generator's device (else CPU).
    """
    if device is None:
        device = generator.device if generator is not None else "cpu"
    z = torch.randn(batch, generator=generator, device=device, dtype=dtype)
    hi = cfg.train_sigma_max if max_sigma is None else max_sigma
    return (z * cfg.train_scale + cfg.train_loc).exp().clamp(cfg.train_sigma_min, hi)


def add_noise(x: Tensor, sigma: Tensor, cfg: EDMConfig, generator: torch.Generator | None = None) -> Tensor:
    """``x + σ·N(0, 1)`` plus, if enabled, offset noise ``σ_off·N(0, 1)`` constant over the last two dims."""
    noisy = x + _expand(sigma, x) * _randn(tuple(x.shape), generator, x)
    if cfg.sigma_offset_noise > 0:
        noisy = noisy + cfg.sigma_offset_noise * _randn(tuple(x.shape[:-2]) + (1, 1), generator, x)
    return noisy


def _context_in(context: Tensor, sigma_cond: Tensor, cfg: EDMConfig) -> tuple[Tensor, Tensor]:
    """(context scaled by ``1/sqrt(σ_cond² + σ_data²)``, ``c_noise_cond = ln σ_cond / 4``)."""
    scale = (sigma_cond.square() + cfg.sigma_data ** 2).rsqrt()
    c_noise_cond = sigma_cond.clamp_min(cfg.train_sigma_min).log() / 4
    return context * _expand(scale, context), c_noise_cond


def train_context(context: Tensor, cfg: EDMConfig, generator: torch.Generator | None = None
                  ) -> tuple[Tensor, Tensor]:
    """Context-noise augmentation for training: ``(noisy context, sigma_cond)`` (see the module docstring)."""
    b = context.shape[0]
    sigma_cond = sample_train_sigma(b, cfg, generator, context.device, context.dtype,
                                    max_sigma=max(cfg.context_sigma_max, cfg.train_sigma_min))
    if cfg.context_noise_prob < 1.0:
        keep = torch.rand(b, generator=generator, device=context.device, dtype=context.dtype) < cfg.context_noise_prob
        sigma_cond = torch.where(keep, sigma_cond, torch.full_like(sigma_cond, cfg.s_cond))
    else:
        keep = None
    noisy = context + _expand(sigma_cond, context) * _randn(tuple(context.shape), generator, context)
    if cfg.sigma_offset_noise > 0:
        off = cfg.sigma_offset_noise * _randn(tuple(context.shape[:-2]) + (1, 1), generator, context)
        noisy = noisy + (off if keep is None else off * _expand(keep.to(context.dtype), context))
    return noisy, sigma_cond


def sample_context(context: Tensor, cfg: EDMConfig, generator: torch.Generator | None = None,
                   context_noise: Tensor | None = None) -> Tensor:
    """Sampling-time context ``context + s_cond·ε`` (ε drawn from ``generator``, or given as ``context_noise``)."""
    if cfg.s_cond == 0:
        return context
    eps = _randn(tuple(context.shape), generator, context) if context_noise is None else context_noise.to(context)
    return context + cfg.s_cond * eps


def network_output(model: DenoiserFn, x_noisy: Tensor, sigma: Tensor, context: Tensor, actions: Tensor,
                   cfg: EDMConfig, sigma_cond: Tensor | None = None, state: Tensor | None = None) -> Tensor:
    """``F(c_in·x_noisy, c_noise, context_in, actions, c_noise_cond)`` in ``x_noisy``'s dtype.

    ``sigma`` (B,) is the noise level of ``x_noisy``; ``context`` (B, L, C, h, w) is in data units, with
    noise level ``sigma_cond`` (B,) (default ``cfg.s_cond``, the sampling-time level).
    """
    if sigma_cond is None:
        sigma_cond = torch.full_like(sigma, cfg.s_cond)
    c_in, _, _, c_noise = preconditioners(sigma, cfg)
    context_in, c_noise_cond = _context_in(context, sigma_cond, cfg)
    extra = {} if state is None else {"state": state}
    out = model(_expand(c_in, x_noisy) * x_noisy, c_noise, context_in, actions, c_noise_cond, **extra)
    return out.to(x_noisy.dtype)


def _warm_start_samples(sigma: Tensor, x_noisy: Tensor, context: Tensor, cfg: EDMConfig,
                        generator: torch.Generator | None) -> tuple[Tensor, Tensor]:
    """Replace a ``cfg.start_prob`` fraction of ``(σ, x_noisy)`` by the sampler's warm start at ``start_sigma``."""
    if cfg.start_sigma <= 0:
        raise ValueError(f"EDMConfig: start_prob {cfg.start_prob} trains from the warm start, which needs "
                         f"start_sigma > 0 (got {cfg.start_sigma})")
    b = x_noisy.shape[0]
    pick = torch.rand(b, generator=generator, device=x_noisy.device, dtype=x_noisy.dtype) < cfg.start_prob
    start = add_noise(to_target(context[:, -1], context, cfg), torch.full_like(sigma, cfg.start_sigma), cfg, generator)
    sigma = torch.where(pick, torch.full_like(sigma, cfg.start_sigma), sigma)
    return sigma, torch.where(_expand(pick, x_noisy), start, x_noisy)


def edm_training_loss(model: DenoiserFn, x0: Tensor, context: Tensor, actions: Tensor, cfg: EDMConfig,
                      generator: torch.Generator | None = None,
                      state: Tensor | None = None) -> tuple[Tensor, dict[str, float]]:
    """Denoising loss on a batch: ``mean(w·(F − (x0 − c_skip·x_noisy)/c_out)²)`` at log-normal σ.

    ``x0`` (B, C, h, w) is the next latent (with ``cfg.predict_delta`` the chain's target is
    :func:`to_target` of it), ``context`` (B, L, C, h, w), ``actions`` (B, L, A); ``w`` is
    :func:`motion_weights` with ``cfg.motion_weight`` (all ones by default). With ``cfg.start_prob`` a
    fraction of the samples start from the sampler's warm start instead (see ``EDMConfig.start_prob``); their
    draws (a uniform per sample, then unit noise) follow all others.
    All noise comes from ``generator`` (the global RNG when None). The loss is computed in fp32 (or
    ``x0``'s dtype) even under autocast. Metrics: the loss, and ``x0_mse``, the implied mean squared error
    of the denoised estimate ``D`` in the chain's units (the ``c_out²``-weighted loss).
    """
    x0 = x0 if x0.is_floating_point() else x0.float()
    x_next = x0
    x0 = to_target(x0, context, cfg)
    sigma = sample_train_sigma(x0.shape[0], cfg, generator, x0.device, x0.dtype)
    x_noisy = add_noise(x0, sigma, cfg, generator)
    noisy_context, sigma_cond = train_context(context.to(x0.dtype), cfg, generator)
    if cfg.start_prob > 0:
        sigma, x_noisy = _warm_start_samples(sigma, x_noisy, context.to(x0.dtype), cfg, generator)
    _, c_skip, c_out, _ = preconditioners(sigma, cfg)
    target = (x0 - _expand(c_skip, x0) * x_noisy) / _expand(c_out, x0)
    out = network_output(model, x_noisy, sigma, noisy_context, actions.to(x0.dtype), cfg, sigma_cond, state)
    err = (out - target).square()
    if cfg.motion_weight > 0:
        err = err * motion_weights(x_next, context[:, -1].to(x0.dtype), cfg.motion_weight)
    loss = err.mean()
    with torch.no_grad():
        x0_mse = (err * _expand(c_out, x0).square()).mean()
    return loss, {"edm/loss": loss.item(), "edm/x0_mse": x0_mse.item()}


def denoise(model: DenoiserFn, x_noisy: Tensor, sigma: Tensor | float, context: Tensor, actions: Tensor,
            cfg: EDMConfig, sigma_cond: Tensor | float | None = None, state: Tensor | None = None) -> Tensor:
    """``D(x; σ) = c_skip·x + c_out·F(c_in·x, c_noise, context, actions)``: the clean-latent estimate.

    ``sigma`` is a scalar or (B,); ``context`` is in data units with noise level ``sigma_cond``
    (default ``cfg.s_cond``; the caller adds that noise, as :func:`euler_sample` does).
    """
    b = x_noisy.shape[0]
    sigma = torch.as_tensor(sigma, device=x_noisy.device, dtype=x_noisy.dtype).expand(b)
    if sigma_cond is not None:
        sigma_cond = torch.as_tensor(sigma_cond, device=x_noisy.device, dtype=x_noisy.dtype).expand(b)
    _, c_skip, c_out, _ = preconditioners(sigma, cfg)
    out = network_output(model, x_noisy, sigma, context, actions, cfg, sigma_cond, state)
    return _expand(c_skip, x_noisy) * x_noisy + _expand(c_out, x_noisy) * out


def euler_sample(model: DenoiserFn, context: Tensor, actions: Tensor, cfg: EDMConfig,
                 generator: torch.Generator | None = None, num_steps: int | None = None,
                 noise: Tensor | None = None, context_noise: Tensor | None = None, bf16: bool = False,
                 state: Tensor | None = None) -> Tensor:
    """Generate the next latent (B, C, h, w) with ``num_steps`` Euler steps (default ``cfg.num_steps``).

    ``context`` (B, L, C, h, w) holds clean latents, ``actions`` (B, L, A); with ``cfg.predict_delta`` the
    chain's result is added (scaled) to the last clean context latent (:func:`from_target`). Random draws,
    in order: the initial unit noise ε (B, C, h, w) (the chain starts at ``σ_max·ε``, or with
    ``cfg.start_sigma`` at ``to_target(last clean latent) + start_sigma·ε``), then the context noise
    ``s_cond·ε'`` (if ``s_cond > 0``), both from ``generator`` (the global RNG when None); pass ``noise``
    / ``context_noise`` to fix them (e.g. for finite differences). Deterministic given those draws.
    Gradients flow if the caller enables them (wrap in ``torch.no_grad()`` otherwise).

    ``bf16``: run each network call under bf16 autocast (≈2× faster convolutions on CPUs with AMX/AVX512-BF16);
    the preconditioning and the Euler updates stay in the context's dtype. ``state``: the states a
    state-guided denoiser is conditioned on (see the module docstring).
    """
    if context.dim() != 5 or actions.dim() != 3 or context.shape[:2] != actions.shape[:2]:
        raise ValueError(f"euler_sample: expected context (B, L, C, h, w) and actions (B, L, A), got "
                         f"{tuple(context.shape)} and {tuple(actions.shape)}")
    dtype = context.dtype if context.is_floating_point() else torch.float32
    context = context.to(dtype)
    shape = (context.shape[0],) + tuple(context.shape[2:])
    eps = _randn(shape, generator, context) if noise is None else noise.to(context)
    if tuple(eps.shape) != shape:
        raise ValueError(f"euler_sample: noise has shape {tuple(eps.shape)}, expected {shape}")
    clean = context
    context = sample_context(context, cfg, generator, context_noise)
    actions = actions.to(dtype)
    sigmas = sampling_sigmas(cfg, num_steps, device=context.device, dtype=dtype)
    x = eps * sigmas[0]
    if cfg.start_sigma > 0:
        x = x + to_target(clean[:, -1], clean, cfg)
    for i in range(len(sigmas) - 1):
        s, s_next = sigmas[i], sigmas[i + 1]
        if bf16:
            with torch.autocast(x.device.type, dtype=torch.bfloat16):
                x0_hat = denoise(model, x, s, context, actions, cfg, state=state)
            x0_hat = x0_hat.to(dtype)
        else:
            x0_hat = denoise(model, x, s, context, actions, cfg, state=state)
        # Euler step x + (s_next − s)·(x − D)/s, written so that s_next = 0 returns D exactly
        x = x0_hat if i == len(sigmas) - 2 else x0_hat + (x - x0_hat) * (s_next / s)
    return from_target(x, clean, cfg)


@torch.no_grad()
def rollout_context(model: DenoiserFn, latents: Tensor, actions: Tensor, generated: Tensor, context_len: int,
                    cfg: EDMConfig, generator: torch.Generator | None = None) -> Tensor:
    """Training windows whose context ends in the model's own samples (see ``EDMConfig.rollout_prob``).

    ``latents`` (B, T, C, h, w) and ``actions`` (B, T, A) are real windows with ``T = context_len + K + 1``;
    ``generated`` (B,) ints in 0..K. For sample i with ``k = generated[i]``, positions ``T-1-k .. T-2`` are
    replaced, one after the other, by :func:`euler_sample` (``cfg.num_steps``) from the ``context_len``
    latents before each (real, then already generated) and their real actions. Returns the windows with
    the replacements; the last position (the training target) and samples with ``k = 0`` stay real. Only
    the samples still generating are evaluated at each step: the cost is ``sum(k)`` samples, not ``B·K``.
    """
    total = latents.shape[1]
    k_max = int(generated.max()) if len(generated) else 0
    if k_max > total - 1 - context_len:
        raise ValueError(f"rollout_context: {k_max} generated steps do not fit windows of {total} with "
                         f"context {context_len}")
    seq = latents.clone()
    gen = generated.to(latents.device)
    for j in range(k_max, 0, -1):  # position T-1-j is generated for every sample with k >= j
        pos = total - 1 - j
        active = (gen >= j).nonzero().squeeze(1)
        ctx = seq[active, pos - context_len:pos]
        act = actions[active, pos - context_len:pos]
        seq[active, pos] = euler_sample(model, ctx, act, cfg, generator).to(seq.dtype)
    return seq


__all__ = [
    "DenoiserFn", "EDMConfig", "add_noise", "denoise", "edm_training_loss", "effective_sigma", "euler_sample",
    "from_target", "karras_sigmas", "network_output", "preconditioners", "rollout_context", "sample_context",
    "sample_train_sigma", "sampling_sigmas", "to_target", "train_context",
]
