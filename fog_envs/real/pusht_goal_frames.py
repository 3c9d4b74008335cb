"""Push-T frames with the block near its goal, rendered by ``RealPushT-v0``: extra training frames for the state
probe where it must be most precise.

Success needs the block within about 2 px (of 512) and 1° of its goal pose, a quarter of one of the 64 × 64
observation's pixels, and the play data rarely puts the block there (its median coverage is 0). The poses: agents
uniform over the table, blocks drawn by :func:`fog_envs.real.pusht_starts.near_goal` (within ``radius_px`` and
``angle_deg`` of the goal; agents that would touch the block re-drawn on a ring around it), all from one seed.
"""

from __future__ import annotations

import numpy as np
import torch

from fog_envs.real.pusht_reward_torch import TABLE
from fog_envs.real.pusht_starts import GoalStartConfig, near_goal


def probe_to_true(states: np.ndarray) -> np.ndarray:
    """True-state layout ``[agent_x, agent_y, block_x, block_y, angle mod 2π]`` (px, rad) of probe-target states
    ``[agent_xy, block_xy] / 512, cos θ, sin θ`` (..., 6)."""
    s = np.asarray(states, dtype=np.float64)
    return np.concatenate([s[..., :4] * TABLE, np.arctan2(s[..., 5:6], s[..., 4:5]) % (2 * np.pi)], -1)


def goal_states(n: int, seed: int, config: GoalStartConfig = GoalStartConfig(),
                dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """(n, 6) probe-target states with the block near the goal (seeded; see the module docstring). ``dtype`` is
    that of the draws as well as of the result, so each dtype gives its own (reproducible) poses."""
    if n < 0:
        raise ValueError(f"goal_states: n must be >= 0, got {n}")
    g = torch.Generator().manual_seed(seed)
    agents = 40 + 432 * torch.rand(n, 2, generator=g, dtype=dtype)
    base = torch.cat([agents / TABLE, torch.full((n, 2), 0.5, dtype=dtype), torch.ones(n, 1, dtype=dtype),
                      torch.zeros(n, 1, dtype=dtype)], -1)
    return near_goal(base, g, config)


def goal_poses(n: int, seed: int, config: GoalStartConfig = GoalStartConfig()) -> np.ndarray:
    """(n, 5) true-layout poses with the block near the goal (:func:`goal_states` in float64)."""
    return probe_to_true(goal_states(n, seed, config, torch.float64).numpy())


def render_poses(poses: np.ndarray) -> np.ndarray:
    """(n, 64, 64, 3) uint8 observations of ``RealPushT-v0`` reset to each true-layout pose (n, 5)."""
    import gymnasium as gym

    import fog_envs  # noqa: F401  (registers the envs)

    env = gym.make("RealPushT-v0")
    try:
        frames = [env.reset(seed=0, options={"reset_to_state": p})[0] for p in np.asarray(poses)]
    finally:
        env.close()
    shape = env.observation_space.shape
    return np.stack(frames) if frames else np.zeros((0, *shape), dtype=np.uint8)


def goal_frames(n: int, seed: int, config: GoalStartConfig = GoalStartConfig()) -> tuple[np.ndarray, np.ndarray]:
    """``(frames (n, 64, 64, 3) uint8, true states (n, 5))`` of ``n`` seeded near-goal poses."""
    poses = goal_poses(n, seed, config)
    return render_poses(poses), poses
