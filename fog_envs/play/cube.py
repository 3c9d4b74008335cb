"""A scripted push-cube play policy: walk up to the cube, push it in varied directions, look around, with noise.

Each episode is a sequence of segments. Most are pushes: pick a direction (towards the goal with
probability ``p_goal_directed``, otherwise a random direction that keeps the cube away from the walls),
walk to a staging point behind the cube (around the cube if it is in the way), turn to face the push
direction, then drive through the cube while steering to keep it centred in front. The other segments
are wanders (a random body-frame velocity held for a few steps), look-arounds (turning in place) and
short bursts of uniformly random actions. Gaussian noise is added to every action.

With ``p_wall > 0`` some segments are wall play, which the default play avoids: half push the cube into its
nearest wall and keep pushing it there (pinned) for a few steps, half drive the robot alone into its nearest
wall at a random heading. A model trained without them has never seen a pinned cube or a robot held by a wall.
With ``p_drive > 0`` some segments are drives: one command from the whole action box (each component saturated
a third of the time) held for a few steps. Wanders stay within the play's usual speeds (no full reverse, no
full turn), so without drives a model has not seen the robot at full speed in reverse or turning.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from fog_envs.real.cube import (
    ARENA_HALF_SIZE,
    CUBE_HALF_SIZE,
    GOAL_CENTER,
    MAX_VX,
    MAX_VY,
    MAX_YAW_RATE,
    ROBOT_HALF_EXTENTS,
)

_CONTACT = ROBOT_HALF_EXTENTS[0] + CUBE_HALF_SIZE  # robot-centre-to-cube-centre distance when touching
_ROBOT_LIMIT = ARENA_HALF_SIZE - 0.25  # robot centres beyond this are too close to a wall
_CUBE_LIMIT = ARENA_HALF_SIZE - 0.5  # random pushes aim to end with the cube inside this
_WALL_GUARD = ARENA_HALF_SIZE - 0.45  # a push heading to a wall stops once the cube is beyond this
_AVOID_RADIUS = 0.45  # paths passing closer than this to the cube's centre detour around it
_DT = 0.2  # seconds per env step (5 Hz)


@dataclass(frozen=True)
class PushCubePlayConfig:
    """Probabilities and magnitudes of the play behaviours."""

    p_goal_directed: float = 0.35  #: chance a push aims the cube at the goal
    p_wander: float = 0.08  #: chance the next segment is a wander
    p_look: float = 0.06  #: chance the next segment is a look-around (turning in place)
    p_random: float = 0.06  #: chance the next segment is uniformly random actions
    push_steps: tuple[int, int] = (5, 18)  #: length range of a push, in steps
    wander_steps: tuple[int, int] = (3, 10)
    look_steps: tuple[int, int] = (3, 9)
    random_steps: tuple[int, int] = (2, 6)
    approach_timeout: int = 40  #: steps before an approach gives up and pushes from where it is
    standoff: float = 0.08  #: metres between the robot's front and the cube at the staging point
    direction_jitter: float = 0.3  #: radians of noise on a goal-directed push direction
    noise: float = 0.1  #: std of Gaussian action noise (normalised units)
    speed: tuple[float, float] = (0.6, 1.0)  #: range of the per-segment speed scale
    p_wall: float = 0.0  #: chance the next segment is wall play (the cube pinned, or the robot, against a wall)
    wall_hold_steps: tuple[int, int] = (4, 16)  #: steps a wall segment keeps pushing once at the wall
    p_drive: float = 0.0  #: chance the next segment is a drive (a command from the whole action box, held)
    drive_steps: tuple[int, int] = (3, 16)

    def __post_init__(self) -> None:
        total = self.p_wander + self.p_look + self.p_random + self.p_wall + self.p_drive
        if not (0.0 <= self.p_wall <= 1.0 and 0.0 <= self.p_drive <= 1.0) or total > 1.0:
            raise ValueError(f"p_wall and p_drive must be in [0, 1] with p_wander + p_look + p_random + p_wall + "
                             f"p_drive <= 1, got p_wall={self.p_wall}, p_drive={self.p_drive} (sum {total})")


def _wrap(angle: float) -> float:
    return float((angle + np.pi) % (2 * np.pi) - np.pi)


def _unit(v: np.ndarray) -> np.ndarray:
    n = float(np.linalg.norm(v))
    return v / n if n > 1e-9 else np.array([1.0, 0.0])


def _to_body(vec: np.ndarray, yaw: float) -> np.ndarray:
    c, s = np.cos(yaw), np.sin(yaw)
    return np.array([c * vec[0] + s * vec[1], -s * vec[0] + c * vec[1]])


class PushCubePlayPolicy:
    """Contact-rich exploration for ``RealPushCube-v0`` (implements :class:`fog_envs.play.base.PlayPolicy`)."""

    def __init__(self, config: PushCubePlayConfig = PushCubePlayConfig()) -> None:
        self.config = config
        self._rng = np.random.default_rng(0)
        self._mode = "approach"
        self._steps_left = 0
        self._push_dir = np.array([1.0, 0.0])
        self._push_steps = 0
        self._push_offset = 0.0
        self._push_origin = np.zeros(2)
        self._hold = np.zeros(3)
        self._speed = 1.0
        self._pin = False  # the current push drives the cube into a wall on purpose
        self._ram_target = np.zeros(2)
        self._ram_yaw = 0.0

    def reset(self, info: dict[str, Any], rng: np.random.Generator) -> None:
        """Start a new episode drawing all randomness from ``rng``."""
        self._rng = rng
        self._plan(np.asarray(info["state"], dtype=np.float64))

    # ---- planning ----------------------------------------------------------------------------------
    def _plan(self, state: np.ndarray) -> None:
        """Choose the next segment."""
        cfg, rng = self.config, self._rng
        self._speed = float(rng.uniform(*cfg.speed))
        u = rng.random()
        if u < cfg.p_wander:
            self._mode, self._steps_left = "wander", int(rng.integers(*cfg.wander_steps))
            self._hold = np.array([rng.uniform(-0.4, 1.0), rng.uniform(-1.0, 1.0), rng.uniform(-0.8, 0.8)])
        elif u < cfg.p_wander + cfg.p_look:
            self._mode, self._steps_left = "look", int(rng.integers(*cfg.look_steps))
            self._hold = np.array([0.0, 0.0, rng.choice([-1.0, 1.0]) * rng.uniform(0.5, 1.0)])
        elif u < cfg.p_wander + cfg.p_look + cfg.p_random:
            self._mode, self._steps_left = "random", int(rng.integers(*cfg.random_steps))
        elif u < cfg.p_wander + cfg.p_look + cfg.p_random + cfg.p_wall:
            if rng.random() < 0.5:
                self._plan_ram(state)
            else:
                self._plan_wall_push(state)
        elif u < cfg.p_wander + cfg.p_look + cfg.p_random + cfg.p_wall + cfg.p_drive:
            self._mode, self._steps_left = "wander", int(rng.integers(*cfg.drive_steps))
            self._hold = np.clip(1.5 * rng.uniform(-1.0, 1.0, size=3), -1.0, 1.0)
        else:
            self._plan_push(state)

    def _plan_ram(self, state: np.ndarray) -> None:
        """Drive the robot alone into its nearest wall (at a random heading) and keep driving there."""
        rng, pos = self._rng, state[0:2]
        k = int(np.argmax(np.abs(pos)))
        side = float(np.sign(pos[k])) or 1.0
        target = pos + rng.uniform(-0.5, 0.5, size=2)
        target[k] = side * (ARENA_HALF_SIZE + 0.3)
        distance = float(np.linalg.norm(target - pos))
        self._ram_target, self._ram_yaw = target, float(rng.uniform(-np.pi, np.pi))
        reach = int(distance / (MAX_VY * self._speed * _DT))  # the slowest way in: sideways
        self._mode = "ram"
        self._steps_left = min(reach, 25) + int(rng.integers(*self.config.wall_hold_steps))

    def _plan_wall_push(self, state: np.ndarray) -> None:
        """Push the cube into its nearest wall (the wall's normal, jittered) and keep pushing it there."""
        rng, cube = self._rng, state[3:5]
        k = int(np.argmax(np.abs(cube)))
        normal = np.zeros(2)
        normal[k] = float(np.sign(cube[k])) or 1.0
        angle = float(np.arctan2(normal[1], normal[0])) + rng.uniform(-0.6, 0.6)
        direction = np.array([np.cos(angle), np.sin(angle)])
        staging = self._staging(cube, direction)
        if staging is None:  # no room behind the cube: an ordinary push
            self._plan_push(state)
            return
        step_len = MAX_VX * self._speed * _DT
        to_wall = (ARENA_HALF_SIZE - CUBE_HALF_SIZE - abs(float(cube[k]))) / max(abs(float(direction[k])), 0.3)
        self._push_steps = min(int(to_wall / step_len) + 2, 30) + int(rng.integers(*self.config.wall_hold_steps))
        self._push_dir = direction
        self._push_offset = staging[1]
        self._push_origin = cube.copy()
        self._mode, self._steps_left = "approach", self.config.approach_timeout
        self._pin = True

    def _staging(self, cube: np.ndarray, direction: np.ndarray) -> tuple[np.ndarray, float] | None:
        """Where the robot starts a push (and its sideways offset from the push line), or None.

        The robot lines up behind the cube; next to a wall it may shift sideways by up to 0.14 m (its front
        face still covers part of the cube) to leave room between itself and the wall.
        """
        behind = cube - direction * (_CONTACT + self.config.standoff)
        left = np.array([-direction[1], direction[0]])
        for offset in (0.0, 0.07, -0.07, 0.14, -0.14):
            point = behind + left * offset
            if np.all(np.abs(point) <= _ROBOT_LIMIT):
                return point, offset
        return None

    def _plan_push(self, state: np.ndarray) -> None:
        cfg, rng = self.config, self._rng
        self._pin = False
        cube = state[3:5]
        to_goal = np.asarray(GOAL_CENTER) - cube
        step_len = MAX_VX * self._speed * _DT
        direction = None
        if rng.random() < cfg.p_goal_directed:
            angle = np.arctan2(to_goal[1], to_goal[0]) + rng.normal(scale=cfg.direction_jitter)
            cand = np.array([np.cos(angle), np.sin(angle)])
            if self._staging(cube, cand) is not None:
                direction = cand
                self._push_steps = int(np.linalg.norm(to_goal) / step_len) + 2 + int(rng.integers(-2, 3))
        if direction is None:
            self._push_steps = int(rng.integers(*cfg.push_steps))
            length = max(self._push_steps - 2, 1) * step_len  # the first ~2 steps close the stand-off gap
            angles = rng.uniform(-np.pi, np.pi, size=16)
            cands = [np.array([np.cos(a), np.sin(a)]) for a in angles]
            cands = [d for d in cands if self._staging(cube, d) is not None]
            # Wall clearance of the cube at the end of the push: prefer pushes that keep it off the walls.
            clearance = [ARENA_HALF_SIZE - float(np.max(np.abs(cube + length * d))) for d in cands]
            good = [d for d, c in zip(cands, clearance) if c >= ARENA_HALF_SIZE - _CUBE_LIMIT]
            if good:
                direction = good[0]
            elif cands:  # near a wall: the push that ends furthest from the walls (often along the wall)
                direction = cands[int(np.argmax(clearance))]
                self._push_steps = min(self._push_steps, 8)
            else:  # wedged in a corner: try towards the arena's centre
                direction = _unit(-cube)
        self._push_steps = max(self._push_steps, 3)
        self._push_dir = direction
        staging = self._staging(cube, direction)
        self._push_offset = staging[1] if staging is not None else 0.0
        self._push_origin = cube.copy()
        self._mode, self._steps_left = "approach", cfg.approach_timeout

    # ---- control -----------------------------------------------------------------------------------
    def _goto(self, state: np.ndarray, target: np.ndarray, yaw_target: float) -> np.ndarray:
        """A normalised action moving the robot towards ``target`` while turning to ``yaw_target``."""
        pos, yaw = state[0:2], float(state[2])
        v_world = 2.0 * (target - pos)
        v_body = _to_body(v_world, yaw) / np.array([MAX_VX, MAX_VY])
        peak = float(np.max(np.abs(v_body)))
        if peak > self._speed:
            v_body *= self._speed / peak
        wz = np.clip(2.5 * _wrap(yaw_target - yaw) / MAX_YAW_RATE, -1.0, 1.0)
        return np.array([v_body[0], v_body[1], wz])

    def _approach(self, state: np.ndarray) -> np.ndarray:
        pos, yaw, cube = state[0:2], float(state[2]), state[3:5]
        staging = self._staging(cube, self._push_dir)
        if staging is None:
            staging = (np.clip(cube - self._push_dir * (_CONTACT + self.config.standoff),
                               -_ROBOT_LIMIT, _ROBOT_LIMIT), 0.0)
        staging, self._push_offset = staging
        push_yaw = float(np.arctan2(self._push_dir[1], self._push_dir[0]))
        to_staging = staging - pos
        dist = float(np.linalg.norm(to_staging))
        if dist < 0.1 and abs(_wrap(push_yaw - yaw)) < 0.3:
            self._mode, self._steps_left = "push", self._push_steps
            self._push_origin = cube.copy()
            return self._push(state)
        target = staging
        # Detour around the cube when the straight path would run into it.
        if dist > 1e-6:
            t = float(np.clip((cube - pos) @ to_staging / dist**2, 0.0, 1.0))
            closest = pos + t * to_staging
            gap = float(np.linalg.norm(closest - cube))
            if gap < _AVOID_RADIUS and 0.0 < t < 1.0:
                away = closest - cube if gap > 1e-3 else np.array([-to_staging[1], to_staging[0]])
                target = np.clip(cube + _unit(away) * (_AVOID_RADIUS + 0.15), -_ROBOT_LIMIT, _ROBOT_LIMIT)
        to_target = target - pos
        # Face where it walks while far away (it sees where it goes), then turn to the push direction.
        far = np.linalg.norm(to_target) > 0.5 and dist > 0.9
        yaw_target = float(np.arctan2(to_target[1], to_target[0])) if far else push_yaw
        return self._goto(state, target, yaw_target)

    def _push(self, state: np.ndarray) -> np.ndarray:
        """Drive through the cube, steering its path back onto the planned push line."""
        pos, yaw, cube = state[0:2], float(state[2]), state[3:5]
        d = self._push_dir
        left = np.array([-d[1], d[0]])
        rel = _to_body(cube - pos, yaw)
        if rel[0] > _CONTACT + 0.4 or rel[0] < 0.0 or abs(rel[1] + self._push_offset) > 0.25:
            self._steps_left = 0  # lost the cube: plan again
        toward_wall = (np.abs(cube) > _WALL_GUARD) & (np.sign(cube) * d > 0.1)
        if np.any(toward_wall) and not self._pin:
            self._steps_left = 0  # about to pin the cube against a wall: stop
        # Aim at a point on the (offset) push line a little ahead of the cube.
        along = float((cube - self._push_origin) @ d)
        aim = self._push_origin + d * (along + 0.6) + left * self._push_offset - pos
        wz = np.clip(2.0 * _wrap(float(np.arctan2(aim[1], aim[0])) - yaw) / MAX_YAW_RATE, -1.0, 1.0)
        # Keep the cube at the planned spot on the robot's front face.
        vy = np.clip(2.0 * (rel[1] + self._push_offset) * MAX_VX / MAX_VY, -0.6, 0.6)
        return np.array([self._speed, vy, wz])

    def __call__(self, info: dict[str, Any]) -> np.ndarray:
        """The next action (float32, shape (3,), in [-1, 1]) for the state in ``info["state"]``."""
        state = np.asarray(info["state"], dtype=np.float64)
        cfg, rng = self.config, self._rng
        if self._steps_left <= 0:
            if self._mode == "approach":
                self._mode, self._steps_left = "push", self._push_steps  # timed out: push from here
            else:
                self._plan(state)
        self._steps_left -= 1
        if self._mode == "approach":
            action = self._approach(state)
        elif self._mode == "push":
            action = self._push(state)
        elif self._mode == "random":
            action = rng.uniform(-1.0, 1.0, size=3)
        elif self._mode == "ram":
            action = self._goto(state, self._ram_target, self._ram_yaw)
        else:
            action = self._hold
        action = action + rng.normal(scale=cfg.noise, size=3)
        return np.clip(action, -1.0, 1.0).astype(np.float32)
