"""A lean convolutional EDM denoiser for small latents (8×8 or 16×16), built for CPU speed.

Layout: the noisy latent, the ``L`` context latents and (optionally) the ``L`` actions as constant planes
are stacked on channels; an optional space-to-depth ``patch_size`` folds a 16×16 latent to 8×8; a 3×3
stem conv; ``num_blocks`` residual blocks at one resolution, each
``x + conv(SiLU(AdaLN(conv(SiLU(AdaLN(x))))))``; a zero-initialised 3×3 output conv (and depth-to-space).
No up/down-sampling: the default stem + 2 blocks + output conv (six 3×3 convs, receptive field 13)
already see the whole 8×8 map.

Conditioning vector (``cond_dim``): sinusoidal features of ``c_noise`` and of ``c_noise_cond`` (the
context's noise level), each through its own linear map, plus ``Linear(L·A → cond_dim)`` of the actions,
summed and passed through a 2-layer MLP; every block turns it into a per-channel scale and shift (FiLM).

State guidance (``state_dim`` > 0, off by default): the network also sees two physical states (the task's
probe targets) of the last context frame and of the frame it generates, ``state`` (B, 2, S): through
``Linear(2·S → cond_dim)`` into the conditioning vector, as constant input planes, and, for each
``state_points`` pair (x, y) that is a position on the frame (Push-T: the agent and the block, table units
= frame units / 512), as three planes on the latent grid: the offset of every cell centre from the point in
cells (x, y) and a Gaussian bump of one cell's width around it. A conv net cannot place an object at a
coordinate it only gets as a number; with the offsets it reads "where is the block" at every cell.
``silhouette`` (a task name, :mod:`fog_envs.wm.silhouette`) also draws the objects' silhouettes of both states on a
``silhouette_size`` grid, folded onto the latent grid by space-to-depth: the shape, not only the position.

Speed choices (measured in ``benchmarks/bench_denoiser.py``): activations are kept channels-last, where
oneDNN's bf16 3×3 conv runs at about the machine's bf16 matmul peak; normalisation is a per-position
LayerNorm over channels ("AdaLN", as in DiT), which is a contiguous last-dimension op in that layout
(GroupNorm is ~5× slower on channels-last CPU tensors). Runs under ``torch.autocast("cpu", bfloat16)``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from fog_envs.wm.silhouette import silhouette_count, silhouettes


@dataclass(frozen=True)
class DenoiserConfig:
    """Sizes of :class:`LatentDenoiser` (defaults: the CPU preset for 16×8×8 latents, Push-T actions)."""

    latent_channels: int = 16
    latent_size: int = 8
    context_len: int = 4
    action_dim: int = 2
    channels: int = 96  #: 96 × 2 blocks: ~12 ms per NFE at batch 64 (bf16, 2 cores), see the benchmark
    num_blocks: int = 2
    cond_dim: int = 256
    fourier_dim: int = 64  #: sinusoidal features per noise level
    patch_size: int = 1  #: space-to-depth factor at the input (2 turns a 16×16 latent into an 8×8 map)
    action_planes: bool = True  #: also feed the actions as constant input planes (cheap, direct)
    state_dim: int = 0
    """S > 0: condition on the physical states of the last context frame and of the generated one (module doc)"""
    state_points: tuple[tuple[int, int], ...] = ()
    """index pairs (x, y) of ``state`` that are positions on the frame in [0, 1] (x: column, y: row)"""
    withhold_context: bool = False
    """the network sees zeros in place of the context latents (shapes and API unchanged): it must draw the frame
    from the state guidance alone, a renderer of the state (needs ``state_dim`` > 0)"""
    silhouette: str = ""
    """a task whose objects' silhouettes (:mod:`fog_envs.wm.silhouette`) of both states are input planes ("": none;
    needs ``state_dim`` > 0)"""
    silhouette_size: int = 32  #: the silhouettes' grid (a multiple of ``latent_size``), folded onto the latent grid

    def __post_init__(self) -> None:
        if self.latent_size % self.patch_size:
            raise ValueError(f"DenoiserConfig: latent_size {self.latent_size} is not a multiple of "
                             f"patch_size {self.patch_size}")
        if min(self.latent_channels, self.latent_size, self.context_len, self.action_dim, self.channels,
               self.cond_dim, self.patch_size) < 1 or self.num_blocks < 0 or self.fourier_dim < 2:
            raise ValueError(f"DenoiserConfig: sizes must be positive, got {self}")
        if self.state_dim < 0 or any(len(p) != 2 or not all(0 <= i < self.state_dim for i in p)
                                     for p in self.state_points):
            raise ValueError(f"DenoiserConfig: state_dim must be >= 0 and every state_points pair two indices below "
                             f"it, got state_dim {self.state_dim}, state_points {self.state_points}")
        if self.withhold_context and not self.state_dim:
            raise ValueError("DenoiserConfig: withhold_context needs state guidance (state_dim > 0): without the "
                             "context the state is all the network has to draw from")
        if self.silhouette:
            silhouette_count(self.silhouette)
            if not self.state_dim:
                raise ValueError("DenoiserConfig: silhouette needs state guidance (state_dim > 0): the silhouettes "
                                 "are drawn from the states")
            if self.silhouette_size < self.latent_size or self.silhouette_size % self.latent_size:
                raise ValueError(f"DenoiserConfig: silhouette_size {self.silhouette_size} must be a multiple of "
                                 f"latent_size {self.latent_size}")

    @property
    def latent_shape(self) -> tuple[int, int, int]:
        return (self.latent_channels, self.latent_size, self.latent_size)

    @property
    def state_planes(self) -> int:
        """Input planes the state guidance adds: 2·S constant planes, 3 per point and state, and the silhouettes
        (per object and state, (silhouette_size / latent_size)² after space-to-depth)."""
        if not self.state_dim:
            return 0
        sil = (2 * silhouette_count(self.silhouette) * (self.silhouette_size // self.latent_size) ** 2
               if self.silhouette else 0)
        return 2 * self.state_dim + 2 * 3 * len(self.state_points) + sil


def point_planes(points: Tensor, size: int) -> Tensor:
    """(B, 3K, size, size) planes of K points ``points`` (B, K, 2) given as (x, y) in [0, 1] of the frame: for
    each, the offset of every cell centre from the point in cells (x then y) and ``exp(−d²/2)``, d that offset's
    length (a bump one cell wide)."""
    centres = (torch.arange(size, device=points.device, dtype=points.dtype) + 0.5) / size
    dx = (centres[None, None, None, :] - points[..., 0, None, None]) * size  # (B, K, 1, size): varies along columns
    dy = (centres[None, None, :, None] - points[..., 1, None, None]) * size  # (B, K, size, 1): varies along rows
    dx, dy = dx.expand(-1, -1, size, size), dy.expand(-1, -1, size, size)
    bump = torch.exp(-(dx.square() + dy.square()) / 2)
    return torch.stack([dx, dy, bump], 2).flatten(1, 2)


class FourierFeatures(nn.Module):
    """``[cos(2π f_k x), sin(2π f_k x)]`` with fixed log-spaced frequencies f_k from 1/8 to 32.

    ``c_noise = ln σ / 4`` spans about [−1.6, 0.8] for σ in [2e-3, 20]: the lowest frequency keeps the map
    monotone over that range, the highest resolves σ ratios of ~1.1.
    """

    def __init__(self, dim: int) -> None:
        super().__init__()
        half = dim // 2
        freqs = torch.logspace(math.log10(1 / 8), math.log10(32.0), half)
        self.register_buffer("freqs", 2 * math.pi * freqs, persistent=False)

    def forward(self, x: Tensor) -> Tensor:
        arg = x.float()[:, None] * self.freqs[None]
        return torch.cat([arg.cos(), arg.sin()], dim=1)


def ada_layer_norm(x: Tensor, scale: Tensor, shift: Tensor) -> Tensor:
    """LayerNorm over channels at each position of ``x`` (B, C, h, w), then ``(1 + scale)·x + shift``.

    ``scale``/``shift`` are (B, C). On a channels-last ``x`` the permutes are free views.
    """
    h = F.layer_norm(x.permute(0, 2, 3, 1), (x.shape[1],))
    return torch.addcmul(shift[:, None, None], h, 1 + scale[:, None, None]).permute(0, 3, 1, 2)


class ResBlock(nn.Module):
    """``x + conv(SiLU(AdaLN(conv(SiLU(AdaLN(x))))))`` with the second conv zero-initialised."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(channels, channels, 3, padding=1)
        self.conv2 = nn.Conv2d(channels, channels, 3, padding=1)
        nn.init.zeros_(self.conv2.weight)
        nn.init.zeros_(self.conv2.bias)

    def forward(self, x: Tensor, film: Tensor) -> Tensor:
        """``film`` (B, 2, 2, C): (scale, shift) of the two AdaLNs."""
        h = self.conv1(F.silu(ada_layer_norm(x, film[:, 0, 0], film[:, 0, 1])))
        h = self.conv2(F.silu(ada_layer_norm(h, film[:, 1, 0], film[:, 1, 1])))
        return x + h


class LatentDenoiser(nn.Module):
    """EDM inner network ``F(x_in, c_noise, context, actions, c_noise_cond)`` on (C, h, w) latents.

    Shapes: ``x_in`` (B, C, h, w), ``c_noise`` (B,), ``context`` (B, L, C, h, w), ``actions`` (B, L, A),
    ``c_noise_cond`` (B,) or None (None = ``ln(0.005)/4``, DIAMOND's sampling-time context noise).
    Returns F with ``x_in``'s shape, in NCHW-contiguous layout (bf16 under bf16 autocast).
    """

    def __init__(self, config: DenoiserConfig = DenoiserConfig()) -> None:
        super().__init__()
        self.config = cfg = config
        p2 = cfg.patch_size ** 2
        in_ch = (cfg.context_len + 1) * cfg.latent_channels + (cfg.context_len * cfg.action_dim
                                                               if cfg.action_planes else 0) + cfg.state_planes
        self.noise_fourier = FourierFeatures(cfg.fourier_dim)
        self.noise_proj = nn.Linear(cfg.fourier_dim // 2 * 2, cfg.cond_dim)
        self.cond_noise_proj = nn.Linear(cfg.fourier_dim // 2 * 2, cfg.cond_dim)
        self.action_proj = nn.Linear(cfg.context_len * cfg.action_dim, cfg.cond_dim)
        self.state_proj = nn.Linear(2 * cfg.state_dim, cfg.cond_dim) if cfg.state_dim else None
        self.cond_mlp = nn.Sequential(nn.SiLU(), nn.Linear(cfg.cond_dim, cfg.cond_dim), nn.SiLU(),
                                      nn.Linear(cfg.cond_dim, cfg.cond_dim), nn.SiLU())
        # every AdaLN's (scale, shift) from one matmul: 2 norms per block + the output norm
        self.film = nn.Linear(cfg.cond_dim, (2 * cfg.num_blocks + 1) * 2 * cfg.channels)
        nn.init.zeros_(self.film.weight)
        nn.init.zeros_(self.film.bias)
        self.stem = nn.Conv2d(in_ch * p2, cfg.channels, 3, padding=1)
        self.blocks = nn.ModuleList(ResBlock(cfg.channels) for _ in range(cfg.num_blocks))
        self.out_conv = nn.Conv2d(cfg.channels, cfg.latent_channels * p2, 3, padding=1)
        nn.init.zeros_(self.out_conv.weight)
        nn.init.zeros_(self.out_conv.bias)
        self.to(memory_format=torch.channels_last)

    def load_unguided(self, state_dict: dict[str, Tensor]) -> None:
        """Warm-start this state-guided denoiser from an unguided one's weights (same sizes otherwise): every
        shared tensor is copied, the stem's extra input channels (the state planes, appended last) and the
        state projection start at zero, so the network starts out computing exactly what the unguided one did."""
        if not self.config.state_dim:
            raise ValueError("load_unguided: this denoiser has no state guidance; use load_state_dict")
        own = self.state_dict()
        extra = sorted(set(state_dict) - set(own))
        if extra:
            raise ValueError(f"load_unguided: unexpected keys {extra}")
        grown = {}
        for key, value in own.items():
            if key.startswith("state_proj."):
                grown[key] = torch.zeros_like(value)
            elif key not in state_dict:
                raise ValueError(f"load_unguided: missing key {key!r}")
            elif key == "stem.weight" and state_dict[key].shape[1] < value.shape[1]:
                old = state_dict[key]
                if old.shape[0] != value.shape[0] or old.shape[2:] != value.shape[2:]:
                    raise ValueError(f"load_unguided: stem weight {tuple(old.shape)} does not fit {tuple(value.shape)}")
                w = torch.zeros_like(value)
                w[:, :old.shape[1]] = old
                grown[key] = w
            else:
                grown[key] = state_dict[key]
        self.load_state_dict(grown)

    def count_params(self) -> int:
        """Number of trainable parameters."""
        return sum(p.numel() for p in self.parameters() if p.requires_grad)

    def _check(self, x_in: Tensor, c_noise: Tensor, context: Tensor, actions: Tensor, state: Tensor | None) -> None:
        cfg = self.config
        b = x_in.shape[0]
        if cfg.state_dim and (state is None or tuple(state.shape) != (b, 2, cfg.state_dim)):
            raise ValueError(f"LatentDenoiser with state guidance expects state (B, 2, {cfg.state_dim}) (the last "
                             f"context frame's and the generated frame's), got "
                             f"{None if state is None else tuple(state.shape)}")
        if not cfg.state_dim and state is not None:
            raise ValueError("LatentDenoiser: state given, but this denoiser has no state guidance (state_dim 0)")
        lat = cfg.latent_shape
        ok = (tuple(x_in.shape[1:]) == lat and tuple(c_noise.shape) == (b,)
              and tuple(context.shape) == (b, cfg.context_len, *lat)
              and tuple(actions.shape) == (b, cfg.context_len, cfg.action_dim))
        if not ok:
            raise ValueError(
                f"LatentDenoiser expects x_in (B, {lat[0]}, {lat[1]}, {lat[2]}), c_noise (B,), context "
                f"(B, {cfg.context_len}, {lat[0]}, {lat[1]}, {lat[2]}), actions (B, {cfg.context_len}, "
                f"{cfg.action_dim}); got {tuple(x_in.shape)}, {tuple(c_noise.shape)}, "
                f"{tuple(context.shape)}, {tuple(actions.shape)}")

    def condition(self, c_noise: Tensor, actions: Tensor, c_noise_cond: Tensor | None,
                  state: Tensor | None = None) -> Tensor:
        """The conditioning vector (B, cond_dim) (SiLU-activated), from which every AdaLN is modulated."""
        if c_noise_cond is None:
            c_noise_cond = torch.full_like(c_noise, math.log(0.005) / 4)
        emb = (self.noise_proj(self.noise_fourier(c_noise)) + self.cond_noise_proj(self.noise_fourier(c_noise_cond))
               + self.action_proj(actions.flatten(1).to(self.action_proj.weight.dtype)))
        if self.state_proj is not None:
            emb = emb + self.state_proj(state.flatten(1).to(self.state_proj.weight.dtype))
        return self.cond_mlp(emb)

    def forward(self, x_in: Tensor, c_noise: Tensor, context: Tensor, actions: Tensor,
                c_noise_cond: Tensor | None = None, state: Tensor | None = None) -> Tensor:
        self._check(x_in, c_noise, context, actions, state)
        cfg = self.config
        b, _, h, w = x_in.shape
        film = self.film(self.condition(c_noise, actions, c_noise_cond, state)).unflatten(1, (-1, 2, cfg.channels))
        # assemble the input directly in channels-last layout: one copy, read straight from the inputs
        if cfg.withhold_context:
            context = torch.zeros_like(context)
        parts = [x_in.permute(0, 2, 3, 1), context.permute(0, 3, 4, 1, 2).flatten(3)]
        if cfg.action_planes:
            parts.append(actions.flatten(1).to(x_in.dtype)[:, None, None, :].expand(-1, h, w, -1))
        if cfg.state_dim:
            st = state.to(x_in.dtype)
            parts.append(st.flatten(1)[:, None, None, :].expand(-1, h, w, -1))
            if cfg.state_points:
                pts = st[:, :, [list(p) for p in cfg.state_points]].flatten(1, 2)  # (B, 2K, 2)
                parts.append(point_planes(pts, h).permute(0, 2, 3, 1))
            if cfg.silhouette:
                sil = silhouettes(cfg.silhouette, state.flatten(0, 1), cfg.silhouette_size)  # (2B, K, S, S)
                sil = F.pixel_unshuffle(sil, cfg.silhouette_size // h).unflatten(0, (b, 2)).flatten(1, 2)
                parts.append(sil.to(x_in.dtype).permute(0, 2, 3, 1))
        x = torch.cat(parts, dim=3).permute(0, 3, 1, 2)
        if cfg.patch_size > 1:
            x = F.pixel_unshuffle(x, cfg.patch_size).contiguous(memory_format=torch.channels_last)
        x = self.stem(x)
        for i, block in enumerate(self.blocks):
            x = block(x, film[:, 2 * i:2 * i + 2])
        x = self.out_conv(F.silu(ada_layer_norm(x, film[:, -1, 0], film[:, -1, 1])))
        if cfg.patch_size > 1:
            x = F.pixel_shuffle(x, cfg.patch_size)
        return x.contiguous()


__all__ = ["DenoiserConfig", "FourierFeatures", "LatentDenoiser", "ResBlock", "ada_layer_norm", "point_planes"]
