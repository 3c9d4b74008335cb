"""A small convolutional autoencoder between 64×64 RGB frames and the latent space of the world models.

The global diffusion model, the reward model and the RSSM all work on latents of shape
``(latent_channels, size / 8, size / 8)``; pixels are decoded only when an observation asks for them.
Latents are scaled by a per-channel affine (``latent_shift``, ``latent_scale``, buffers fitted on data after
training) so that the diffusion model sees roughly zero-mean, unit-variance inputs.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from fog_envs.wm.loss_weights import motion_weights


@dataclass(frozen=True)
class AutoencoderConfig:
    """Sizes of the frame autoencoder."""

    image_size: int = 64
    latent_channels: int = 16
    channels: tuple[int, ...] = (32, 64, 128)  #: one stride-2 stage per entry
    latent_l2: float = 1e-4  #: weight of a small penalty that keeps latents bounded
    motion_weight: float = 0.0
    """reconstruction weight on the pixels that change between consecutive frames (each pixel weighted
    ``1 + motion_weight·|x_t − x_{t−1}|/mean|x_t − x_{t−1}|``, renormalised to mean 1; ``fog_envs.wm.
    loss_weights.motion_weights``): small moving objects such as the Push-T agent (≈ 0.3 % of the frame)
    otherwise barely register in a plain pixel loss. 0: plain L1 + MSE."""

    def __post_init__(self) -> None:
        if not self.motion_weight >= 0:
            raise ValueError(f"AutoencoderConfig: motion_weight must be >= 0, got {self.motion_weight}")

    @property
    def latent_size(self) -> int:
        return self.image_size // 2 ** len(self.channels)

    @property
    def latent_shape(self) -> tuple[int, int, int]:
        return (self.latent_channels, self.latent_size, self.latent_size)


def _norm(ch: int) -> nn.GroupNorm:
    return nn.GroupNorm(min(8, ch), ch)


class _ResBlock(nn.Module):
    def __init__(self, ch: int) -> None:
        super().__init__()
        self.body = nn.Sequential(_norm(ch), nn.SiLU(), nn.Conv2d(ch, ch, 3, padding=1),
                                  _norm(ch), nn.SiLU(), nn.Conv2d(ch, ch, 3, padding=1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.body(x)


class FrameAutoencoder(nn.Module):
    """``encode``: uint8 frames (..., H, W, 3) -> scaled latents (..., C, h, w); ``decode`` the reverse."""

    def __init__(self, config: AutoencoderConfig = AutoencoderConfig()) -> None:
        super().__init__()
        self.config = config
        chs = config.channels
        # Encoder: stride-2 convs, residual blocks below full resolution only (that is where the cost is).
        enc: list[nn.Module] = []
        prev = 3
        for i, ch in enumerate(chs):
            enc.append(nn.Conv2d(prev, ch, 4, stride=2, padding=1))
            if i > 0:
                enc.append(_ResBlock(ch))
            prev = ch
        enc += [_norm(prev), nn.SiLU(), nn.Conv2d(prev, config.latent_channels, 3, padding=1)]
        self.encoder = nn.Sequential(*enc)
        # Decoder: the mirror image, transposed convs for upsampling, the last one straight to RGB.
        dec: list[nn.Module] = [nn.Conv2d(config.latent_channels, chs[-1], 3, padding=1), _ResBlock(chs[-1])]
        rev = list(reversed(chs))
        for i, ch in enumerate(rev):
            out = rev[i + 1] if i + 1 < len(rev) else None
            if out is None:
                dec += [_norm(ch), nn.SiLU(), nn.ConvTranspose2d(ch, 3, 4, stride=2, padding=1)]
            else:
                dec += [nn.ConvTranspose2d(ch, out, 4, stride=2, padding=1), _ResBlock(out)]
        self.decoder = nn.Sequential(*dec)
        self.register_buffer("latent_shift", torch.zeros(config.latent_channels, 1, 1))
        self.register_buffer("latent_scale", torch.ones(config.latent_channels, 1, 1))

    @staticmethod
    def frames_to_input(frames: torch.Tensor) -> torch.Tensor:
        """uint8 (..., H, W, 3) -> float (..., 3, H, W) in [-1, 1]."""
        return frames.movedim(-1, -3).float() / 127.5 - 1.0

    @staticmethod
    def output_to_frames(x: torch.Tensor) -> torch.Tensor:
        """float (..., 3, H, W) in [-1, 1] -> uint8 (..., H, W, 3) (rounded, clamped)."""
        return ((x.clamp(-1, 1) + 1.0) * 127.5).round().to(torch.uint8).movedim(-3, -1)

    def _raw_encode(self, x: torch.Tensor) -> torch.Tensor:
        lead = x.shape[:-3]
        return self.encoder(x.reshape(-1, *x.shape[-3:])).reshape(*lead, *self.config.latent_shape)

    def encode(self, frames: torch.Tensor) -> torch.Tensor:
        """uint8 frames (..., H, W, 3) -> scaled latents (..., C, h, w)."""
        raw = self._raw_encode(self.frames_to_input(frames))
        return (raw - self.latent_shift) / self.latent_scale

    def decode_float(self, latents: torch.Tensor) -> torch.Tensor:
        """Scaled latents (..., C, h, w) -> float images (..., 3, H, W), roughly in [-1, 1]."""
        lead = latents.shape[:-3]
        raw = latents * self.latent_scale + self.latent_shift
        out = self.decoder(raw.reshape(-1, *self.config.latent_shape))
        return out.reshape(*lead, *out.shape[-3:])

    def decode(self, latents: torch.Tensor) -> torch.Tensor:
        """Scaled latents (..., C, h, w) -> uint8 frames (..., H, W, 3)."""
        return self.output_to_frames(self.decode_float(latents))

    def loss(self, frames: torch.Tensor, prev_frames: torch.Tensor | None = None
             ) -> tuple[torch.Tensor, dict[str, float]]:
        """Reconstruction loss (L1 + MSE in [-1, 1] pixel units) plus a small latent L2 penalty.

        With ``config.motion_weight > 0`` each pixel's error is weighted by how much it changed since
        ``prev_frames`` (uint8 frames of the same shape, the preceding frame of each row), which is then required.
        """
        x = self.frames_to_input(frames)
        raw = self._raw_encode(x)
        recon = self.decoder(raw.reshape(-1, *self.config.latent_shape)).reshape(x.shape)
        err = recon.float() - x
        w = None
        if self.config.motion_weight > 0:
            if prev_frames is None or prev_frames.shape != frames.shape:
                raise ValueError("FrameAutoencoder.loss: motion_weight > 0 needs prev_frames shaped like frames "
                                 f"{tuple(frames.shape)}, got "
                                 f"{None if prev_frames is None else tuple(prev_frames.shape)}")
            w = motion_weights(x, self.frames_to_input(prev_frames), self.config.motion_weight)
        l1, mse = err.abs(), err.pow(2)
        l1, mse = (l1.mean(), mse.mean()) if w is None else ((l1 * w).mean(), (mse * w).mean())
        reg = raw.float().pow(2).mean()
        loss = l1 + mse + self.config.latent_l2 * reg
        return loss, {"ae/l1": l1.item(), "ae/mse": mse.item(), "ae/latent_sq": reg.item()}

    @torch.no_grad()
    def fit_latent_scaling(self, frames: torch.Tensor) -> None:
        """Set ``latent_shift``/``latent_scale`` to the per-channel mean/std of the raw latents of ``frames``."""
        raw = self._raw_encode(self.frames_to_input(frames)).float()
        dims = [d for d in range(raw.dim()) if d != raw.dim() - 3]
        self.latent_shift.copy_(raw.mean(dim=dims).reshape(-1, 1, 1))
        self.latent_scale.copy_(raw.std(dim=dims).clamp_min(1e-3).reshape(-1, 1, 1))
