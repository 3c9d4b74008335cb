"""The shipped ``cube_state_walls``: the cube's state model trained with wall play as well
(``datasets/cube_play_walls.h5``), which keeps a pinned cube and a robot at a wall near where the arena keeps them;
``cube_state``, trained on the default play alone, moves them through the wall."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest

import fog_envs  # noqa: F401  (registers the envs)
from fog_envs.real.cube_scene import ARENA_HALF_SIZE, CUBE_HALF_SIZE
from fog_envs.wm.bundle import SHIPPED_DIR

_CONTACT = 0.31  # robot-centre-to-cube-centre distance touching face-on


def wall_scenes(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """``n`` start states (6,) and held actions (3,) at the four walls: even ones push a cube that lies 0–0.1 m off
    the wall straight into it (pinned after a step or two), odd ones drive the robot alone into the wall from
    0–0.1 m off it at a random heading."""
    rng = np.random.default_rng(seed)
    starts, actions = [], []
    for i in range(n):
        angle = float(rng.choice([0.0, np.pi / 2, np.pi, -np.pi / 2]))  # the wall's outward normal
        normal, tangent = np.array([np.cos(angle), np.sin(angle)]), np.array([-np.sin(angle), np.cos(angle)])
        along = rng.uniform(-0.9, 0.9)
        if i % 2 == 0:
            cube = normal * (ARENA_HALF_SIZE - CUBE_HALF_SIZE - rng.uniform(0.0, 0.1)) + tangent * along
            robot = cube - normal * (_CONTACT + 0.01)
            starts.append([*robot, angle, *cube, angle])
            actions.append([1.0, rng.uniform(-0.2, 0.2), rng.uniform(-0.2, 0.2)])
        else:
            yaw = angle + rng.uniform(-np.pi, np.pi)
            robot = normal * (ARENA_HALF_SIZE - 0.3 - rng.uniform(0.0, 0.1)) + tangent * along
            starts.append([*robot, yaw, *(-0.5 * robot), 0.0])
            body = np.array([np.cos(yaw) * normal[0] + np.sin(yaw) * normal[1],
                             -np.sin(yaw) * normal[0] + np.cos(yaw) * normal[1]])
            actions.append([*(body / np.abs(body).max()), 0.0])
    return np.asarray(starts), np.asarray(actions, dtype=np.float32)


def test_shipped_walls_model_keeps_pinned_cubes_and_robots_at_walls_where_the_arena_does():
    """40 scenes held for 8 steps on RealPushCube-v0 and in both shipped cube state models (from rest): the walls
    model ends within 5 cm of the arena (median) for the pinned cube and the robot behind it and within 10 cm for
    the robot alone (measured: 1.4, 3.5 and 8.5 cm); ``cube_state`` is off by over 20 cm in all three (33 cm), having
    moved them through the wall."""
    if not (SHIPPED_DIR / "cube_state_walls" / "weights.safetensors").exists():
        pytest.skip("no shipped cube_state_walls in this checkout")
    from benchmarks.bench_rest_drift import model_rollout
    from fog_envs.wm.state_model import StateModel
    from fog_envs.wm.tasks import get_task

    starts, actions = wall_scenes(40, seed=0)
    env = gym.make("RealPushCube-v0", obs_size=16)
    truth = []
    for start, action in zip(starts, actions):
        _, info = env.reset(seed=0, options={"reset_to_state": start})
        for _ in range(8):
            *_, info = env.step(action)
        truth.append(info["state"])
    env.close()
    task = get_task("cube")
    start_t, end_t = task.probe_targets(starts), task.probe_targets(np.asarray(truth))
    errors = {}
    for name in ("cube_state_walls", "cube_state"):
        model, _ = StateModel.load(name, task="cube")
        end = model_rollout(model, start_t, np.repeat(actions[:, None], 8, axis=1))[:, -1]
        robot = np.linalg.norm(end[:, :2] - end_t[:, :2], axis=1)
        cube = np.linalg.norm(end[:, 4:6] - end_t[:, 4:6], axis=1)
        errors[name] = [float(np.median(robot[::2])), float(np.median(cube[::2])), float(np.median(robot[1::2]))]
    assert max(errors["cube_state_walls"][:2]) < 0.05 and errors["cube_state_walls"][2] < 0.1, errors
    assert min(errors["cube_state"]) > 0.2, errors
