"""A differentiable torch mirror of :func:`fog_envs.real.pusht_reward.reward`, on probe-target states.

The pose and approach terms are the same formulas; the coverage term is a soft (anti-aliased) coverage: a
fixed 3 px grid of cells over the goal T, each counting the fraction of its area that lies inside the block's T
(per box, the overlap of the cell's x and y extents with the box's, in the block frame). It is piecewise linear
in the pose, so it has a gradient wherever an edge of the block crosses a cell, and it matches the exact
polygon coverage to ~1e-3: 1 at the goal pose, so success (≥ 0.95) is reachable. Used by the state-space
local model (:mod:`fog_envs.learned.state_local`) for its reward Jacobian.

State layout: the task's probe targets ``[agent_x, agent_y, block_x, block_y] / 512, cos θ, sin θ``.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from fog_envs.real.pusht_reward import AGENT_RADIUS, GOAL_POSE, REWARD_WEIGHTS, SUCCESS_COVERAGE, TEE_BOXES

GRID = 3.0  #: px; spacing and width of the cells over the goal T
TABLE = 512.0


def _box_bounds() -> torch.Tensor:
    """(2, 4) ``[x0, x1, y0, y1]`` of the T's two boxes in the block frame."""
    return torch.tensor([[b[:, 0].min(), b[:, 0].max(), b[:, 1].min(), b[:, 1].max()] for b in TEE_BOXES],
                        dtype=torch.float32)


def _goal_points() -> torch.Tensor:
    """(K, 2) world points of a uniform grid over the goal T (cell centres; the boxes do not overlap)."""
    pts = []
    for x0, x1, y0, y1 in _box_bounds().tolist():
        xs = np.arange(x0 + GRID / 2, x1, GRID)
        ys = np.arange(y0 + GRID / 2, y1, GRID)
        pts.append(np.stack(np.meshgrid(xs, ys), -1).reshape(-1, 2))
    p = np.concatenate(pts)
    c, s = math.cos(GOAL_POSE[2]), math.sin(GOAL_POSE[2])
    return torch.tensor(p @ np.array([[c, -s], [s, c]]).T + GOAL_POSE[:2], dtype=torch.float32)


def to_frame(v: torch.Tensor, cs: torch.Tensor) -> torch.Tensor:
    """Vectors (..., 2) seen in the frame turned by the unit (cos, sin) ``cs`` (..., 2), e.g. the block's:
    ``Rᵀ v``."""
    return torch.stack([cs[..., 0] * v[..., 0] + cs[..., 1] * v[..., 1],
                        -cs[..., 1] * v[..., 0] + cs[..., 0] * v[..., 1]], -1)


def from_frame(v: torch.Tensor, cs: torch.Tensor) -> torch.Tensor:
    """The inverse of :func:`to_frame`: ``R v``."""
    return torch.stack([cs[..., 0] * v[..., 0] - cs[..., 1] * v[..., 1],
                        cs[..., 1] * v[..., 0] + cs[..., 0] * v[..., 1]], -1)


def _cell_fraction_inside(q: torch.Tensor, bounds: torch.Tensor, width: float = GRID) -> torch.Tensor:
    """Fraction (..., K) of the ``width``-wide cells (px) centred on block-frame points ``q`` (..., K, 2) that lies
    inside the union of the (disjoint) boxes: per box the product of the x and y overlaps, summed over boxes (cells
    taken square in the block frame)."""
    half = width / 2
    total = torch.zeros(q.shape[:-1], dtype=q.dtype, device=q.device)
    for x0, x1, y0, y1 in bounds.tolist():
        fx = (torch.clamp(q[..., 0] + half, max=x1) - torch.clamp(q[..., 0] - half, min=x0)).clamp(min=0.0)
        fy = (torch.clamp(q[..., 1] + half, max=y1) - torch.clamp(q[..., 1] - half, min=y0)).clamp(min=0.0)
        total = total + fx * fy / (width * width)
    return total.clamp(max=1.0)


def tee_cover(points: torch.Tensor, block: torch.Tensor, cs: torch.Tensor, width: float) -> torch.Tensor:
    """Fraction (..., K) of the ``width``-wide cells (px) centred on world points ``points`` (..., K, 2) that the
    T of a block at ``block`` (..., 2) px turned by the unit ``cs`` (..., 2) covers (anti-aliased, piecewise linear in
    the pose)."""
    q = to_frame(points - block[..., None, :], cs[..., None, :])
    return _cell_fraction_inside(q, _box_bounds(), width)


def distance_to_tee(point: torch.Tensor, block: torch.Tensor, cs: torch.Tensor) -> torch.Tensor:
    """Distance (...,) from ``point`` (..., 2) to the block's T outline (0 inside), in px."""
    q = to_frame(point - block, cs)
    dists = []
    for x0, x1, y0, y1 in _box_bounds().tolist():
        dx = torch.clamp(torch.maximum(x0 - q[..., 0], q[..., 0] - x1), min=0.0)
        dy = torch.clamp(torch.maximum(y0 - q[..., 1], q[..., 1] - y1), min=0.0)
        dists.append(torch.sqrt(dx * dx + dy * dy + 1e-9))
    return torch.minimum(dists[0], dists[1])


def soft_coverage(state: torch.Tensor) -> torch.Tensor:
    """Soft coverage (...,) of the goal T by the block of probe-target states (..., 6)."""
    block = state[..., 2:4] * TABLE
    cs = state[..., 4:6] / state[..., 4:6].norm(dim=-1, keepdim=True).clamp_min(1e-6)
    rel = _goal_points().to(state)[None] - block.reshape(-1, 1, 2)  # (B, K, 2)
    q = to_frame(rel, cs.reshape(-1, 1, 2))
    return _cell_fraction_inside(q, _box_bounds()).mean(-1).reshape(state.shape[:-1])


def reward(state: torch.Tensor, weights: dict[str, float] = REWARD_WEIGHTS,
           coverage_cap: float = SUCCESS_COVERAGE) -> torch.Tensor:
    """The Push-T reward (...,) of probe-target states (..., 6), differentiable (soft coverage); ``weights`` of
    the three terms (``coverage``, ``pose``, ``approach``) default to the task's. ``coverage_cap``: the coverage
    where the coverage term stops growing, the task's success threshold by default; above it (up to 1) the term
    keeps rewarding coverage past the threshold, a margin for a planner whose model is a few pixels off."""
    if not SUCCESS_COVERAGE <= coverage_cap <= 1.0:
        raise ValueError(f"coverage_cap must lie in [{SUCCESS_COVERAGE}, 1], got {coverage_cap}")
    agent, block = state[..., 0:2] * TABLE, state[..., 2:4] * TABLE
    cs = state[..., 4:6] / state[..., 4:6].norm(dim=-1, keepdim=True).clamp_min(1e-6)
    d_pos = (block - torch.tensor(GOAL_POSE[:2], dtype=state.dtype, device=state.device)).norm(dim=-1)
    angle = torch.atan2(cs[..., 1], cs[..., 0])
    d_angle = torch.remainder(angle - GOAL_POSE[2] + math.pi, 2 * math.pi) - math.pi
    pose = 0.5 * torch.exp(-d_pos / 100.0) + 0.5 * torch.exp(-d_angle.abs() / (math.pi / 4))
    gap = torch.clamp(distance_to_tee(agent, block, cs) - AGENT_RADIUS, min=0.0)
    coverage_term = torch.clamp(soft_coverage(state) / SUCCESS_COVERAGE, max=coverage_cap / SUCCESS_COVERAGE)
    return (weights["coverage"] * coverage_term + weights["pose"] * pose + weights["approach"] * torch.exp(-gap / 50.0))
