"""Did the manipulated object move? Per-env object pose layout and thresholds, as pure functions.

Used to report how contact-rich a play collection is: the fraction of steps (pairs of consecutive rows of
one episode) in which the object's pose changed by more than a threshold.

* ``RealPushT-v0``: block pose ``state[2:5]`` = (x, y) in pixels of the 512 px workspace and angle;
  moved when the position changes by more than 0.5 px or the angle by more than 0.005 rad.
* ``RealPushCube-v0``: cube pose ``state[3:6]`` = (x, y) in metres and yaw; moved when the position
  changes by more than 1 mm or the yaw by more than 0.005 rad.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class ObjectMotion:
    """Where the object's planar pose sits in the state vector, and what counts as a move."""

    xy: tuple[int, int]  #: state indices of the object's x and y
    angle: int  #: state index of the object's angle (radians)
    position_tol: float  #: a position change above this (state units) is a move
    angle_tol: float = 0.005  #: an angle change above this (radians, wrapped) is a move

    def moved(self, state: np.ndarray) -> np.ndarray:
        """``(T-1,)`` bool: whether the object moved between rows t and t+1 of one episode's ``(T, S)`` state."""
        state = np.asarray(state, dtype=np.float64)
        if state.ndim != 2:
            raise ValueError(f"state must be (T, S), got shape {state.shape}")
        xy = state[:, list(self.xy)]
        d_pos = np.linalg.norm(np.diff(xy, axis=0), axis=1)
        d_angle = np.abs(wrap_angle(np.diff(state[:, self.angle])))
        return (d_pos > self.position_tol) | (d_angle > self.angle_tol)


#: Object motion of each reference system.
OBJECT_MOTION: dict[str, ObjectMotion] = {
    "RealPushT-v0": ObjectMotion(xy=(2, 3), angle=4, position_tol=0.5, angle_tol=0.005),
    "RealPushCube-v0": ObjectMotion(xy=(3, 4), angle=5, position_tol=1e-3, angle_tol=0.005),
}


def wrap_angle(angle: np.ndarray) -> np.ndarray:
    """Wrap angles (radians) to [-π, π)."""
    return (np.asarray(angle) + np.pi) % (2 * np.pi) - np.pi


def object_motion(env_id: str) -> ObjectMotion | None:
    """The :class:`ObjectMotion` of an env id (``"module:Id"`` allowed), or None when unknown."""
    return OBJECT_MOTION.get(env_id.split(":")[-1])


def moved_counts(state: np.ndarray, episode_ends: np.ndarray, motion: ObjectMotion) -> tuple[int, int]:
    """(steps with motion, steps) over all episodes of a flat ``(N, S)`` state array; steps never cross episodes."""
    state = np.asarray(state, dtype=np.float64)
    ends = np.asarray(episode_ends, dtype=np.int64)
    moved = motion.moved(state)  # (N-1,): pair (t, t+1)
    same_episode = np.ones(len(moved), dtype=bool)
    boundaries = ends[:-1] - 1  # pair (end-1, end) straddles two episodes
    same_episode[boundaries[(boundaries >= 0) & (boundaries < len(moved))]] = False
    return int(np.count_nonzero(moved & same_episode)), int(np.count_nonzero(same_episode))


def moved_fraction(state: np.ndarray, episode_ends: np.ndarray, motion: ObjectMotion) -> float:
    """Fraction of within-episode steps in which the object moved (NaN if no episode has two rows)."""
    moved, steps = moved_counts(state, episode_ends, motion)
    return moved / steps if steps else float("nan")
