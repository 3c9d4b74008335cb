"""A scripted Push-T play policy: approach the T, push it from varied sides, wander, with noise."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import shapely.geometry as sg

from fog_envs.real.pusht import MAX_TARGET_DELTA
from fog_envs.real.pusht_reward import GOAL_POSE, tee_polygon


@dataclass(frozen=True)
class PushTPlayConfig:
    """Probabilities and magnitudes of the play behaviours."""

    p_goal_directed: float = 0.4  #: chance a push is aimed to move the block towards the goal
    p_wander: float = 0.1  #: chance the next segment is a random wander instead of a push
    push_steps: tuple[int, int] = (4, 16)  #: length range of one push, in steps
    wander_steps: tuple[int, int] = (3, 12)
    standoff: float = 28.0  #: pixels between the contact point and the approach waypoint
    noise: float = 0.15  #: std of Gaussian action noise (normalised units)
    speed: tuple[float, float] = (0.5, 1.0)  #: range of the per-segment speed scale
    p_near_goal: float = 0.25  #: chance an episode starts with the block near the goal (like a demo's end)
    near_goal_pos_std: float = 6.0  #: px
    near_goal_angle_std: float = 0.08  #: rad
    p_nudge: float = 0.0  #: chance a planned push is a nudge: a short, slow push that starts in contact
    nudge_steps: tuple[int, int] = (1, 5)  #: [low, high) length of one nudge, in steps
    nudge_speed: tuple[float, float] = (0.03, 0.3)  #: range of a nudge's speed (40 px · speed per step)
    nudge_standoff: float = 17.0  #: pixels between the contact point and a nudge's approach waypoint
    nudge_noise: float = 0.02  #: std of a nudge's action noise (the play noise would swamp it)

    def __post_init__(self) -> None:
        if not 0.0 <= self.p_nudge <= 1.0:
            raise ValueError(f"p_nudge must be in [0, 1], got {self.p_nudge}")


class PushTPlayPolicy:
    """Contact-rich exploration for ``RealPushT-v0`` (implements :class:`fog_envs.play.base.PlayPolicy`)."""

    def __init__(self, config: PushTPlayConfig = PushTPlayConfig()) -> None:
        self.config = config
        self._rng = np.random.default_rng(0)
        self._mode = "approach"
        self._steps_left = 0
        self._waypoint = np.zeros(2)
        self._push_dir = np.zeros(2)
        self._speed = 1.0
        self._near_goal = False
        self._nudge = False
        self._noise = config.noise

    def reset_options(self, rng: np.random.Generator) -> dict[str, Any] | None:
        """With probability ``p_near_goal``, start with the block near the goal and the agent clear of it."""
        cfg = self.config
        self._near_goal = rng.random() < cfg.p_near_goal
        if not self._near_goal:
            return None
        spread = rng.uniform(0.0, 1.0) ** 2  # mostly near-perfect placements, some rough ones
        block = GOAL_POSE + spread * np.array([*rng.normal(0, cfg.near_goal_pos_std, 2),
                                               rng.normal(0, cfg.near_goal_angle_std)])
        outline = tee_polygon(block)
        for _ in range(100):
            agent = rng.uniform(50, 462, 2)
            if outline.distance(sg.Point(*agent)) > 25.0:
                break
        return {"reset_to_state": [agent[0], agent[1], block[0], block[1], block[2]]}

    def reset(self, info: dict[str, Any], rng: np.random.Generator) -> None:
        self._rng = rng
        self._plan(np.asarray(info["state"], dtype=np.float64))
        if self._near_goal:  # look around a while before disturbing the placed block
            self._mode = "wander"
            self._steps_left = int(rng.integers(0, 60))
            self._push_dir = rng.normal(size=2)
            self._near_goal = False

    def _plan(self, state: np.ndarray) -> None:
        """Choose the next segment: an approach-then-push, or a wander."""
        cfg, rng = self.config, self._rng
        self._speed = rng.uniform(*cfg.speed)
        self._noise = cfg.noise
        self._nudge = False
        if rng.random() < cfg.p_wander:
            self._mode = "wander"
            self._steps_left = int(rng.integers(*cfg.wander_steps))
            self._push_dir = rng.normal(size=2)
            return
        block = state[2:5]
        outline = tee_polygon(block)
        centre = np.array(outline.centroid.coords[0])
        boundary = outline.boundary
        candidates = [np.array(boundary.interpolate(rng.random(), normalized=True).coords[0]) for _ in range(8)]
        normals = [(p - centre) / (np.linalg.norm(p - centre) + 1e-6) for p in candidates]
        if rng.random() < cfg.p_goal_directed:
            away_from_goal = centre - GOAL_POSE[:2]
            away_from_goal /= np.linalg.norm(away_from_goal) + 1e-6
            idx = int(np.argmax([n @ away_from_goal for n in normals]))
        else:
            idx = int(rng.integers(len(candidates)))
        contact, normal = candidates[idx], normals[idx]
        # Draw nothing extra when nudges are off, so that the default play data stays bit for bit the same.
        self._nudge = cfg.p_nudge > 0.0 and rng.random() < cfg.p_nudge
        angle = rng.uniform(-0.5, 0.5)
        rot = np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
        self._push_dir = rot @ (-normal)
        self._waypoint = contact + normal * (cfg.nudge_standoff if self._nudge else cfg.standoff)
        self._mode = "approach"
        self._steps_left = 40  # give up on an approach that takes too long

    def __call__(self, info: dict[str, Any]) -> np.ndarray:
        state = np.asarray(info["state"], dtype=np.float64)
        agent = state[:2]
        cfg = self.config
        if self._steps_left <= 0:
            if self._mode == "approach":
                self._mode = "push"
                if self._nudge:
                    self._steps_left = int(self._rng.integers(*cfg.nudge_steps))
                    self._speed = self._rng.uniform(*cfg.nudge_speed)
                    self._noise = cfg.nudge_noise
                else:
                    self._steps_left = int(self._rng.integers(*cfg.push_steps))
            else:
                self._plan(state)
        self._steps_left -= 1
        if self._mode == "approach":
            delta = self._waypoint - agent
            if np.linalg.norm(delta) < 8.0:
                self._steps_left = 0
            # Go around the block rather than through it when the straight line would hit it.
            line = sg.LineString([agent, self._waypoint])
            outline = tee_polygon(state[2:5])
            if line.length > 1e-6 and line.intersects(outline.buffer(18.0)) and np.linalg.norm(delta) > 40.0:
                side = np.array([-delta[1], delta[0]]) / (np.linalg.norm(delta) + 1e-6)
                delta = delta + side * 60.0
            action = delta / MAX_TARGET_DELTA
        else:
            action = self._push_dir / (np.linalg.norm(self._push_dir) + 1e-6)
        norm = np.linalg.norm(action)
        if norm > 1.0:
            action = action / norm
        action = action * self._speed + self._rng.normal(scale=self._noise, size=2)
        return np.clip(action, -1.0, 1.0).astype(np.float32)
