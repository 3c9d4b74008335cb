"""The push-cube reward and success as torch functions of probe-target states (:mod:`fog_envs.real.cube_reward`).

Probe targets (``fog_envs.wm.tasks``): ``[robot_x, robot_y, cos yaw, sin yaw, cube_x, cube_y, cos 4·yaw_c,
sin 4·yaw_c]`` in metres. The reward reads only the two positions, so it is the reference system's reward
exactly: the approach and progress terms are differentiable, the success bonus is a step (zero gradient).
"""

from __future__ import annotations

import torch

from fog_envs.real.cube_reward import APPROACH_SCALE, CONTACT_DISTANCE, PROGRESS_RANGE, REWARD_WEIGHTS
from fog_envs.real.cube_scene import GOAL_CENTER, GOAL_RADIUS


def cube_goal_distance(state: torch.Tensor) -> torch.Tensor:
    """Distance (m) (...,) from the cube's centre to the goal centre of probe-target states (..., 8)."""
    goal = torch.tensor(GOAL_CENTER, dtype=state.dtype, device=state.device)
    return (state[..., 4:6] - goal).norm(dim=-1)


def reward(state: torch.Tensor) -> torch.Tensor:
    """The push-cube reward (...,) of probe-target states (..., 8)."""
    d_cg = cube_goal_distance(state)
    d_rc = (state[..., 4:6] - state[..., 0:2]).norm(dim=-1)
    w = REWARD_WEIGHTS
    return (w["approach"] * torch.exp(-torch.clamp(d_rc - CONTACT_DISTANCE, min=0.0) / APPROACH_SCALE)
            + w["progress"] * torch.clamp(1.0 - d_cg / PROGRESS_RANGE, min=0.0)
            + w["success"] * (d_cg <= GOAL_RADIUS).to(state.dtype))


def outcome(state: torch.Tensor) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """``(is_success, {"cube_goal_distance": d})`` of probe-target states (..., 8)."""
    d_cg = cube_goal_distance(state)
    return d_cg <= GOAL_RADIUS, {"cube_goal_distance": d_cg}
