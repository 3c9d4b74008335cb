"""Small networks that read one latent frame: the reward model and the state probe's latent twin.

``LatentReadout`` maps a scaled latent ``(C, h, w)`` to a vector; the reward model predicts
``[reward, success_logit, *aux]`` from the generated next latent (the reward is a function of the state,
and the state is visible in the frame).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn
from torch.nn import functional as F


@dataclass(frozen=True)
class ReadoutConfig:
    """Sizes of a latent readout network."""

    latent_shape: tuple[int, int, int] = (16, 8, 8)
    channels: int = 64
    hidden: int = 256
    out_dim: int = 3


class LatentReadout(nn.Module):
    """Conv + MLP from a latent frame (..., C, h, w) to a vector (..., out_dim)."""

    def __init__(self, config: ReadoutConfig) -> None:
        super().__init__()
        self.config = config
        c, h, w = config.latent_shape
        ch = config.channels
        self.conv = nn.Sequential(
            nn.Conv2d(c, ch, 3, padding=1), nn.GroupNorm(8, ch), nn.SiLU(),
            nn.Conv2d(ch, 2 * ch, 4, stride=2, padding=1), nn.GroupNorm(8, 2 * ch), nn.SiLU(),
        )
        flat = 2 * ch * (h // 2) * (w // 2)
        self.mlp = nn.Sequential(nn.Linear(flat, config.hidden), nn.LayerNorm(config.hidden), nn.SiLU(),
                                 nn.Linear(config.hidden, config.out_dim))

    def forward(self, latent: torch.Tensor) -> torch.Tensor:
        lead = latent.shape[:-3]
        x = self.conv(latent.reshape(-1, *latent.shape[-3:]))
        return self.mlp(x.flatten(1)).reshape(*lead, self.config.out_dim)


class RewardModel(nn.Module):
    """Predicts ``reward``, ``success`` probability and auxiliary targets (e.g. coverage) from a latent frame."""

    def __init__(self, latent_shape: tuple[int, int, int], num_aux: int, channels: int = 64, hidden: int = 256) -> None:
        super().__init__()
        self.num_aux = num_aux
        self.net = LatentReadout(ReadoutConfig(latent_shape, channels, hidden, 2 + num_aux))

    def forward(self, latent: torch.Tensor) -> dict[str, torch.Tensor]:
        out = self.net(latent).float()
        return {"reward": out[..., 0], "success_logit": out[..., 1], "aux": out[..., 2:]}

    def loss(self, latent: torch.Tensor, reward: torch.Tensor, success: torch.Tensor, aux: torch.Tensor,
             mask: torch.Tensor | None = None) -> tuple[torch.Tensor, dict[str, float]]:
        """MSE on reward and aux, BCE on success; ``mask`` (same leading shape) drops padded rows."""
        pred = self(latent)
        m = torch.ones_like(reward, dtype=torch.float32) if mask is None else mask.float()
        denom = m.sum().clamp_min(1.0)
        rew = ((pred["reward"] - reward.float()) ** 2 * m).sum() / denom
        bce = (F.binary_cross_entropy_with_logits(pred["success_logit"], success.float(), reduction="none") * m).sum() / denom
        aux_l = (((pred["aux"] - aux.float()) ** 2).mean(-1) * m).sum() / denom if self.num_aux else rew * 0
        loss = rew + 0.1 * bce + aux_l
        return loss, {"reward/mse": rew.item(), "reward/success_bce": bce.item(), "reward/aux_mse": aux_l.item()}
