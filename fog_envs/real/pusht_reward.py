"""Push-T geometry, coverage and the shaped reward: pure functions of the true state.

This module is the single definition of the Push-T reward. ``RealPushT-v0`` computes its reward with it,
the collector labels the play datasets with it, and the world model's reward model learns it.

State layout (``info["state"]`` of ``RealPushT-v0``; workspace pixels of gym-pusht's 512×512 table):
``[agent_x, agent_y, block_x, block_y, block_angle]`` with the angle in radians, wrapped to [0, 2π).

Reward, in [0, 1]::

    reward = 0.6 * min(coverage / 0.95, 1)                                 # gym-pusht's reward, weighted
           + 0.3 * (0.5 * exp(-d_pos / 100 px) + 0.5 * exp(-|d_angle| / (π/4)))  # block-to-goal pose
           + 0.1 * exp(-d_contact / 50 px)                                  # agent-to-block approach

where ``coverage`` is the fraction of the goal T's area covered by the block, ``d_pos`` the distance
between the block's and the goal's origins, ``d_angle`` the wrapped angle difference and ``d_contact``
the gap between the agent disk (radius 15 px) and the block's outline. Success is ``coverage >= 0.95``.
"""

from __future__ import annotations

import numpy as np
import shapely.geometry as sg

GOAL_POSE = np.array([256.0, 256.0, np.pi / 4])  #: gym-pusht's fixed goal (x, y, angle)
SUCCESS_COVERAGE = 0.95
AGENT_RADIUS = 15.0
_SCALE = 30.0
_LENGTH = 4.0
#: The T's two boxes in the block's frame, exactly as gym-pusht builds them.
TEE_BOXES = (
    np.array([[-_LENGTH * _SCALE / 2, _SCALE], [_LENGTH * _SCALE / 2, _SCALE],
              [_LENGTH * _SCALE / 2, 0.0], [-_LENGTH * _SCALE / 2, 0.0]]),
    np.array([[-_SCALE / 2, _SCALE], [-_SCALE / 2, _LENGTH * _SCALE],
              [_SCALE / 2, _LENGTH * _SCALE], [_SCALE / 2, _SCALE]]),
)
REWARD_WEIGHTS = {"coverage": 0.6, "pose": 0.3, "approach": 0.1}
#: The reward as a string, stored in every dataset's attributes.
REWARD_DEFINITION = (
    "0.6*min(coverage/0.95,1) + 0.3*(0.5*exp(-d_pos/100px) + 0.5*exp(-|d_angle|/(pi/4)))"
    " + 0.1*exp(-d_contact/50px); success: coverage >= 0.95 (fog_envs.real.pusht_reward)"
)


def tee_polygon(pose: np.ndarray) -> sg.MultiPolygon:
    """The T's outline in world coordinates for a block pose ``(x, y, angle)``."""
    x, y, angle = float(pose[0]), float(pose[1]), float(pose[2])
    rot = np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    return sg.MultiPolygon([sg.Polygon(box @ rot.T + np.array([x, y])) for box in TEE_BOXES])


def coverage(block_pose: np.ndarray) -> float:
    """Fraction of the goal T's area that the block covers, in [0, 1]."""
    goal = tee_polygon(GOAL_POSE)
    return float(goal.intersection(tee_polygon(block_pose)).area / goal.area)


def wrap_angle(angle: float) -> float:
    """Wrap an angle to [-π, π)."""
    return float((angle + np.pi) % (2 * np.pi) - np.pi)


def reward_terms(state: np.ndarray) -> dict[str, float]:
    """The reward's three terms (each in [0, 1]) and the coverage, for a state ``[ax, ay, bx, by, angle]``."""
    state = np.asarray(state, dtype=np.float64)
    block = state[2:5]
    cov = coverage(block)
    d_pos = float(np.linalg.norm(block[:2] - GOAL_POSE[:2]))
    d_angle = abs(wrap_angle(block[2] - GOAL_POSE[2]))
    gap = max(tee_polygon(block).distance(sg.Point(state[0], state[1])) - AGENT_RADIUS, 0.0)
    return {
        "coverage": cov,
        "coverage_term": min(cov / SUCCESS_COVERAGE, 1.0),
        "pose_term": float(0.5 * np.exp(-d_pos / 100.0) + 0.5 * np.exp(-d_angle / (np.pi / 4))),
        "approach_term": float(np.exp(-gap / 50.0)),
    }


def combine_terms(terms: dict[str, float], weights: dict[str, float] = REWARD_WEIGHTS) -> float:
    """The reward from :func:`reward_terms`' output: the sum of the three terms weighted by ``weights``
    (keys ``coverage``, ``pose``, ``approach``; the env's own :data:`REWARD_WEIGHTS` by default)."""
    return float(weights["coverage"] * terms["coverage_term"] + weights["pose"] * terms["pose_term"]
                 + weights["approach"] * terms["approach_term"])


def reward(state: np.ndarray) -> tuple[float, float]:
    """Return ``(reward, coverage)`` for a true state ``[agent_x, agent_y, block_x, block_y, angle]``."""
    t = reward_terms(state)
    return combine_terms(t), t["coverage"]
