"""Push-cube success and shaped reward: pure functions of the true state.

This module is the single definition of the push-cube reward. ``RealPushCube-v0`` computes its reward
with it and the play datasets are labelled with it.

State layout (``info["state"]`` of ``RealPushCube-v0``; metres and radians, world frame)::

    [robot_x, robot_y, robot_yaw, cube_x, cube_y, cube_yaw]

Yaws are wrapped to [-π, π]. The goal is fixed (``GOAL_CENTER``, ``GOAL_RADIUS``), so it is not in the state.

Reward, in [0, 2] (in [0, 1] except when successful)::

    reward = 0.25 * exp(-max(d_rc - 0.31 m, 0) / 0.5 m)     # approach: robot near the cube
           + 0.75 * max(1 - d_cg / 3 m, 0)                    # progress: cube near the goal
           + 1.0  * [d_cg <= 0.25 m]                          # success bonus

where ``d_rc`` is the robot-centre-to-cube-centre distance (0.31 m = robot half-length + cube half-side:
the robot touches the cube face-on, so the approach term is 1 whenever they touch) and ``d_cg`` the
cube-centre-to-goal-centre distance in the floor plane. Success: the cube's centre is inside the goal
disc, ``d_cg <= GOAL_RADIUS``.
"""

from __future__ import annotations

import numpy as np

from fog_envs.real.cube_scene import CUBE_HALF_SIZE, GOAL_CENTER, GOAL_RADIUS, ROBOT_HALF_EXTENTS

STATE_DIM = 6
STATE_NAMES = ("robot_x", "robot_y", "robot_yaw", "cube_x", "cube_y", "cube_yaw")
CONTACT_DISTANCE = ROBOT_HALF_EXTENTS[0] + CUBE_HALF_SIZE  #: centre distance when touching face-on
APPROACH_SCALE = 0.5  #: metres
PROGRESS_RANGE = 3.0  #: metres; the progress term is 0 beyond this cube-goal distance
REWARD_WEIGHTS = {"approach": 0.25, "progress": 0.75, "success": 1.0}
#: The reward as a string, for dataset attributes.
REWARD_DEFINITION = (
    "0.25*exp(-max(d_robot_cube-0.31m,0)/0.5m) + 0.75*max(1-d_cube_goal/3m,0) + 1.0*[d_cube_goal<=0.25m];"
    " success: d_cube_goal <= 0.25 m, goal centre (0.75, 0.75) (fog_envs.real.cube_reward)"
)


def _check(state: np.ndarray) -> np.ndarray:
    s = np.asarray(state, dtype=np.float64)
    if s.shape[-1:] != (STATE_DIM,):
        raise ValueError(f"push-cube state must have {STATE_DIM} entries {STATE_NAMES}, got shape {s.shape}")
    return s


def cube_goal_distance(state: np.ndarray) -> np.ndarray | float:
    """Distance (m) from the cube's centre to the goal centre; works on ``(..., 6)`` arrays."""
    s = _check(state)
    d = np.linalg.norm(s[..., 3:5] - np.asarray(GOAL_CENTER), axis=-1)
    return float(d) if d.ndim == 0 else d


def robot_cube_distance(state: np.ndarray) -> np.ndarray | float:
    """Distance (m) from the robot's centre to the cube's centre; works on ``(..., 6)`` arrays."""
    s = _check(state)
    d = np.linalg.norm(s[..., 3:5] - s[..., 0:2], axis=-1)
    return float(d) if d.ndim == 0 else d


def is_success(state: np.ndarray) -> bool:
    """Whether the cube's centre is inside the goal disc."""
    return bool(cube_goal_distance(state) <= GOAL_RADIUS)


def reward_terms(state: np.ndarray) -> dict[str, float]:
    """The reward's terms for one state: ``approach_term``, ``progress_term`` (in [0, 1]), ``success``
    (0 or 1) and the two distances."""
    s = _check(state)
    if s.ndim != 1:
        raise ValueError(f"reward_terms takes one state of shape ({STATE_DIM},), got {s.shape}; use reward_batch")
    d_cg, d_rc = float(cube_goal_distance(s)), float(robot_cube_distance(s))
    return {
        "approach_term": float(np.exp(-max(d_rc - CONTACT_DISTANCE, 0.0) / APPROACH_SCALE)),
        "progress_term": float(max(1.0 - d_cg / PROGRESS_RANGE, 0.0)),
        "success": float(d_cg <= GOAL_RADIUS),
        "cube_goal_distance": d_cg,
        "robot_cube_distance": d_rc,
    }


def reward_batch(states: np.ndarray) -> np.ndarray:
    """The reward of each state in a ``(..., 6)`` array, as float64 of shape ``(...)``."""
    s = _check(states)
    d_cg = np.asarray(cube_goal_distance(s))
    d_rc = np.asarray(robot_cube_distance(s))
    w = REWARD_WEIGHTS
    return (w["approach"] * np.exp(-np.maximum(d_rc - CONTACT_DISTANCE, 0.0) / APPROACH_SCALE)
            + w["progress"] * np.maximum(1.0 - d_cg / PROGRESS_RANGE, 0.0)
            + w["success"] * (d_cg <= GOAL_RADIUS))


def reward(state: np.ndarray) -> float:
    """The reward of one true state ``[robot_x, robot_y, robot_yaw, cube_x, cube_y, cube_yaw]``."""
    s = _check(state)
    if s.ndim != 1:
        raise ValueError(f"reward takes one state of shape ({STATE_DIM},), got {s.shape}; use reward_batch")
    return float(reward_batch(s))
