"""The agent finder: the Push-T agent located anywhere on the frame by template matching, before the local reader.

The state probe (:mod:`fog_envs.wm.probe`) reads the agent to ~4 px where the data put it, beside the block, but
far from the block (as at many episode starts) it misreads 21 % of ``RealPushT-v0``'s reset frames by more than
20 px, up to 250 px (of 512), and 17 % stay so after the local reader (:mod:`fog_envs.wm.local_reader`), which only
corrects readings within its crop (±40 px; ``benchmarks/bench_agent_reading.py``); the pusher odometry pools its
start from every reading, so bad readings leave the deployed agent acting on a phantom pusher. The agent is a small disc of one colour: a 3 × 3
template (the mean of real frames' pixels around the true agent) matched by the sum of squared differences at
every pixel finds its pixel, which the local reader then refines. Fitted in closed form on frames rendered by
``RealPushT-v0`` (:mod:`fog_envs.wm.agent_finder_cli`).

Files: a ``fog-agent-finder`` bundle directory (config.json, weights.safetensors, card.json;
:mod:`fog_envs.wm.bundle`); the shipped one loads by name (``AgentFinder.load("pusht_agent_finder")``).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from fog_envs.real.pusht_reward_torch import TABLE
from fog_envs.wm.bundle import ConfigBundleMixin
from fog_envs.wm.local_reader import crop_around

FORMAT_NAME = "fog-agent-finder"
FORMAT_VERSION = 1


@dataclass(frozen=True)
class AgentFinderConfig:
    """The frame size and the template's size."""

    image_size: int = 64
    half: int = 1
    """the template is (2·half + 1)² pixels (1: 3 × 3, the disc spans ~4 pixels of a 64 × 64 frame; larger
    templates take in the varying background around the disc and match worse)"""

    def __post_init__(self) -> None:
        if self.image_size < 1:
            raise ValueError(f"AgentFinderConfig: image_size must be >= 1, got {self.image_size}")
        if not 0 <= self.half or 2 * self.half + 1 > self.image_size:
            raise ValueError(f"AgentFinderConfig: half must be in [0, {(self.image_size - 1) // 2}], got {self.half}")


class AgentFinder(ConfigBundleMixin, nn.Module):
    """Probe readings (N, 6) of uint8 frames (N, S, S, 3) → the same readings with the agent's position replaced by
    the centre of the pixel that best matches the agent's template (:meth:`refine`)."""

    bundle_format, bundle_version, bundle_task = FORMAT_NAME, FORMAT_VERSION, "pusht"
    config_cls = AgentFinderConfig

    def __init__(self, config: AgentFinderConfig = AgentFinderConfig()) -> None:
        super().__init__()
        self.config = config
        side = 2 * config.half + 1
        self.register_buffer("template", torch.zeros(3, side, side, dtype=torch.float64))

    def _frames(self, frames: torch.Tensor | np.ndarray) -> torch.Tensor:
        x = torch.as_tensor(frames)
        size = self.config.image_size
        if x.ndim != 4 or tuple(x.shape[1:]) != (size, size, 3):
            raise ValueError(f"AgentFinder: expected uint8 frames of shape (N, {size}, {size}, 3), "
                             f"got {tuple(x.shape)}")
        return x

    @torch.no_grad()
    def mismatch(self, frames: torch.Tensor | np.ndarray) -> torch.Tensor:
        """(N, S, S) sum of squared differences (pixels in [0, 1]) between the template and the frame around each
        pixel (zero outside the frame)."""
        x = self._frames(frames).cpu().permute(0, 3, 1, 2).double() / 255.0
        w = self.template[None]
        h = self.config.half
        return (F.conv2d(x * x, torch.ones_like(w), padding=h) - 2 * F.conv2d(x, w, padding=h)
                + (w * w).sum()).squeeze(1)

    @torch.no_grad()
    def locate(self, frames: torch.Tensor | np.ndarray) -> torch.Tensor:
        """(N, 2) float64 table positions ``(x, y)`` px: the centre of each frame's best-matching pixel."""
        ssd = self.mismatch(frames)
        size = ssd.shape[-1]
        best = ssd.flatten(1).argmin(1)
        pix = torch.stack([best % size, best // size], -1).double()
        return (pix + 0.5) * (TABLE / size)

    @torch.no_grad()
    def refine(self, frames: torch.Tensor | np.ndarray, readings: torch.Tensor) -> torch.Tensor:
        """The probe's ``readings`` (N, 6) (probe targets ``[agent_xy, block_xy] / 512, cos θ, sin θ``) of
        ``frames`` with the agent located by the template; a new tensor of the readings' dtype and device."""
        if readings.ndim != 2 or readings.shape[1] != 6:
            raise ValueError(f"AgentFinder: expected Push-T probe readings (N, 6), got {tuple(readings.shape)}")
        xy = self.locate(frames)
        if len(xy) != len(readings):
            raise ValueError(f"AgentFinder: {len(xy)} frames and {len(readings)} readings differ in number")
        out = readings.detach().clone()
        out[:, 0:2] = (xy / TABLE).to(out.device, out.dtype)
        return out


def fit_agent_finder(frames: torch.Tensor | np.ndarray, agents_px: np.ndarray,
                     config: AgentFinderConfig = AgentFinderConfig()) -> AgentFinder:
    """The template: the mean (2·half + 1)² crop of uint8 frames (n, S, S, 3) around the pixel nearest each true
    agent position (n, 2) ``(x, y)`` px."""
    finder = AgentFinder(config)
    x = finder._frames(frames)
    p = torch.as_tensor(np.asarray(agents_px, dtype=np.float64))
    if p.ndim != 2 or p.shape[1] != 2 or len(p) != len(x):
        raise ValueError(f"fit_agent_finder: expected one (x, y) agent position per frame ({len(x)}), got shape "
                         f"{tuple(p.shape)}")
    if len(x) == 0:
        raise ValueError("fit_agent_finder: no frames to fit on")
    side = 2 * config.half + 1
    crops, _ = crop_around(x, p, config.half)
    finder.template.copy_(crops.mean(0).reshape(side, side, 3).permute(2, 0, 1))
    return finder.eval()
