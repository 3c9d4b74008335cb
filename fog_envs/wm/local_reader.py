"""The local reader: the Push-T agent and block read again from crops around the state probe's own reading.

The state probe (:mod:`fog_envs.wm.probe`) reads the agent to ~4 px and the block to ~3 px / 1° (of 512) on the
frames a deployed agent visits; planning at deployment needs both finer (``benchmarks/deploy_readings.py``: with
only the agent's or only the block's true state 14 % success, with both 34 %). Around a given reading the
anti-aliased frame changes almost linearly with small offsets, so a ridge read-out of a crop centred on the pixel
nearest the probe's reading corrects it: one read-out for the agent (a disc, alike from every side) and, for the
block, one per bin of the probe's angle reading (the T looks different at each angle), each giving the offset of
the true pose from the crop's centre (and from the bin's central angle). Fitted in closed form on real frames
with their true states and the probe's readings of them (:func:`fit_local_reader`); used at deployment, before
the finer :class:`fog_envs.wm.goal_reader.GoalReader` near the goal. It corrects the probe it was fitted with
(the card names the bundle).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from fog_envs.real.pusht_reward_torch import TABLE
from fog_envs.wm.bundle import ConfigBundleMixin
from fog_envs.wm.ridge import ridge_fit

FORMAT_NAME = "fog-local-reader"
FORMAT_VERSION = 1


@dataclass(frozen=True)
class LocalReaderConfig:
    """Crop sizes, angle bins and penalties of the local reader."""

    image_size: int = 64
    agent_half: int = 5
    """the agent's crop is (2·agent_half + 1)² pixels around the probe's reading"""
    block_half: int = 12
    """the block's crop is (2·block_half + 1)² pixels (the T spans ~15 pixels of a 64 × 64 frame)"""
    angle_bins: int = 36
    """one block read-out per bin of the probe's angle reading (36: 10° each)"""
    agent_ridge: float = 1e-2
    block_ridge: float = 1e-1

    def __post_init__(self) -> None:
        for name in ("agent_half", "block_half"):
            half = getattr(self, name)
            if not 0 <= half or 2 * half + 1 > self.image_size:
                raise ValueError(f"LocalReaderConfig: {name} must be in [0, {(self.image_size - 1) // 2}], got {half}")
        if self.angle_bins < 1:
            raise ValueError(f"LocalReaderConfig: angle_bins must be >= 1, got {self.angle_bins}")
        if self.agent_ridge <= 0 or self.block_ridge <= 0:
            raise ValueError("LocalReaderConfig: agent_ridge and block_ridge must be > 0")

    def features(self, half: int) -> int:
        return (2 * half + 1) ** 2 * 3


def crop_around(frames: torch.Tensor, centres_px: torch.Tensor, half: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Crops of uint8 frames (N, S, S, 3) around table positions (N, 2) ``(x, y)`` px: the (2·half + 1)² pixels
    around the pixel nearest each position (moved inside the frame at its edges), as (N, F) float64 in [0, 1],
    and each crop's central pixel's centre (N, 2) in table px."""
    n, size = frames.shape[0], frames.shape[1]
    scale = TABLE / size
    pix = torch.round(centres_px.double() / scale - 0.5).long().clamp(half, size - 1 - half)
    offsets = torch.arange(-half, half + 1)
    rows = (pix[:, 1, None] + offsets)[:, :, None]
    cols = (pix[:, 0, None] + offsets)[:, None, :]
    crops = frames[torch.arange(n)[:, None, None], rows, cols]
    return crops.reshape(n, -1).double() / 255.0, (pix.double() + 0.5) * scale


def angle_bin(angle: torch.Tensor, bins: int) -> torch.Tensor:
    """The bin (long) of angles (rad) among ``bins`` equal bins of [0, 2π)."""
    return (torch.floor(torch.remainder(angle.double(), 2 * math.pi) / (2 * math.pi) * bins).long()) % bins


def bin_centre(index: torch.Tensor, bins: int) -> torch.Tensor:
    """The central angle (rad) of bins ``index``."""
    return (index.double() + 0.5) * (2 * math.pi / bins)


def _wrap_deg(radians: torch.Tensor) -> torch.Tensor:
    return torch.rad2deg(torch.remainder(radians + math.pi, 2 * math.pi) - math.pi)


class LocalReader(ConfigBundleMixin, nn.Module):
    """Probe readings (N, 6) of uint8 frames (N, S, S, 3) → the same readings with the agent and block read
    again from crops around them (:meth:`refine`)."""

    bundle_format, bundle_version, bundle_task = FORMAT_NAME, FORMAT_VERSION, "pusht"
    config_cls = LocalReaderConfig

    def __init__(self, config: LocalReaderConfig = LocalReaderConfig()) -> None:
        super().__init__()
        self.config = config
        fa, fb, b = config.features(config.agent_half), config.features(config.block_half), config.angle_bins
        self.register_buffer("agent_mean", torch.zeros(fa, dtype=torch.float64))
        self.register_buffer("agent_weight", torch.zeros(fa, 2, dtype=torch.float64))
        self.register_buffer("agent_bias", torch.zeros(2, dtype=torch.float64))
        self.register_buffer("block_mean", torch.zeros(b, fb, dtype=torch.float64))
        self.register_buffer("block_weight", torch.zeros(b, fb, 3, dtype=torch.float64))
        self.register_buffer("block_bias", torch.zeros(b, 3, dtype=torch.float64))

    def _frames(self, frames: torch.Tensor | np.ndarray) -> torch.Tensor:
        x = torch.as_tensor(frames)
        size = self.config.image_size
        if x.ndim != 4 or tuple(x.shape[1:]) != (size, size, 3):
            raise ValueError(f"LocalReader: expected uint8 frames of shape (N, {size}, {size}, 3), "
                             f"got {tuple(x.shape)}")
        return x

    @torch.no_grad()
    def read(self, frames: torch.Tensor | np.ndarray, readings: torch.Tensor) -> torch.Tensor:
        """(N, 5) float64 true-layout poses ``[agent_xy, block_xy] px, angle rad`` read around ``readings``."""
        if readings.ndim != 2 or readings.shape[1] != 6:
            raise ValueError(f"LocalReader: expected Push-T probe readings (N, 6), got {tuple(readings.shape)}")
        x = self._frames(frames)
        r = readings.detach().cpu().double()
        cfg = self.config
        crops, centre = crop_around(x, r[:, 0:2] * TABLE, cfg.agent_half)
        agent = (crops - self.agent_mean) @ self.agent_weight + self.agent_bias + centre
        crops, centre = crop_around(x, r[:, 2:4] * TABLE, cfg.block_half)
        k = angle_bin(torch.atan2(r[:, 5], r[:, 4]), cfg.angle_bins)
        out = torch.einsum("nf,nfk->nk", crops - self.block_mean[k], self.block_weight[k]) + self.block_bias[k]
        angle = torch.remainder(bin_centre(k, cfg.angle_bins) + torch.deg2rad(out[:, 2]), 2 * math.pi)
        return torch.cat([agent, out[:, :2] + centre, angle[:, None]], -1)

    @torch.no_grad()
    def refine(self, frames: torch.Tensor | np.ndarray, readings: torch.Tensor) -> torch.Tensor:
        """The probe's ``readings`` (N, 6) (probe targets ``[agent_xy, block_xy] / 512, cos θ, sin θ``) of
        ``frames``, read again locally; a new tensor of the readings' dtype and device."""
        pose = self.read(frames, readings)
        out = torch.cat([pose[:, :4] / TABLE, pose[:, 4:5].cos(), pose[:, 4:5].sin()], -1)
        return out.to(readings.device, readings.dtype)


def fit_local_reader(frames: torch.Tensor | np.ndarray, poses: np.ndarray, readings: torch.Tensor,
                     config: LocalReaderConfig = LocalReaderConfig()) -> LocalReader:
    """The closed-form ridge read-outs (:func:`fog_envs.wm.ridge.ridge_fit`) of uint8 frames (n, S, S, 3) with
    true-layout poses (n, 5) ``[agent_xy, block_xy, angle]`` and the probe's readings of them (n, 6); every angle
    bin needs at least 2 frames."""
    reader = LocalReader(config)
    x = reader._frames(frames)
    p = torch.as_tensor(np.asarray(poses, dtype=np.float64))
    r = readings.detach().cpu().double()
    if not len(x) == len(p) == len(r):
        raise ValueError(f"fit_local_reader: {len(x)} frames, {len(p)} poses and {len(r)} readings differ in number")
    crops, centre = crop_around(x, r[:, 0:2] * TABLE, config.agent_half)
    mean, weight, bias = ridge_fit(crops, p[:, 0:2] - centre, config.agent_ridge)
    reader.agent_mean.copy_(mean)
    reader.agent_weight.copy_(weight)
    reader.agent_bias.copy_(bias)
    del crops
    k = angle_bin(torch.atan2(r[:, 5], r[:, 4]), config.angle_bins)
    counts = torch.bincount(k, minlength=config.angle_bins)
    if int(counts.min()) < 2:
        raise ValueError(f"fit_local_reader: angle bin {int(counts.argmin())} of {config.angle_bins} has "
                         f"{int(counts.min())} frames; needs at least 2 in every bin")
    for b in range(config.angle_bins):
        rows = torch.nonzero(k == b).squeeze(1)
        crops, centre = crop_around(x[rows], r[rows, 2:4] * TABLE, config.block_half)
        turn = _wrap_deg(p[rows, 4] - bin_centre(k[rows], config.angle_bins))
        target = torch.cat([p[rows, 2:4] - centre, turn[:, None]], -1)
        mean, weight, bias = ridge_fit(crops, target, config.block_ridge)
        reader.block_mean[b].copy_(mean)
        reader.block_weight[b].copy_(weight)
        reader.block_bias[b].copy_(bias)
    return reader.eval()


def pose_errors(read: np.ndarray, poses: np.ndarray) -> dict[str, float]:
    """Median and 90th-percentile errors of read true-layout poses (n, 5) against the true ones: agent px, block
    px, block degrees."""
    a, p = np.asarray(read, dtype=np.float64), np.asarray(poses, dtype=np.float64)
    agent = np.hypot(*(a[:, 0:2] - p[:, 0:2]).T)
    block = np.hypot(*(a[:, 2:4] - p[:, 2:4]).T)
    deg = np.abs(np.degrees((a[:, 4] - p[:, 4] + np.pi) % (2 * np.pi) - np.pi))
    out: dict[str, float] = {}
    for name, v in (("agent_px", agent), ("block_px", block), ("block_deg", deg)):
        out[f"{name}_median"], out[f"{name}_p90"] = float(np.median(v)), float(np.percentile(v, 90))
    return out
