"""Push-T start states for imagined episodes, in the probe-target layout ``[agent_x, agent_y, block_x, block_y] /
512, cos θ, sin θ``: near the goal (:func:`near_goal`, to practise the last few pixels and degrees), or drawn as
the reference system draws its resets (:func:`reset_like`: gym-pusht 0.1.8's distribution, agent and block
anywhere apart, where play keeps the agent beside the block; README item 36).

The block is drawn uniformly over a disc of ``radius_px`` around the goal position and within ``angle_deg``
of the goal angle; the agent keeps its place from the given start state unless it would then lie inside (or
touch) the block, in which case it is drawn on a ring around the block, outside it. Pure torch: every draw
comes from the caller's generator.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from fog_envs.real.pusht_reward import AGENT_RADIUS, GOAL_POSE
from fog_envs.real.pusht_reward_torch import TABLE, distance_to_tee

#: ring around the block's origin that an agent is re-drawn on (px): beyond the T's farthest point (121 px) plus
#: the agent's radius, so a re-drawn agent never touches the block
AGENT_RING_PX = (140.0, 180.0)


@dataclass(frozen=True)
class GoalStartConfig:
    """How far from the goal pose a near-goal start may lie."""

    radius_px: float = 60.0  #: block position within this distance of the goal's (px of 512)
    angle_deg: float = 30.0  #: block angle within this many degrees of the goal's

    def __post_init__(self) -> None:
        if self.radius_px < 0 or self.angle_deg < 0:
            raise ValueError(f"radius_px and angle_deg must be >= 0, got {self.radius_px}, {self.angle_deg}")


def near_goal(state: torch.Tensor, generator: torch.Generator,
              config: GoalStartConfig = GoalStartConfig()) -> torch.Tensor:
    """Probe-target states (N, 6) like ``state`` but with the block near the goal (see the module doc)."""
    if state.ndim != 2 or state.shape[1] != 6:
        raise ValueError(f"expected Push-T probe-target states of shape (N, 6), got {tuple(state.shape)}")
    n = state.shape[0]
    rand = lambda *shape: torch.rand(*shape, generator=generator, dtype=torch.float64)  # noqa: E731
    r = config.radius_px * rand(n).sqrt()
    phi = 2 * math.pi * rand(n)
    block = torch.stack([GOAL_POSE[0] + r * phi.cos(), GOAL_POSE[1] + r * phi.sin()], -1)
    angle = GOAL_POSE[2] + math.radians(config.angle_deg) * (2 * rand(n) - 1)
    cs = torch.stack([angle.cos(), angle.sin()], -1)
    agent = state[:, 0:2].double() * TABLE
    # draw every agent's fallback place up front, so the number of draws does not depend on the states
    ring = AGENT_RING_PX[0] + (AGENT_RING_PX[1] - AGENT_RING_PX[0]) * rand(n)
    psi = 2 * math.pi * rand(n)
    fallback = (block + torch.stack([ring * psi.cos(), ring * psi.sin()], -1)).clamp(AGENT_RADIUS, TABLE - AGENT_RADIUS)
    inside = distance_to_tee(agent, block, cs) <= AGENT_RADIUS
    agent = torch.where(inside[:, None], fallback, agent)
    out = torch.cat([agent / TABLE, block / TABLE, cs], -1)
    return out.to(state.dtype)


#: gym-pusht 0.1.8's reset: agent x, y ``integers(50, 450)``, block x, y ``integers(100, 400)`` (px), angle uniform
RESET_AGENT_PX = (50, 450)
RESET_BLOCK_PX = (100, 400)


def reset_like(state: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Probe-target states shaped and typed like ``state`` (N, 6), whose values are not used, drawn as gym-pusht
    draws its resets (see :data:`RESET_AGENT_PX`, :data:`RESET_BLOCK_PX`)."""
    if state.ndim != 2 or state.shape[1] != 6:
        raise ValueError(f"expected Push-T probe-target states of shape (N, 6), got {tuple(state.shape)}")
    n = state.shape[0]
    agent = torch.randint(*RESET_AGENT_PX, (n, 2), generator=generator).double()
    block = torch.randint(*RESET_BLOCK_PX, (n, 2), generator=generator).double()
    angle = math.pi * (2 * torch.rand(n, generator=generator, dtype=torch.float64) - 1)
    out = torch.cat([agent / TABLE, block / TABLE, angle.cos()[:, None], angle.sin()[:, None]], -1)
    return out.to(state.dtype)
