"""The state probe: a small CNN trained on real frames to regress the true physical state.

It measures the fidelity of generated frames: apply it to a decoded world-model frame and compare with the
true state of the real rollout driven by the same actions.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn


@dataclass(frozen=True)
class ProbeConfig:
    """Sizes of the state probe, and what it is trained on."""

    image_size: int = 64
    channels: tuple[int, ...] = (32, 64, 128, 128)
    hidden: int = 256
    out_dim: int = 6
    decoded_fraction: float = 0.0
    """training only: the fraction of each batch seen through the bundle's autoencoder (encoded, decoded), so
    the probe also reads frames as a latent world model draws them (what the state-space local model reads in
    imagination); 0: real frames only, the independent ruler the fidelity figures use"""

    def __post_init__(self) -> None:
        if not 0.0 <= self.decoded_fraction <= 1.0:
            raise ValueError(f"ProbeConfig: decoded_fraction must be in [0, 1], got {self.decoded_fraction}")


class StateProbe(nn.Module):
    """uint8 frames (..., H, W, 3) -> probe targets (..., out_dim) (see ``TaskSpec.probe_targets``)."""

    def __init__(self, config: ProbeConfig) -> None:
        super().__init__()
        self.config = config
        layers: list[nn.Module] = []
        prev = 3
        for ch in config.channels:
            layers += [nn.Conv2d(prev, ch, 4, stride=2, padding=1), nn.GroupNorm(8, ch), nn.SiLU()]
            prev = ch
        self.conv = nn.Sequential(*layers)
        side = config.image_size // 2 ** len(config.channels)
        self.mlp = nn.Sequential(nn.Linear(prev * side * side, config.hidden), nn.SiLU(),
                                 nn.Linear(config.hidden, config.out_dim))

    def forward(self, frames: torch.Tensor) -> torch.Tensor:
        lead = frames.shape[:-3]
        x = frames.reshape(-1, *frames.shape[-3:]).movedim(-1, -3).float() / 127.5 - 1.0
        return self.mlp(self.conv(x).flatten(1)).float().reshape(*lead, self.config.out_dim)

    def loss(self, frames: torch.Tensor, targets: torch.Tensor) -> tuple[torch.Tensor, dict[str, float]]:
        mse = (self(frames) - targets.float()).pow(2).mean()
        return mse, {"probe/mse": mse.item()}
