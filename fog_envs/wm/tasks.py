"""Per-task facts the world models need: ids, action sizes, auxiliary targets and state-probe targets."""

from __future__ import annotations

from dataclasses import dataclass, replace
from functools import partial
from typing import Any, Callable, Mapping

import numpy as np


def _pusht_aux(state: np.ndarray) -> np.ndarray:
    """Push-T auxiliary reward-model target: the coverage of each state, shape (N, 1)."""
    from fog_envs.real.pusht_reward import coverage

    return np.array([[coverage(s[2:5])] for s in state], dtype=np.float32).reshape(-1, 1)


def _pusht_probe_targets(state: np.ndarray) -> np.ndarray:
    """``[agent_x, agent_y, block_x, block_y] / 512`` and ``cos, sin`` of the block angle."""
    s = np.asarray(state, dtype=np.float64)
    return np.concatenate([s[:, :4] / 512.0, np.cos(s[:, 4:5]), np.sin(s[:, 4:5])], axis=1).astype(np.float32)


def _pusht_probe_errors(pred: np.ndarray, true: np.ndarray) -> dict[str, np.ndarray]:
    """Per-sample errors in the workspace's units: pixels (of 512) and degrees."""
    ang = lambda t: np.arctan2(t[:, 5], t[:, 4])  # noqa: E731
    d_ang = np.abs((ang(pred) - ang(true) + np.pi) % (2 * np.pi) - np.pi)
    return {
        "agent_px": np.linalg.norm(pred[:, 0:2] - true[:, 0:2], axis=1) * 512.0,
        "block_px": np.linalg.norm(pred[:, 2:4] - true[:, 2:4], axis=1) * 512.0,
        "block_deg": np.degrees(d_ang),
    }


def _pusht_state_reward(state: Any, coverage_cap: float | None = None) -> Any:
    """The Push-T reward of probe-target states as a differentiable torch function (soft coverage); its coverage
    term grows up to ``coverage_cap`` (None: the success threshold, 0.95, as the reference system's reward)."""
    from fog_envs.real.pusht_reward_torch import reward

    return reward(state) if coverage_cap is None else reward(state, coverage_cap=coverage_cap)


def _pusht_state_outcome(state: Any) -> tuple[Any, dict[str, Any]]:
    """Push-T success (soft coverage ≥ 0.95) and the ``coverage`` aux of probe-target states, in torch."""
    from fog_envs.real.pusht_reward import SUCCESS_COVERAGE
    from fog_envs.real.pusht_reward_torch import soft_coverage

    cov = soft_coverage(state)
    return cov >= SUCCESS_COVERAGE, {"coverage": cov}


def _pusht_goal_start(state: Any, generator: Any) -> Any:
    """Push-T probe-target states with the block moved near the goal (:mod:`fog_envs.real.pusht_starts`)."""
    from fog_envs.real.pusht_starts import near_goal

    return near_goal(state, generator)


def _pusht_reset_start(state: Any, generator: Any) -> Any:
    """Push-T probe-target states drawn as gym-pusht's resets (:func:`fog_envs.real.pusht_starts.reset_like`)."""
    from fog_envs.real.pusht_starts import reset_like

    return reset_like(state, generator)


def _cube_reset_start(state: Any, generator: Any) -> Any:
    """Push-cube probe-target states drawn as the reference system's resets (:mod:`fog_envs.real.cube_starts`)."""
    from fog_envs.real.cube_starts import reset_like

    return reset_like(state, generator)


def _cube_goal_start(state: Any, generator: Any) -> Any:
    """Push-cube probe-target states with the cube near the goal and the robot beside it
    (:func:`fog_envs.real.cube_starts.near_goal`)."""
    from fog_envs.real.cube_starts import near_goal

    return near_goal(state, generator)


def _cube_wall_start(state: Any, generator: Any) -> Any:
    """Push-cube probe-target states drawn as the reference system's resets with the cube next to a wall
    (:func:`fog_envs.real.cube_starts.near_wall`)."""
    from fog_envs.real.cube_starts import near_wall

    return near_wall(state, generator)


def _cube_aux(state: np.ndarray) -> np.ndarray:
    """Cube auxiliary target: the cube-to-goal distance in metres, shape (N, 1)."""
    from fog_envs.real.cube import GOAL_CENTER

    s = np.asarray(state, dtype=np.float64)
    return np.linalg.norm(s[:, 3:5] - np.asarray(GOAL_CENTER)[:2], axis=1, keepdims=True).astype(np.float32)


def _cube_state_reward(state: Any) -> Any:
    """The push-cube reward of probe-target states in torch (:mod:`fog_envs.real.cube_reward_torch`)."""
    from fog_envs.real.cube_reward_torch import reward

    return reward(state)


def _cube_state_outcome(state: Any) -> tuple[Any, dict[str, Any]]:
    """Push-cube success and the ``cube_goal_distance`` aux of probe-target states, in torch."""
    from fog_envs.real.cube_reward_torch import outcome

    return outcome(state)


def _cube_probe_targets(state: np.ndarray) -> np.ndarray:
    """Robot x, y (m), cos/sin yaw; cube x, y (m), cos/sin of 4·yaw (a cube looks the same every 90°)."""
    s = np.asarray(state, dtype=np.float64)
    return np.concatenate([s[:, 0:2], np.cos(s[:, 2:3]), np.sin(s[:, 2:3]), s[:, 3:5],
                           np.cos(4 * s[:, 5:6]), np.sin(4 * s[:, 5:6])], axis=1).astype(np.float32)


def _cube_probe_errors(pred: np.ndarray, true: np.ndarray) -> dict[str, np.ndarray]:
    yaw = lambda t: np.arctan2(t[:, 3], t[:, 2])  # noqa: E731
    d_yaw = np.abs((yaw(pred) - yaw(true) + np.pi) % (2 * np.pi) - np.pi)
    return {
        "robot_m": np.linalg.norm(pred[:, 0:2] - true[:, 0:2], axis=1),
        "robot_deg": np.degrees(d_yaw),
        "cube_m": np.linalg.norm(pred[:, 4:6] - true[:, 4:6], axis=1),
    }


@dataclass(frozen=True)
class TaskSpec:
    """Everything task-specific that world-model training, envs and evaluation need."""

    name: str
    real_env_id: str
    wm_env_id: str
    action_dim: int
    control_hz: int
    max_episode_steps: int
    num_aux: int
    aux_targets: Callable[[np.ndarray], np.ndarray]
    probe_targets: Callable[[np.ndarray], np.ndarray]
    probe_errors: Callable[[np.ndarray, np.ndarray], dict[str, np.ndarray]]
    aux_names: tuple[str, ...] = ()
    state_dim: int = 5
    state_reward: Callable[[Any], Any] | None = None
    """the task's reward as a differentiable torch function of probe-target states (None: not available)"""
    state_outcome: Callable[[Any], tuple[Any, dict[str, Any]]] | None = None
    """``(is_success, aux)`` of probe-target states in torch, the aux keyed by ``aux_names`` (None: not available);
    with ``state_reward`` it lets a state model stand in for the global model (``forward_model="state"``)"""
    frame_points: tuple[tuple[int, int], ...] = ()
    """probe-target index pairs (x, y) that are positions on the frame in [0, 1] (x: column, y: row), for a
    state-guided denoiser's planes (``DenoiserConfig.state_points``); empty for an ego-centric camera"""
    passive_dims: tuple[int, ...] = ()
    """probe-target dimensions of objects that move only when pushed (the block, the cube): a state model is
    taught that they do not respond to its inputs where they rest (``StateModelTrainConfig.still_jacobian``)"""
    pusher_position: tuple[int, ...] = (0, 1)
    """probe-target dimensions of the pusher's position (the agent, the robot): a state model's rest gate reads
    its offset from the passive object (:attr:`fog_envs.wm.state_model.StateModelConfig.pusher_position`)"""
    goal_start: Callable[[Any, Any], Any] | None = None
    """``(states (N, probe_dim), torch.Generator) -> states`` with the object moved near its goal: the near-goal
    starts of a state-model world (``goal_starts=``; None: not available)"""
    reset_start: Callable[[Any, Any], Any] | None = None
    """``(states (N, probe_dim), torch.Generator) -> states`` drawn as the reference system draws its resets (the
    given states give only shape and type): the reset starts of a state-model world (``reset_starts=``; None: not
    available)"""
    wall_start: Callable[[Any, Any], Any] | None = None
    """``(states (N, probe_dim), torch.Generator) -> states`` drawn as the reference system's resets with the object
    next to a wall: the near-wall starts of a state-model world (``wall_starts=``; None: not available)"""
    reward_options: tuple[str, ...] = ()
    """keyword options of ``state_reward`` that a learned env may set (``reward_options=``,
    :meth:`with_reward_options`): Push-T's ``coverage_cap``"""
    walled_object: tuple[tuple[int, int], float] | None = None
    """``((x column, y column), reach)``: the probe-target position of the object a state-model world's wall
    penalty keeps off the walls (``wall_penalty=``, :mod:`fog_envs.learned.wall_penalty`) and how far from the
    centre it reaches when it touches a wall (m); None: the task has no walls to keep off"""

    @property
    def probe_dim(self) -> int:
        """Length of the state probe's target vector."""
        return int(self.probe_targets(np.zeros((1, self.state_dim))).shape[1])

    def with_reward_options(self, options: Mapping[str, Any]) -> "TaskSpec":
        """This task with ``options`` bound into its ``state_reward`` (checked by name, and by value on one state);
        the task itself when ``options`` is empty."""
        if not options:
            return self
        unknown = sorted(set(options) - set(self.reward_options))
        if unknown:
            raise ValueError(f"task {self.name!r} has no reward option(s) {unknown}; its options: "
                             f"{list(self.reward_options) or 'none'}")
        bound = partial(self.state_reward, **options)
        import torch

        bound(torch.zeros(1, self.probe_dim))  # a bad value fails here, where it was given
        return replace(self, state_reward=bound)


#: the cube centre's distance from the arena's centre along x or y when it touches a wall (m):
#: ``fog_envs.real.cube_scene.ARENA_HALF_SIZE − CUBE_HALF_SIZE`` (kept numeric here: this module imports no scene)
_CUBE_REACH = 1.41

TASKS: dict[str, TaskSpec] = {
    "pusht": TaskSpec("pusht", "RealPushT-v0", "WMPushT-v0", 2, 10, 300, 1,
                      _pusht_aux, _pusht_probe_targets, _pusht_probe_errors, ("coverage",), 5, _pusht_state_reward,
                      _pusht_state_outcome, frame_points=((0, 1), (2, 3)), passive_dims=(2, 3, 4, 5),
                      goal_start=_pusht_goal_start, reset_start=_pusht_reset_start, reward_options=("coverage_cap",)),
    "cube": TaskSpec("cube", "RealPushCube-v0", "WMPushCube-v0", 3, 5, 200, 1,
                     _cube_aux, _cube_probe_targets, _cube_probe_errors, ("cube_goal_distance",), 6,
                     _cube_state_reward, _cube_state_outcome, passive_dims=(4, 5, 6, 7),
                     goal_start=_cube_goal_start, reset_start=_cube_reset_start, wall_start=_cube_wall_start,
                     walled_object=((4, 5), _CUBE_REACH)),
}


def get_task(name: str) -> TaskSpec:
    """The task spec for ``"pusht"`` or ``"cube"``; ``ValueError`` naming the known tasks otherwise."""
    if name not in TASKS:
        raise ValueError(f"unknown task {name!r}; known tasks: {sorted(TASKS)}")
    return TASKS[name]


def task_for_env_id(env_id: str) -> TaskSpec:
    """The task whose reference system is ``env_id``."""
    for spec in TASKS.values():
        if env_id in (spec.real_env_id, spec.wm_env_id):
            return spec
    raise ValueError(f"no world-model task for env id {env_id!r}")
