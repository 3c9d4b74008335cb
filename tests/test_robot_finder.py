"""The robot finder (fog_envs.wm.robot_finder): the colour labels against MuJoCo's segmentation, the cast labels
against hand-computed geometry and against the rendered frames, the pose search against the simulator's truth, the
episode track, the observer's wiring, and the errors that name the problem."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from fog_envs.wm.cube_finder import pixel_rays
from fog_envs.wm.robot_finder import (
    BEYOND,
    FLOOR,
    FLOOR_DARK,
    FLOOR_LIGHT,
    IGNORE,
    WALL_MX,
    WALL_MY,
    WALL_PX,
    WALL_PY,
    RobotFinderConfig,
    RobotTrack,
    expected_labels,
    find_robot,
    fit_pose,
    pixel_labels,
)

CFG = RobotFinderConfig()
_SEGMENT = {"floor": FLOOR, "goal": FLOOR, "wall+x": WALL_PX, "wall-x": WALL_MX, "wall+y": WALL_PY,
            "wall-y": WALL_MY}


def _rendered(n: int, seed: int, max_actions: int = 25):
    """``n`` ego frames of RealPushCube-v0 (resets plus 0–``max_actions`` random actions, so that some stand at
    the walls), their true states, and what MuJoCo's segmentation says each pixel shows (``IGNORE``: a post, the
    cube)."""
    import gymnasium as gym
    import mujoco

    import fog_envs  # noqa: F401

    env = gym.make("RealPushCube-v0").unwrapped
    seg = mujoco.Renderer(env.model, 64, 64)
    seg.enable_segmentation_rendering()
    geoms = {env.model.geom(name).id: label for name, label in _SEGMENT.items()}
    rng = np.random.default_rng(seed)
    frames, states, truth = [], [], []
    for i in range(n):
        obs, info = env.reset(seed=seed + i)
        for _ in range(int(rng.integers(0, max_actions + 1))):
            obs, *_, info = env.step(rng.uniform(-1, 1, 3).astype(np.float32))
        seg.update_scene(env.data, camera="ego")
        ids = seg.render()
        geom = np.where(ids[..., 1] == int(mujoco.mjtObj.mjOBJ_GEOM), ids[..., 0], -1)
        labels = np.full(geom.shape, IGNORE, dtype=np.int8)
        labels[geom == -1] = BEYOND
        for g, label in geoms.items():
            labels[geom == g] = label
        frames.append(obs)
        states.append(info["state"])
        truth.append(labels)
    seg.close()
    env.close()
    return np.stack(frames), np.stack(states), np.stack(truth)


@pytest.fixture(scope="module")
def rendered():
    return _rendered(40, seed=41_000)


def _all_rays() -> np.ndarray:
    vv, uu = np.mgrid[0:64, 0:64] + 0.5
    return pixel_rays(uu.ravel(), vv.ravel())


def _pose_errors(found: np.ndarray, state: np.ndarray) -> tuple[float, float]:
    d_yaw = (found[2] - state[2] + np.pi) % (2 * np.pi) - np.pi
    return float(np.linalg.norm(found[:2] - state[:2])), float(np.degrees(abs(d_yaw)))


def test_the_colour_labels_name_what_the_segmentation_shows(rendered):
    frames, _, truth = rendered
    labels = pixel_labels(frames)
    named = truth != IGNORE
    floor = np.where(np.isin(labels, [FLOOR_LIGHT, FLOOR_DARK]), FLOOR, labels)
    assert (floor[named] == truth[named]).mean() > 0.999
    assert not np.isin(labels[~named], [WALL_PX, WALL_MX, WALL_PY, WALL_MY, BEYOND]).any()  # posts and cube: no wall
    assert np.isin(labels, [FLOOR_LIGHT]).any() and np.isin(labels, [FLOOR_DARK]).any()


def test_the_cast_labels_at_the_true_pose_match_the_frames(rendered):
    frames, states, _ = rendered
    labels = pixel_labels(frames).reshape(len(frames), -1)
    cast = np.stack([expected_labels(s[None, :3], _all_rays())[0] for s in states])
    seen = labels != IGNORE
    agree = (labels == cast) | ((labels == FLOOR) & np.isin(cast, [FLOOR_LIGHT, FLOOR_DARK]))
    assert agree[seen].mean() > 0.99  # the checker's squares too: only edges blur


def test_the_cast_labels_follow_hand_computed_geometry():
    centre, top = pixel_rays(np.array([32.0, 32.0]), np.array([32.0, 0.0]))
    rays = np.stack([centre, top])
    cf, h, p = CFG.camera.camera_forward, CFG.camera.camera_height, np.radians(CFG.camera.pitch_deg)
    # at (0, 0.25) facing +x the axis meets the floor h / tan(20°) = 0.96 m ahead of the camera: (1.19, 0.25), the
    # square (5, 3) counted from the (−x, −y) corner, even: light (at y = −0.25 the square (5, 2): dark); the top
    # edge's ray rises 17.5° and passes over the +x wall (at 1.5 m it is 0.35 + 1.275 · tan 17.5° = 0.75 m high)
    hit = cf + h / np.tan(p)
    assert int((hit + 1.5) // 0.5) == 5
    np.testing.assert_array_equal(expected_labels(np.array([[0.0, 0.25, 0.0]]), rays), [[FLOOR_LIGHT, BEYOND]])
    assert expected_labels(np.array([[0.0, -0.25, 0.0]]), rays)[0, 0] == FLOOR_DARK
    # 1 m further on, the axis meets the +x wall 0.275 m ahead, 0.25 m up; the same for each wall by its yaw
    for pose, wall in (((1.0, 0.0, 0.0), WALL_PX), ((-1.0, 0.0, np.pi), WALL_MX), ((0.0, 1.0, np.pi / 2), WALL_PY),
                       ((0.0, -1.0, -np.pi / 2), WALL_MY)):
        assert expected_labels(np.array([pose]), rays)[0, 0] == wall
    # a camera 5 cm from a wall sees past it: the renderer clips what is nearer than its near plane
    assert expected_labels(np.array([[1.5 - 0.05 - CFG.camera.camera_forward, 0.0, 0.0]]), rays)[0, 0] == BEYOND
    # a camera outside the arena sees nothing of it
    assert (expected_labels(np.array([[1.4, 0.0, 0.0]]), rays) == BEYOND).all()


def test_the_near_clip_is_the_renderers():
    import gymnasium as gym

    import fog_envs  # noqa: F401

    env = gym.make("RealPushCube-v0").unwrapped
    assert CFG.near_clip == pytest.approx(env.model.vis.map.znear * env.model.stat.extent, rel=1e-3)
    env.close()


def test_the_pose_search_recovers_the_true_pose_from_a_prior_nearby(rendered):
    frames, states, _ = rendered
    labels = pixel_labels(frames)
    rng = np.random.default_rng(0)
    errors = []
    for lab, s in zip(labels, states):
        prior = s[:3] + np.r_[rng.uniform(-0.08, 0.08, 2), np.radians(rng.uniform(-5, 5))]
        errors.append(_pose_errors(fit_pose(lab, prior)[0], s))
    pos, yaw = np.array(errors).T
    assert np.median(pos) < 0.01 and np.median(yaw) < 1.0
    assert np.mean(pos < 0.05) >= 0.85  # a lone wall leaves its length to the prior


def test_the_whole_arena_search_finds_the_pose_without_a_prior(rendered):
    frames, states, _ = rendered
    labels = pixel_labels(frames[:12])
    errors = np.array([_pose_errors(find_robot(lab)[0], s) for lab, s in zip(labels, states[:12])])
    assert np.mean((errors[:, 0] < 0.03) & (errors[:, 1] < 2.0)) >= 0.75


def test_the_track_follows_an_episode_and_leaves_the_cube_columns_alone():
    import gymnasium as gym

    import fog_envs  # noqa: F401
    from fog_envs.wm.tasks import get_task

    task = get_task("cube")
    env = gym.make("RealPushCube-v0")
    track = RobotTrack()
    obs, info = env.reset(seed=42_000)
    reading = torch.from_numpy(task.probe_targets(info["state"][None] + np.r_[0.3, -0.2, 0.5, 0, 0, 0]))
    track.reset()
    out = track.update(obs, reading)
    torch.testing.assert_close(out[:, 4:], reading[:, 4:])
    rng = np.random.default_rng(1)
    errors = [_pose_errors(track.pose, info["state"])]
    for _ in range(30):
        obs, *_, info = env.step(rng.uniform(-1, 1, 3).astype(np.float32))
        track.update(obs, reading)  # no prediction: the search starts from the pose before
        errors.append(_pose_errors(track.pose, info["state"]))
    env.close()
    pos, yaw = np.array(errors).T
    assert np.median(pos) < 0.015 and np.median(yaw) < 1.0
    assert 0.0 <= track.agreement <= 1.0


def test_the_state_observer_tracks_the_robot_from_the_state_models_prediction(monkeypatch):
    """The observer hands the track its reading and the state model's one-step prediction: the search starts from
    the predicted pose, and the pose found replaces the reading's robot columns before the local state is built."""
    import fog_envs.wm.robot_finder as finder
    from fog_envs.learned.state_local import StateObserver

    class Local:  # the state model: the robot moves 0.1 m along x per step; the probe reads nonsense
        sdim = 8

        def read_frames(self, frames):
            return torch.full((1, 8), 5.0)

        def start(self, s):
            return torch.cat([s, s], dim=1)

        def advance(self, x, s):
            return torch.cat([s, x[:, :8]], dim=1)

        def predict(self, x, action):
            return x[:, :8] + torch.tensor([0.1, 0, 0, 0, 0, 0, 0, 0])

    priors = []
    monkeypatch.setattr(finder, "find_robot", lambda labels, config, prior=None: (np.array([0.2, -0.3, 0.0]), 1.0))
    monkeypatch.setattr(finder, "fit_pose", lambda labels, prior, config: (priors.append(prior) or prior, 1.0))
    observer = StateObserver(Local(), robot_track=RobotTrack())  # type: ignore[arg-type]
    frame = np.full((64, 64, 3), 120, np.uint8)
    x = observer.reset(frame)
    np.testing.assert_allclose(x[:4].numpy(), [0.2, -0.3, 1.0, 0.0], atol=1e-6)
    assert x[4].item() == 5.0  # the cube's columns as read
    x = observer.update(np.zeros(3), frame)
    np.testing.assert_allclose(priors[-1], [0.3, -0.3, 0.0], atol=1e-6)  # the predicted pose
    np.testing.assert_allclose(x[:2].numpy(), [0.3, -0.3], atol=1e-6)


def test_a_weak_match_falls_back_to_the_whole_arena(monkeypatch):
    import fog_envs.wm.robot_finder as finder

    monkeypatch.setattr(finder, "fit_pose", lambda labels, prior, config: (np.array(prior, float), 0.5))
    monkeypatch.setattr(finder, "find_robot", lambda labels, config, prior=None: (np.array([1.0, 1.0, 0.5]), 0.95))
    track = RobotTrack()
    track.pose = np.array([0.0, 0.0, 0.0])
    out = track.update(np.full((64, 64, 3), 120, np.uint8), torch.zeros(1, 8))
    np.testing.assert_allclose(out[0, :4].numpy(), [1.0, 1.0, np.cos(0.5), np.sin(0.5)], atol=1e-6)
    assert track.agreement == 0.95


def test_the_bench_reads_the_robot_closer_than_the_probe(tmp_path):
    import json

    from benchmarks.bench_robot_finder import main

    out = tmp_path / "robot.json"
    assert main(["--frames", "12", "--seed", "810000", "--out", str(out)]) == 0
    rows = {r["robot"]: r for r in json.loads(out.read_text())["rows"]}
    assert rows["all"]["frames"] == 12 and rows["facing a wall, 3–13 cm"]["frames"] == 4
    assert rows["all"]["tracked_mm_median"] < rows["all"]["probe_mm_median"]


def test_the_deployment_reading_bench_pairs_the_deployment_with_the_true_state(tmp_path):
    """``benchmarks/bench_cube_deploy_reading.py`` on a two-iteration debug cube agent, one episode: every step's
    reading is recorded (the robot read by the finder to centimetres, without it by the probe), and the episode is
    paired with the same actor's on the true state."""
    import json

    from benchmarks.bench_cube_deploy_reading import main
    from fog_agent.train import AgentTrainConfig, train_agent

    run = tmp_path / "cube"
    train_agent(AgentTrainConfig(env_id="WMPushCube-v0", preset="debug", run_dir=str(run), local_model="state",
                                 forward_model="state", eval_env_id=None), progress=False)
    saved = {}
    for flags in ([], ["--no-robot-finder"]):
        out = tmp_path / f"reading{len(flags)}.json"
        assert main(["--run-dir", str(run), "--episodes", "1", "--out", str(out), *flags]) == 0
        saved[len(flags)] = json.loads(out.read_text())
    finder, probe = saved[0], saved[1]
    assert finder["robot_finder"] and not probe["robot_finder"]
    assert len(finder["deployed_successes"]) == 1 and len(finder["true_state_successes"]) == 1
    rows = {r["steps_of"]: r for r in finder["rows"]}
    assert rows["all"]["steps"] == 200  # RealPushCube-v0's episode, every step
    assert rows["all"]["robot_mm_median"] < 30.0
    assert rows["all"]["robot_mm_median"] < {r["steps_of"]: r for r in probe["rows"]}["all"]["robot_mm_median"]


def test_bad_input_is_named():
    with pytest.raises(ValueError, match=r"frames must be \(N, 64, 64, 3\)"):
        pixel_labels(np.zeros((64, 64, 3), np.uint8))
    with pytest.raises(ValueError, match="reading must be"):
        RobotTrack().update(np.zeros((64, 64, 3), np.uint8), torch.zeros(4))
    with pytest.raises(ValueError, match="floor_brightness"):
        RobotFinderConfig(floor_brightness=(150, 100))
    with pytest.raises(ValueError, match="prior_cost"):
        RobotFinderConfig(prior_cost=(-1.0, 0.0))
    with pytest.raises(ValueError, match="min_score"):
        RobotFinderConfig(min_score=1.5)
    with pytest.raises(ValueError, match="radius"):
        RobotFinderConfig(radius=0.0)
    with pytest.raises(ValueError, match="checker must be"):
        RobotFinderConfig(checker=(140, 100))
