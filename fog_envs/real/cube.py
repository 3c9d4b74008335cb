"""``RealPushCube-v0``: an ego-centric MuJoCo robot base that pushes a cube into a goal area.

The stand-in for a quadruped under a locomotion controller: the policy commands body-frame velocities, a
50 Hz inner controller tracks them, and the robot sees the arena through a camera on its front.

* Observation: ``Box(0, 255, (64, 64, 3), uint8)``, RGB, HWC, from the robot's ``ego`` camera.
* Action: ``Box(-1, 1, (3,), float32)``, normalised body-frame ``(vx, vy, yaw_rate)``, scaled by
  ``MAX_VX = 0.5 m/s``, ``MAX_VY = 0.3 m/s`` and ``MAX_YAW_RATE = 1.5 rad/s``. Actions outside [-1, 1]
  (beyond 1e-4 of round-off), of the wrong shape, or with NaN/inf raise ``ValueError``.
* Timing: 5 Hz policy; each step holds the command for 0.2 s, in which the inner controller re-targets the
  robot's velocity actuators 10 times (50 Hz; the body-frame command is rotated to the world frame with
  the current yaw), each followed by 5 physics steps of 4 ms. 200-step episodes (the registered TimeLimit).
* Reset: robot pose and cube pose drawn from ``self.np_random`` (cube at least 0.3 m from the walls,
  outside the goal by at least 0.3 m, and clear of the robot), or exactly ``options["reset_to_state"]``.
  ``wall_start_band_m=B`` keeps only the draws whose cube lies within ``B`` of its reset limit (next to a wall):
  the resets' conditional distribution, as :func:`fog_envs.real.cube_starts.near_wall` draws them for imagined
  episodes (data where robot, cube and wall meet, README item 47).
* Reward: :func:`fog_envs.real.cube_reward.reward` (approach + cube-to-goal progress + success bonus).
* ``info``: ``state`` (float64 ``[robot_x, robot_y, robot_yaw, cube_x, cube_y, cube_yaw]``), ``is_success``
  (cube centre within ``GOAL_RADIUS`` of ``GOAL_CENTER``), ``cube_goal_distance``, ``robot_cube_distance``
  and ``reward_terms``.
* Episodes are not terminated at success unless ``terminate_on_success=True``.
* ``render()`` returns the ego frame (``render_view="ego"``, default, no extra rendering) or a top-down
  view of the arena of ``render_size`` pixels (``render_view="overview"``).
"""

from __future__ import annotations

import os
from typing import Any

os.environ.setdefault("MUJOCO_GL", "egl")

import gymnasium as gym  # noqa: E402
import mujoco  # noqa: E402
import numpy as np  # noqa: E402
from gymnasium import spaces  # noqa: E402

from fog_envs.action_checks import check_action  # noqa: E402
from fog_envs.real import cube_reward  # noqa: E402
from fog_envs.real.cube_scene import (  # noqa: E402
    ARENA_HALF_SIZE,
    CUBE_HALF_SIZE,
    GOAL_CENTER,
    GOAL_RADIUS,
    PHYSICS_TIMESTEP,
    ROBOT_HALF_EXTENTS,
    scene_xml,
)

ENV_ID = "RealPushCube-v0"
MAX_VX = 0.5  #: m/s at action[0] = ±1 (forward/backward)
MAX_VY = 0.3  #: m/s at action[1] = ±1 (left/right)
MAX_YAW_RATE = 1.5  #: rad/s at action[2] = ±1 (counter-clockwise positive)
CONTROL_HZ = 5
INNER_HZ = 50
OBS_SIZE = 64
INNER_UPDATES_PER_STEP = INNER_HZ // CONTROL_HZ  #: 10
PHYSICS_STEPS_PER_UPDATE = int(round(1.0 / (INNER_HZ * PHYSICS_TIMESTEP)))  #: 5
ROBOT_RESET_MARGIN = 0.35  #: min distance of the robot's centre from the walls at reset
CUBE_RESET_MARGIN = 0.3  #: min distance of the cube's centre from the walls at reset
MIN_RESET_CUBE_GOAL = GOAL_RADIUS + 0.3
MIN_RESET_ROBOT_CUBE = 0.6
__all__ = ["RealPushCubeEnv", "GOAL_CENTER", "GOAL_RADIUS", "ARENA_HALF_SIZE", "MAX_VX", "MAX_VY",
           "MAX_YAW_RATE", "CUBE_HALF_SIZE", "ROBOT_HALF_EXTENTS"]


def _wrap(angle: float) -> float:
    return float((angle + np.pi) % (2 * np.pi) - np.pi)


def _yaw_from_quat(q: np.ndarray) -> float:
    w, x, y, z = (float(v) for v in q)
    return float(np.arctan2(2.0 * (w * z + x * y), 1.0 - 2.0 * (y * y + z * z)))


class RealPushCubeEnv(gym.Env[np.ndarray, np.ndarray]):
    """Push-cube reference system (see the module docstring for the contract)."""

    metadata = {"render_modes": ["rgb_array"], "render_fps": CONTROL_HZ}
    GOAL_CENTER = GOAL_CENTER
    GOAL_RADIUS = GOAL_RADIUS
    ARENA_HALF_SIZE = ARENA_HALF_SIZE
    CUBE_HALF_SIZE = CUBE_HALF_SIZE
    ROBOT_HALF_EXTENTS = ROBOT_HALF_EXTENTS
    MAX_SPEEDS = (MAX_VX, MAX_VY, MAX_YAW_RATE)

    def __init__(
        self,
        render_mode: str | None = "rgb_array",
        obs_size: int = OBS_SIZE,
        render_view: str = "ego",
        render_size: int = 128,
        terminate_on_success: bool = False,
        wall_start_band_m: float | None = None,
    ) -> None:
        if render_mode not in (None, "rgb_array"):
            raise ValueError(f"{ENV_ID}: render_mode must be 'rgb_array' or None, got {render_mode!r}")
        if render_view not in ("ego", "overview"):
            raise ValueError(f"{ENV_ID}: render_view must be 'ego' or 'overview', got {render_view!r}")
        if wall_start_band_m is not None and not wall_start_band_m > 0:
            raise ValueError(f"{ENV_ID}: wall_start_band_m must be > 0 or None, got {wall_start_band_m}")
        self.wall_start_band_m = wall_start_band_m
        self.render_mode = render_mode
        self.render_view = render_view
        self.obs_size = int(obs_size)
        self.render_size = int(render_size)
        self.terminate_on_success = terminate_on_success
        self.observation_space = spaces.Box(0, 255, (self.obs_size, self.obs_size, 3), np.uint8)
        self.action_space = spaces.Box(-1.0, 1.0, shape=(3,), dtype=np.float32)
        self.model = mujoco.MjModel.from_xml_string(scene_xml(max(self.obs_size, self.render_size)))
        self.data = mujoco.MjData(self.model)
        joint = lambda name: int(self.model.joint(name).qposadr[0])  # noqa: E731
        self._qx, self._qy, self._qyaw = joint("root_x"), joint("root_y"), joint("root_yaw")
        self._qcube = joint("cube_free")
        self._ego_cam = int(self.model.camera("ego").id)
        self._top_cam = int(self.model.camera("overview").id)
        self._obs_renderer: mujoco.Renderer | None = None
        self._top_renderer: mujoco.Renderer | None = None
        self._last_obs: np.ndarray | None = None
        self._has_reset = False

    # ---- state -------------------------------------------------------------------------------------
    def true_state(self, data: mujoco.MjData | None = None) -> np.ndarray:
        """``[robot_x, robot_y, robot_yaw, cube_x, cube_y, cube_yaw]`` (float64, yaws in [-π, π]) of the env's data, or
        of ``data`` (a copy a planner stepped with :meth:`advance`)."""
        q = (self.data if data is None else data).qpos
        c = self._qcube
        return np.array([q[self._qx], q[self._qy], _wrap(q[self._qyaw]),
                         q[c], q[c + 1], _yaw_from_quat(q[c + 3:c + 7])], dtype=np.float64)

    def _set_state(self, state: np.ndarray) -> None:
        mujoco.mj_resetData(self.model, self.data)
        q = self.data.qpos
        q[self._qx], q[self._qy], q[self._qyaw] = state[0], state[1], state[2]
        c = self._qcube
        q[c:c + 3] = (state[3], state[4], CUBE_HALF_SIZE)
        q[c + 3:c + 7] = (np.cos(state[5] / 2), 0.0, 0.0, np.sin(state[5] / 2))
        mujoco.mj_forward(self.model, self.data)

    def _sample_state(self) -> np.ndarray:
        rng = self.np_random
        lim_r, lim_c = ARENA_HALF_SIZE - ROBOT_RESET_MARGIN, ARENA_HALF_SIZE - CUBE_RESET_MARGIN
        goal = np.asarray(GOAL_CENTER)
        while True:
            robot = rng.uniform(-lim_r, lim_r, size=2)
            cube = rng.uniform(-lim_c, lim_c, size=2)
            near_wall = self.wall_start_band_m is None or np.abs(cube).max() >= lim_c - self.wall_start_band_m
            if (np.linalg.norm(cube - goal) > MIN_RESET_CUBE_GOAL
                    and np.linalg.norm(cube - robot) > MIN_RESET_ROBOT_CUBE and near_wall):
                break
        yaws = rng.uniform(-np.pi, np.pi, size=2)
        return np.array([robot[0], robot[1], yaws[0], cube[0], cube[1], yaws[1]], dtype=np.float64)

    # ---- rendering ---------------------------------------------------------------------------------
    def _make_renderer(self, size: int) -> mujoco.Renderer:
        try:
            return mujoco.Renderer(self.model, size, size)
        except Exception as exc:
            raise RuntimeError(
                f"{ENV_ID}: could not create a MuJoCo renderer ({exc}). Headless machines need "
                "MUJOCO_GL=egl (or osmesa) set before mujoco is first imported: export it, or import "
                "fog_envs.real.cube before mujoco (it sets MUJOCO_GL=egl when unset)."
            ) from exc

    def _render_camera(self, top: bool) -> np.ndarray:
        if top:
            if self._top_renderer is None:
                self._top_renderer = self._make_renderer(self.render_size)
            renderer, cam = self._top_renderer, self._top_cam
        else:
            if self._obs_renderer is None:
                self._obs_renderer = self._make_renderer(self.obs_size)
            renderer, cam = self._obs_renderer, self._ego_cam
        renderer.update_scene(self.data, camera=cam)
        return renderer.render()

    def _observe(self) -> np.ndarray:
        self._last_obs = self._render_camera(top=False)
        return self._last_obs

    def _info(self) -> tuple[float, dict[str, Any]]:
        state = self.true_state()
        terms = cube_reward.reward_terms(state)
        info = {
            "state": state,
            "is_success": bool(terms["success"] > 0.5),
            "cube_goal_distance": terms["cube_goal_distance"],
            "robot_cube_distance": terms["robot_cube_distance"],
            "reward_terms": terms,
        }
        return cube_reward.reward(state), info

    # ---- gym API -----------------------------------------------------------------------------------
    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        """Reset to a random pose pair, or to ``options["reset_to_state"]`` (6 numbers, see ``true_state``)."""
        super().reset(seed=seed)
        if options and options.get("reset_to_state") is not None:
            state = np.asarray(options["reset_to_state"], dtype=np.float64)
            if state.shape != (6,) or not np.all(np.isfinite(state)):
                raise ValueError(f"{ENV_ID}: reset_to_state must be 6 finite numbers "
                                 f"{cube_reward.STATE_NAMES}, got {state}")
        else:
            state = self._sample_state()
        self._set_state(state)
        self._has_reset = True
        _, info = self._info()
        return self._observe(), info

    def step(self, action: Any):
        """Track the body-frame velocity command for 0.2 s (10 inner-controller updates)."""
        if not self._has_reset:
            raise RuntimeError(f"{ENV_ID}: call reset() before step()")
        self.advance(check_action(action, self.action_space, ENV_ID))
        rew, info = self._info()
        terminated = bool(self.terminate_on_success and info["is_success"])
        return self._observe(), rew, terminated, False, info

    def advance(self, action: np.ndarray, data: mujoco.MjData | None = None) -> None:
        """The physics of one step, nothing observed: track the body-frame velocity command ``action`` (3 numbers in
        [-1, 1], unchecked) for 0.2 s in ``data`` (the env's own by default; a copy made with ``mujoco.MjData``'s
        ``mj_copyData`` lets a planner try actions without touching the episode)."""
        data = self.data if data is None else data
        act = np.asarray(action, dtype=np.float64)
        vx, vy, wz = act[0] * MAX_VX, act[1] * MAX_VY, act[2] * MAX_YAW_RATE
        ctrl, qpos = data.ctrl, data.qpos
        for _ in range(INNER_UPDATES_PER_STEP):
            yaw = qpos[self._qyaw]
            c, s = np.cos(yaw), np.sin(yaw)
            ctrl[0] = c * vx - s * vy
            ctrl[1] = s * vx + c * vy
            ctrl[2] = wz
            mujoco.mj_step(self.model, data, nstep=PHYSICS_STEPS_PER_UPDATE)

    def render(self) -> np.ndarray | None:
        """The ego frame (``render_view="ego"``) or a top-down ``render_size`` view (``"overview"``)."""
        if self.render_mode is None:
            return None
        if self.render_view == "overview":
            return self._render_camera(top=True)
        if self._last_obs is None:
            return self._render_camera(top=False)
        return self._last_obs.copy()

    def close(self) -> None:
        """Free the GL contexts."""
        for name in ("_obs_renderer", "_top_renderer"):
            renderer = getattr(self, name, None)
            if renderer is not None:
                renderer.close()
                setattr(self, name, None)
        super().close()
