"""Silhouettes of a task's objects drawn from its physical state: input planes for a state-guided denoiser.

A state-guided denoiser (:mod:`fog_envs.wm.denoiser`) given a pose as six numbers has to learn to draw a rotated
T from them, which a small conv net on an 8×8 latent did not learn in 10k steps (README, "A denoiser guided by the
state"). Drawing the objects' silhouettes from the state here, on a ``size``×``size`` grid over the frame, gives it
the shape at every cell: what is left to learn is the objects' appearance.

Push-T (``"pusht"``, the task's probe targets ``[agent_x, agent_y, block_x, block_y] / 512, cos θ, sin θ``; x the
frame's column, y its row): two planes, the fraction of each cell covered by the block's T and by the agent's disk.
"""

from __future__ import annotations

import torch
from torch import Tensor

SILHOUETTE_KINDS = ("pusht",)  #: the tasks whose silhouettes can be drawn


def silhouette_count(kind: str) -> int:
    """Planes :func:`silhouettes` draws for ``kind`` (one per object)."""
    if kind not in SILHOUETTE_KINDS:
        raise ValueError(f"unknown silhouette kind {kind!r}; known: {', '.join(SILHOUETTE_KINDS)}")
    return 2


def _pusht(state: Tensor, size: int) -> Tensor:
    from fog_envs.real.pusht_reward import AGENT_RADIUS
    from fog_envs.real.pusht_reward_torch import TABLE, tee_cover

    state = state.float()
    width = TABLE / size
    centres = (torch.arange(size, device=state.device, dtype=state.dtype) + 0.5) * width
    grid = torch.stack(torch.meshgrid(centres, centres, indexing="xy"), -1).reshape(-1, 2)  # (size², 2): (x, y)
    cs = state[:, 4:6] / state[:, 4:6].norm(dim=-1, keepdim=True).clamp_min(1e-6)
    block = tee_cover(grid[None], state[:, 2:4] * TABLE, cs, width)  # (B, size²)
    dist = (grid[None] - state[:, None, 0:2] * TABLE).norm(dim=-1)
    agent = ((AGENT_RADIUS + width / 2 - dist) / width).clamp(0.0, 1.0)
    return torch.stack([block, agent], 1).unflatten(2, (size, size))


def silhouettes(kind: str, state: Tensor, size: int) -> Tensor:
    """(B, K, size, size) silhouettes of ``kind``'s K objects in states (B, S), in float32; row r, column c covers
    the frame's cell [c, c+1) × [r, r+1) in units of frame/size."""
    silhouette_count(kind)
    if state.dim() != 2 or size < 1:
        raise ValueError(f"silhouettes expects states (B, S) and size >= 1, got {tuple(state.shape)} and {size}")
    if kind == "pusht":
        if state.shape[1] != 6:
            raise ValueError(f"Push-T silhouettes read the task's 6 probe targets, got {state.shape[1]} columns")
        return _pusht(state, size)
    raise AssertionError(kind)
