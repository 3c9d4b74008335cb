"""The goal reader: a fine read-out of the Push-T block's offset from its goal pose, for frames where it is near.

Push-T success needs the block within about 2 px (of 512) and 1° of its goal pose, a quarter of one pixel of the
64 × 64 observation. The state probe (:mod:`fog_envs.wm.probe`) reads blocks there to ~2.5 px, too coarse to tell
a success from a near miss. Near the goal the block covers the same few pixels, and the anti-aliased frame
changes almost linearly with small offsets, so a ridge regression from a crop around the goal to the offset
(Δx px, Δy px, Δθ degrees) reads it several times finer. It is fitted in closed form on frames rendered by
``RealPushT-v0`` (real frames only, like the probe: :mod:`fog_envs.real.pusht_goal_frames`) and used at
deployment: :meth:`GoalReader.refine` replaces the probe's block reading wherever the probe reads the block
within the gate and the reader's own offset lies within the range it was fitted on.

Files: a ``fog-goal-reader`` bundle directory (config.json, weights.safetensors, card.json;
:mod:`fog_envs.wm.bundle`); the shipped one loads by name (``GoalReader.load("pusht_goal_reader")``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from fog_envs.real.pusht_reward import GOAL_POSE
from fog_envs.real.pusht_reward_torch import TABLE
from fog_envs.wm.bundle import ConfigBundleMixin
from fog_envs.wm.ridge import ridge_fit

FORMAT_NAME = "fog-goal-reader"
FORMAT_VERSION = 1


@dataclass(frozen=True)
class GoalReaderConfig:
    """The crop the reader sees, the poses it is fitted on, and where it takes over from the probe."""

    image_size: int = 64
    crop: tuple[int, int, int, int] = (16, 48, 16, 48)
    """rows [r0, r1) and columns [c0, c1) of the frame around the goal that the read-out sees"""
    range_px: float = 12.0
    """fitted on blocks within this distance (px of 512) of the goal position ..."""
    range_deg: float = 6.0
    """... and this many degrees of the goal angle; readings outside it are not trusted"""
    gate_px: float = 8.0
    """:meth:`GoalReader.refine` takes over where the probe reads the block within this distance ..."""
    gate_deg: float = 4.0
    """... and this many degrees of the goal"""
    ridge: float = 1e-3
    """L2 penalty of the least-squares fit (on features in [0, 1] per pixel channel)"""

    def __post_init__(self) -> None:
        r0, r1, c0, c1 = self.crop
        if not (0 <= r0 < r1 <= self.image_size and 0 <= c0 < c1 <= self.image_size):
            raise ValueError(f"GoalReaderConfig: crop {self.crop} must satisfy 0 <= r0 < r1 <= {self.image_size} "
                             f"and 0 <= c0 < c1 <= {self.image_size}")
        if min(self.range_px, self.range_deg, self.gate_px, self.gate_deg) <= 0:
            raise ValueError("GoalReaderConfig: range_px, range_deg, gate_px and gate_deg must be > 0")
        if self.gate_px > self.range_px or self.gate_deg > self.range_deg:
            raise ValueError(f"GoalReaderConfig: the gate ({self.gate_px} px, {self.gate_deg}°) must lie within "
                             f"the fitted range ({self.range_px} px, {self.range_deg}°)")
        if self.ridge <= 0:
            raise ValueError(f"GoalReaderConfig: ridge must be > 0, got {self.ridge}")

    @property
    def features(self) -> int:
        r0, r1, c0, c1 = self.crop
        return (r1 - r0) * (c1 - c0) * 3


def goal_offsets(poses: np.ndarray) -> np.ndarray:
    """(n, 3) block offsets from the goal (Δx px, Δy px, Δθ degrees in (−180, 180]) of true-layout poses (n, 5)
    ``[agent_x, agent_y, block_x, block_y, angle]``."""
    p = np.asarray(poses, dtype=np.float64)
    if p.ndim != 2 or p.shape[1] != 5:
        raise ValueError(f"goal_offsets: expected true-layout Push-T poses of shape (n, 5), got {p.shape}")
    dth = (p[:, 4] - GOAL_POSE[2] + np.pi) % (2 * np.pi) - np.pi
    return np.stack([p[:, 2] - GOAL_POSE[0], p[:, 3] - GOAL_POSE[1], np.degrees(dth)], -1)


def within(offsets: torch.Tensor, px: float, deg: float) -> torch.Tensor:
    """Whether offsets (..., 3) lie within ``px`` of the goal position and ``deg`` of its angle."""
    return (offsets[..., :2].norm(dim=-1) <= px) & (offsets[..., 2].abs() <= deg)


class GoalReader(ConfigBundleMixin, nn.Module):
    """uint8 frames (..., H, W, 3) → block offsets from the goal (..., 3): a linear map of the crop's pixels."""

    bundle_format, bundle_version, bundle_task = FORMAT_NAME, FORMAT_VERSION, "pusht"
    config_cls = GoalReaderConfig

    def __init__(self, config: GoalReaderConfig = GoalReaderConfig()) -> None:
        super().__init__()
        self.config = config
        f = config.features
        self.register_buffer("mean", torch.zeros(f, dtype=torch.float64))
        self.register_buffer("weight", torch.zeros(f, 3, dtype=torch.float64))
        self.register_buffer("bias", torch.zeros(3, dtype=torch.float64))

    def features(self, frames: torch.Tensor | np.ndarray) -> torch.Tensor:
        """The crop of uint8 frames (N, H, W, 3) as (N, F) float64 in [0, 1]."""
        x = torch.as_tensor(np.asarray(frames) if isinstance(frames, np.ndarray) else frames)
        size = self.config.image_size
        if x.ndim != 4 or tuple(x.shape[1:]) != (size, size, 3):
            raise ValueError(f"GoalReader: expected uint8 frames of shape (N, {size}, {size}, 3), got {tuple(x.shape)}")
        r0, r1, c0, c1 = self.config.crop
        return x[:, r0:r1, c0:c1].reshape(len(x), -1).to(self.mean.device, torch.float64) / 255.0

    @torch.no_grad()
    def offsets(self, frames: torch.Tensor | np.ndarray) -> torch.Tensor:
        """(N, 3) float64 block offsets (Δx px, Δy px, Δθ degrees) read from frames (N, H, W, 3)."""
        return (self.features(frames) - self.mean) @ self.weight + self.bias

    @torch.no_grad()
    def refine(self, frames: torch.Tensor | np.ndarray, readings: torch.Tensor) -> torch.Tensor:
        """The probe's ``readings`` (N, 6) of ``frames`` (probe targets ``[agent_xy, block_xy] / 512, cos θ,
        sin θ``) with the block replaced by this reader's wherever the probe reads it within the gate and the
        reader within its fitted range; a new tensor of the readings' dtype and device."""
        if readings.ndim != 2 or readings.shape[1] != 6:
            raise ValueError(f"GoalReader.refine: expected Push-T probe readings (N, 6), got {tuple(readings.shape)}")
        cfg = self.config
        r = readings.to(self.mean.device, torch.float64)
        goal = torch.as_tensor(np.asarray(GOAL_POSE, dtype=np.float64), device=r.device)
        coarse = torch.stack([r[:, 2] * TABLE - goal[0], r[:, 3] * TABLE - goal[1],
                              torch.rad2deg(torch.remainder(torch.atan2(r[:, 5], r[:, 4]) - goal[2] + math.pi,
                                                            2 * math.pi) - math.pi)], -1)
        fine = self.offsets(frames)
        use = within(coarse, cfg.gate_px, cfg.gate_deg) & within(fine, cfg.range_px, cfg.range_deg)
        angle = goal[2] + torch.deg2rad(fine[:, 2])
        block = torch.stack([(goal[0] + fine[:, 0]) / TABLE, (goal[1] + fine[:, 1]) / TABLE, angle.cos(),
                             angle.sin()], -1)
        out = r.clone()
        out[:, 2:] = torch.where(use[:, None], block, r[:, 2:])
        return out.to(readings.device, readings.dtype)


def fit_goal_reader(frames: np.ndarray, poses: np.ndarray, config: GoalReaderConfig = GoalReaderConfig()) -> GoalReader:
    """The ridge least-squares reader of frames (n, H, W, 3) uint8 with true-layout poses (n, 5), solved in
    closed form (float64): ``W = (XᵀX + λI)⁻¹ Xᵀ(y − ȳ)`` on centred features ``X``."""
    if len(frames) != len(poses):
        raise ValueError(f"fit_goal_reader: {len(frames)} frames but {len(poses)} poses")
    reader = GoalReader(config)
    mean, weight, bias = ridge_fit(reader.features(frames), torch.from_numpy(goal_offsets(poses)), config.ridge)
    reader.mean.copy_(mean)
    reader.weight.copy_(weight)
    reader.bias.copy_(bias)
    return reader.eval()


def reader_errors(offsets: np.ndarray, poses: np.ndarray) -> dict[str, float]:
    """Median and 90th-percentile errors (px, degrees) of read ``offsets`` (n, 3) against true poses (n, 5)."""
    e = np.asarray(offsets, dtype=np.float64) - goal_offsets(poses)
    px, deg = np.hypot(e[:, 0], e[:, 1]), np.abs(e[:, 2])
    return {"block_px_median": float(np.median(px)), "block_px_p90": float(np.percentile(px, 90)),
            "block_deg_median": float(np.median(deg)), "block_deg_p90": float(np.percentile(deg, 90))}
