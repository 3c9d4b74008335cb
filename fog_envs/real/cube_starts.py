"""Push-cube start states for imagined episodes, in the probe-target layout
``[robot_x, robot_y, cos yaw, sin yaw, cube_x, cube_y, cos 4·yaw, sin 4·yaw]``: drawn as ``RealPushCube-v0`` draws
its resets (:func:`reset_like`), with the cube near the goal and the robot beside it (:func:`near_goal`), or as the
resets with the cube next to a wall (:func:`near_wall`).

A start distribution for imagined episodes: the real windows that start a world's episodes come from play,
which keeps the robot within half a metre of the cube, while every reset of the reference system puts it at
least ``MIN_RESET_ROBOT_CUBE`` away, anywhere in the arena (README item 36). The robot's and the cube's
positions are uniform within their reset margins of the walls, redrawn until the cube lies outside the goal's
margin and clear of the robot, exactly the reference system's conditions; both yaws are uniform. Pure torch:
every draw comes from the caller's generator.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch

#: candidate draws per round of rejection: the reset conditions hold for ~80 % of draws, so one round nearly always
#: does (near-wall draws, ~20 % of those, take one to three rounds)
_CANDIDATES = 8


Draw = Callable[[int], tuple[torch.Tensor, torch.Tensor, torch.Tensor]]


def _first_accepted(n: int, draw: Draw) -> tuple[torch.Tensor, torch.Tensor]:
    """Robot and cube positions (n, 2) each, by rejection: ``draw(k)`` gives ``k`` rows of ``_CANDIDATES`` candidate
    robot and cube positions (k, C, 2) and whether each meets the conditions (k, C); every row keeps its first
    candidate that does, and the rows without one are drawn again."""
    robot = torch.zeros(n, 2, dtype=torch.float64)
    cube = torch.zeros(n, 2, dtype=torch.float64)
    todo = torch.ones(n, dtype=torch.bool)
    while bool(todo.any()):
        r, c, ok = draw(int(todo.sum()))
        found = ok.any(-1)
        first = ok.float().argmax(-1)  # the first candidate that meets the conditions
        rows = todo.nonzero().squeeze(-1)[found]
        robot[rows] = r[found, first[found]]
        cube[rows] = c[found, first[found]]
        todo[rows] = False
    return robot, cube


def _with_yaws(robot: torch.Tensor, cube: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Probe-target states (n, 8) of the positions, both yaws uniform."""
    yaw = math.pi * (2 * torch.rand(robot.shape[0], 2, generator=generator, dtype=torch.float64) - 1)
    return torch.cat([robot, yaw[:, :1].cos(), yaw[:, :1].sin(), cube, (4 * yaw[:, 1:]).cos(), (4 * yaw[:, 1:]).sin()],
                     -1)


def _reset_states(n: int, generator: torch.Generator, dtype: torch.dtype, band_m: float | None) -> torch.Tensor:
    """``n`` states drawn as the reference system's resets; with ``band_m``, only those whose cube lies within
    ``band_m`` of its reset limit along x or y (by rejection, so the conditional distribution exactly)."""
    from fog_envs.real.cube import (ARENA_HALF_SIZE, CUBE_RESET_MARGIN, GOAL_CENTER, MIN_RESET_CUBE_GOAL,
                                    MIN_RESET_ROBOT_CUBE, ROBOT_RESET_MARGIN)

    if n < 0:
        raise ValueError(f"n must be >= 0, got {n}")
    lim_r, lim_c = ARENA_HALF_SIZE - ROBOT_RESET_MARGIN, ARENA_HALF_SIZE - CUBE_RESET_MARGIN
    goal = torch.tensor(GOAL_CENTER[:2], dtype=torch.float64)

    def draw(k: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        r = lim_r * (2 * torch.rand(k, _CANDIDATES, 2, generator=generator, dtype=torch.float64) - 1)
        c = lim_c * (2 * torch.rand(k, _CANDIDATES, 2, generator=generator, dtype=torch.float64) - 1)
        ok = ((c - goal).norm(dim=-1) > MIN_RESET_CUBE_GOAL) & ((c - r).norm(dim=-1) > MIN_RESET_ROBOT_CUBE)
        if band_m is not None:
            ok &= c.abs().amax(-1) >= lim_c - band_m
        return r, c, ok

    return _with_yaws(*_first_accepted(n, draw), generator).to(dtype)


def reset_states(n: int, generator: torch.Generator, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """``n`` probe-target states (n, 8) distributed as the reference system's resets (see the module doc)."""
    return _reset_states(n, generator, dtype, None)


def reset_like(state: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Reference-reset states shaped and typed like the probe-target states ``state`` (N, 8), whose values are
    not used: the task's ``reset_start`` sampler."""
    if state.ndim != 2 or state.shape[1] != 8:
        raise ValueError(f"expected push-cube probe-target states of shape (N, 8), got {tuple(state.shape)}")
    return reset_states(state.shape[0], generator, state.dtype)


@dataclass(frozen=True)
class CubeGoalStartConfig:
    """Where a near-goal start puts the cube and the robot."""

    radius_m: float = 0.6  #: the cube's centre uniform over this disc around the goal's (within the reset margins)
    #: the robot's centre this far from the cube's (clear of it), on any side
    robot_ring_m: tuple[float, float] = (0.4, 0.7)

    def __post_init__(self) -> None:
        lo, hi = self.robot_ring_m
        if self.radius_m < 0 or not 0 < lo <= hi:
            raise ValueError(f"CubeGoalStartConfig: need radius_m >= 0 and 0 < robot_ring_m[0] <= robot_ring_m[1], "
                             f"got {self.radius_m}, {self.robot_ring_m}")


def near_goal(state: torch.Tensor, generator: torch.Generator,
              config: CubeGoalStartConfig = CubeGoalStartConfig()) -> torch.Tensor:
    """States shaped and typed like the probe-target states ``state`` (N, 8), whose values are not used, with the
    cube near the goal (inside it, short of it, or past it toward the corner) and the robot on a ring around it on
    any side, within the reset margins of the walls; both yaws uniform. The task's ``goal_start`` sampler: imagined
    episodes that practise the last push and getting round a cube that went past the goal (README item 44)."""
    from fog_envs.real.cube import ARENA_HALF_SIZE, CUBE_RESET_MARGIN, GOAL_CENTER, ROBOT_RESET_MARGIN

    if state.ndim != 2 or state.shape[1] != 8:
        raise ValueError(f"expected push-cube probe-target states of shape (N, 8), got {tuple(state.shape)}")
    lim_r, lim_c = ARENA_HALF_SIZE - ROBOT_RESET_MARGIN, ARENA_HALF_SIZE - CUBE_RESET_MARGIN
    goal = torch.tensor(GOAL_CENTER[:2], dtype=torch.float64)
    lo, hi = config.robot_ring_m

    def draw(k: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        rand = lambda: torch.rand(k, _CANDIDATES, generator=generator, dtype=torch.float64)  # noqa: E731
        r, phi = config.radius_m * rand().sqrt(), 2 * math.pi * rand()
        c = goal + torch.stack([r * phi.cos(), r * phi.sin()], -1)
        d, psi = lo + (hi - lo) * rand(), 2 * math.pi * rand()
        b = c + torch.stack([d * psi.cos(), d * psi.sin()], -1)
        return b, c, (c.abs().amax(-1) <= lim_c) & (b.abs().amax(-1) <= lim_r)

    return _with_yaws(*_first_accepted(state.shape[0], draw), generator).to(state.dtype)


@dataclass(frozen=True)
class CubeWallStartConfig:
    """Which resets a near-wall start keeps."""

    #: the cube's centre within this of its reset limit (``ARENA_HALF_SIZE − CUBE_RESET_MARGIN``) along x or y: at
    #: 0.15 m the gap between the cube and the wall is at most 0.36 m, about the robot's 0.30 m width, so the robot
    #: may not fit behind it to push it off the wall
    band_m: float = 0.15

    def __post_init__(self) -> None:
        if not self.band_m > 0:
            raise ValueError(f"CubeWallStartConfig: band_m must be > 0, got {self.band_m}")


def near_wall(state: torch.Tensor, generator: torch.Generator,
              config: CubeWallStartConfig = CubeWallStartConfig()) -> torch.Tensor:
    """States shaped and typed like the probe-target states ``state`` (N, 8), whose values are not used, drawn as
    the reference system's resets but kept only where the cube lies within ``config.band_m`` of its reset limit
    (next to a wall, where the robot may not fit behind it): the task's ``wall_start`` sampler, imagined episodes
    that practise the starts the agents fail most (README item 46)."""
    if state.ndim != 2 or state.shape[1] != 8:
        raise ValueError(f"expected push-cube probe-target states of shape (N, 8), got {tuple(state.shape)}")
    return _reset_states(state.shape[0], generator, state.dtype, config.band_m)

