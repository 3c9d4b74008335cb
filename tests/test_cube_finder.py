"""The cube finder (fog_envs.wm.cube_finder): the colour rule against MuJoCo's segmentation, rays and positions
against hand-computed geometry and against the simulator's truth, the episode track's memory, the controller's
search action, and the errors that name the problem."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from fog_envs.wm.cube_finder import (
    CubeFinderConfig,
    CubeTrack,
    body_to_world,
    cube_mask,
    cube_silhouettes,
    find_cube,
    fit_silhouette,
    pixel_rays,
)

ORANGE = (255, 184, 13)
CFG = CubeFinderConfig()
CENTROID = CubeFinderConfig(silhouette=False)  # the centroid's ray alone: hand-computable


def _blank(n: int = 1) -> np.ndarray:
    return np.full((n, 64, 64, 3), 120, dtype=np.uint8)


def _rendered(n: int, seed: int):
    """``n`` ego frames of RealPushCube-v0 (resets plus 0–3 random actions), their true states and the cube's
    pixels by MuJoCo's segmentation rendering."""
    import gymnasium as gym
    import mujoco

    import fog_envs  # noqa: F401

    env = gym.make("RealPushCube-v0").unwrapped
    seg = mujoco.Renderer(env.model, 64, 64)
    seg.enable_segmentation_rendering()
    cube = env.model.geom("cube").id
    rng = np.random.default_rng(seed)
    frames, states, masks = [], [], []
    for i in range(n):
        obs, info = env.reset(seed=seed + i)
        for _ in range(int(rng.integers(0, 4))):
            obs, *_, info = env.step(rng.uniform(-1, 1, 3).astype(np.float32))
        seg.update_scene(env.data, camera="ego")
        ids = seg.render()
        frames.append(obs)
        states.append(info["state"])
        masks.append((ids[..., 0] == cube) & (ids[..., 1] == int(mujoco.mjtObj.mjOBJ_GEOM)))
    seg.close()
    env.close()
    return np.stack(frames), np.stack(states), np.stack(masks)


def test_the_colour_rule_marks_the_cube_as_the_segmentation_does():
    frames, _, truth = _rendered(120, seed=31_000)
    mask = cube_mask(frames)
    assert truth.any(axis=(1, 2)).sum() >= 10  # the cube is in view in some of the frames
    assert not (mask & ~truth).any()  # nothing else in the arena passes the rule
    assert (mask & truth).sum() >= 0.99 * truth.sum()


def test_the_centre_ray_is_the_camera_axis_and_the_top_edge_is_half_the_field_of_view_above_it():
    p = np.radians(CFG.pitch_deg)
    axis = pixel_rays(np.array(32.0), np.array(32.0))
    np.testing.assert_allclose(axis, [np.cos(p), 0.0, -np.sin(p)], atol=1e-12)
    top = pixel_rays(np.array(32.0), np.array(0.0))
    up = np.arctan2(top[2], top[0])  # elevation of the ray through the top edge's middle
    np.testing.assert_allclose(up, np.radians(CFG.fovy_deg / 2) - p, atol=1e-12)
    left = pixel_rays(np.array(0.0), np.array(32.0))
    assert left[1] > 0  # the image's left is the robot's left (+y)


def test_a_cube_on_the_optical_axis_is_found_where_the_axis_meets_its_half_height():
    frames = _blank()
    frames[0, 31:33, 31:33] = ORANGE  # centroid at the image centre (32, 32)
    pos, seen = find_cube(frames, CENTROID)
    ahead = (CFG.camera_height - CFG.cube_half_size) / np.tan(np.radians(CFG.pitch_deg))
    assert seen.tolist() == [True]
    np.testing.assert_allclose(pos[0, :2], [CFG.camera_forward + ahead, 0.0], atol=1e-9)


def test_no_cube_pixels_no_position():
    pos, seen = find_cube(_blank(2))
    assert seen.tolist() == [False, False] and np.isnan(pos).all()


def _body_poses(states: np.ndarray) -> np.ndarray:
    """The cubes' true poses (x, y, yaw) in the robots' body frames, of true states (N, 6)."""
    c, s = np.cos(states[:, 2]), np.sin(states[:, 2])
    d = states[:, 3:5] - states[:, 0:2]
    return np.column_stack([c * d[:, 0] + s * d[:, 1], -s * d[:, 0] + c * d[:, 1], states[:, 5] - states[:, 2]])


def test_the_projected_silhouette_of_the_true_pose_is_what_the_renderer_draws():
    _, states, truth = _rendered(120, seed=33_000)
    shown = truth.any(axis=(1, 2))
    v, u = (g.ravel() + 0.5 for g in np.mgrid[0:64, 0:64])
    drawn = cube_silhouettes(_body_poses(states[shown]), u, v).reshape(-1, 64, 64)
    iou = (drawn & truth[shown]).sum(axis=(1, 2)) / (drawn | truth[shown]).sum(axis=(1, 2))
    assert shown.sum() >= 10 and np.median(iou) > 0.97 and iou.min() > 0.8


def test_the_silhouette_of_the_faces_toward_the_camera_is_the_union_of_all_five():
    """``cube_silhouettes`` draws the top and the two sides that face the camera most; a convex body's other faces
    project inside those, so the union of all five faces, each tested by hand, covers the same pixels."""
    from fog_envs.wm.cube_finder import _FACES, project_cubes

    rng = np.random.default_rng(5)
    poses = np.column_stack([rng.uniform(0.3, 2.0, 300), rng.uniform(-0.8, 0.8, 300), rng.uniform(-np.pi, np.pi, 300)])
    vv, uu = np.mgrid[0:64, 0:64] + 0.5
    u, v = uu.ravel(), vv.ravel()
    pixels, depth = project_cubes(poses)
    union = np.zeros((len(poses), len(u)), dtype=bool)
    for corners in _FACES:
        quad = pixels[:, corners]  # (K, 4, 2)
        signs = []
        for i in range(4):
            (x0, y0), (x1, y1) = quad[:, i].T, quad[:, (i + 1) % 4].T
            signs.append((x1 - x0)[:, None] * (v - y0[:, None]) - (y1 - y0)[:, None] * (u - x0[:, None]))
        signs = np.stack(signs)
        union |= (signs >= 0).all(axis=0) | (signs <= 0).all(axis=0)
    union &= (depth.min(axis=1) > 0)[:, None]
    drawn = cube_silhouettes(poses, u, v)
    assert drawn.sum() > 1000  # the cubes do cover pixels
    np.testing.assert_array_equal(drawn, union)


def test_a_silhouette_fit_recovers_the_pose_that_drew_it_near_far_and_cut_by_the_frame():
    v, u = (g.ravel() + 0.5 for g in np.mgrid[0:64, 0:64])
    poses = np.array([[0.31, 0.0, 0.2], [0.45, 0.25, 0.5], [1.6, -0.4, 1.0], [0.9, 0.55, 0.0]])
    for pose in poses:
        mask = cube_silhouettes(pose[None], u, v)[0].reshape(64, 64)
        assert mask.any()
        fit = fit_silhouette(mask, pose[:2] + np.array([0.1, -0.05]))
        reach = np.linalg.norm(pose[:2])
        assert np.linalg.norm(fit[:2] - pose[:2]) < 0.03 * reach, (pose, fit)  # a pixel spans ~0.024 × the range
        if reach < 0.6:  # near, the yaw shows too (modulo 90°)
            assert abs((fit[2] - pose[2] + np.pi / 4) % (np.pi / 2) - np.pi / 4) < np.radians(6), (pose, fit)


def test_found_cubes_lie_within_centimetres_of_the_truth():
    frames, states, truth = _rendered(200, seed=32_000)
    pos, seen = find_cube(frames)
    np.testing.assert_array_equal(seen, truth.any(axis=(1, 2)))
    robot = np.column_stack([states[:, 0:2], np.cos(states[:, 2]), np.sin(states[:, 2])])
    err = np.linalg.norm(body_to_world(robot[seen], pos[seen, :2]) - states[seen, 3:5], axis=1)
    assert seen.sum() >= 10
    # the probe: 0.18 m median where the cube is in view (README item 30); the centroid alone 0.05 m
    assert np.median(err) < 0.02 and np.percentile(err, 75) < 0.05


def test_body_to_world_rotates_by_the_robots_yaw_and_normalises_its_heading():
    robot = np.array([[1.0, 2.0, 0.0, 2.0], [0.0, 0.0, -1.0, 0.0]])  # facing +y (unnormalised), facing −x
    world = body_to_world(robot, np.array([[0.5, 0.0], [0.5, 0.25]]))
    np.testing.assert_allclose(world, [[1.0, 2.5], [-0.5, -0.25]], atol=1e-12)


def test_the_track_places_the_seen_cube_remembers_it_out_of_view_and_forgets_it_on_reset():
    track = CubeTrack(CENTROID)
    reading = torch.tensor([[0.5, -0.5, 1.0, 0.0, 9.0, 9.0, 1.0, 0.0]])
    assert track.lost and torch.equal(track.update(_blank()[0], reading), reading)  # lost: the reading as it is
    seen = _blank()[0]
    seen[31:33, 31:33] = ORANGE
    ahead = CFG.camera_forward + (CFG.camera_height - CFG.cube_half_size) / np.tan(np.radians(CFG.pitch_deg))
    out = track.update(seen, reading)
    assert not track.lost
    torch.testing.assert_close(out[0, 4:6], torch.tensor([0.5 + ahead, -0.5], dtype=torch.float32))
    torch.testing.assert_close(out[0, [0, 1, 2, 3, 6, 7]], reading[0, [0, 1, 2, 3, 6, 7]])
    moved = reading.clone()
    moved[0, :4] = torch.tensor([0.0, 0.0, 0.0, 1.0])  # the robot moved and turned; the cube is out of view
    torch.testing.assert_close(track.update(_blank()[0], moved)[0, 4:6], out[0, 4:6])
    pushed = moved.clone()
    pushed[0, 4:6] = torch.tensor([1.25, 0.75])  # the state model's prediction: it moved ...
    far = out[0, 4:6].tolist()
    torch.testing.assert_close(track.update(_blank()[0], moved, pushed)[0, 4:6], out[0, 4:6])  # ... robot far: held
    near = moved.clone()
    near[0, 0:2] = out[0, 4:6] - torch.tensor([0.3, 0.0])  # the robot beside it: the cube follows the model
    torch.testing.assert_close(track.update(_blank()[0], near, pushed)[0, 4:6], pushed[0, 4:6])
    torch.testing.assert_close(track.update(_blank()[0], moved)[0, 4:6], pushed[0, 4:6])  # and stays there
    assert far != pushed[0, 4:6].tolist()
    track.reset()
    assert track.lost
    with pytest.raises(ValueError, match="cube task's probe layout"):
        track.update(seen, torch.zeros(1, 5))


def test_bad_frames_and_configs_name_the_problem():
    with pytest.raises(ValueError, match=r"frames must be \(N, 64, 64, 3\)"):
        find_cube(np.zeros((64, 64, 3), np.uint8))
    with pytest.raises(ValueError, match="cube_half_size"):
        CubeFinderConfig(cube_half_size=1.0)
    with pytest.raises(ValueError, match="green_ratio"):
        CubeFinderConfig(green_ratio=(0.9, 0.4))
    with pytest.raises(ValueError, match="fovy_deg"):
        CubeFinderConfig(fovy_deg=0.0)
    with pytest.raises(ValueError, match="push_radius"):
        CubeFinderConfig(push_radius=-1.0)


class _Agent:
    def act(self, latent, deterministic=True):
        return torch.full((1, 3), 0.25)


class _Observer:
    def __init__(self) -> None:
        self.lost = True

    def reset(self, obs):
        return torch.zeros(4)

    def update(self, action, obs):
        return torch.zeros(4)


def test_the_controller_searches_while_the_observer_is_lost_and_acts_once_it_is_not():
    from fog_agent.controller import FogController

    observer = _Observer()
    controller = FogController(_Agent(), observer, search_action=(0.0, 0.0, 1.0))
    controller.reset(None, {})
    np.testing.assert_array_equal(controller.act(None, {}), [0.0, 0.0, 1.0])
    observer.lost = False
    np.testing.assert_array_equal(controller.act(None, {}), [0.25, 0.25, 0.25])
    plain = FogController(_Agent(), observer)  # no search action: the agent acts even while lost
    observer.lost = True
    plain.reset(None, {})
    np.testing.assert_array_equal(plain.act(None, {}), [0.25, 0.25, 0.25])

    class Blind:
        reset = update = _Observer.reset

    with pytest.raises(ValueError, match="says when it is lost"):
        FogController(_Agent(), Blind(), search_action=(0.0, 0.0, 1.0))


def test_the_state_observer_hands_its_readings_to_the_cube_track(stand_in_local):
    from fog_envs.learned.state_local import StateObserver

    class Still(stand_in_local):
        def predict(self, x, action):  # the state model: nothing moves
            return x[:, :self.sdim]

    local = Still([0.5, -0.5, 1.0, 0.0, 9.0, 9.0, 1.0, 0.0])
    observer = StateObserver(local, cube_track=CubeTrack())  # type: ignore[arg-type]
    x = observer.reset(_blank()[0])
    assert observer.lost and x[4].item() == 9.0
    seen = _blank()[0]
    seen[31:33, 31:33] = ORANGE
    x = observer.update(np.zeros(3), seen)
    assert not observer.lost and x[4].item() < 2.0 and x[12].item() == 9.0  # [ŝ_t, ŝ_{t−1}]: the old cube behind
    x_out = observer.update(np.zeros(3), _blank()[0])  # out of view: the state model's prediction (here: still)
    torch.testing.assert_close(x_out[4:6], x[4:6])
    assert not StateObserver(local).lost  # no track: never lost


def test_a_cube_track_is_refused_by_a_push_t_env():
    import gymnasium as gym

    import fog_envs  # noqa: F401

    envs = gym.make_vec("WMPushT-v0", num_envs=1, vectorization_mode="vector_entry_point", obs_type="latent",
                        local_model="state", forward_model="state")
    with pytest.raises(ValueError, match="cube_track and robot_track need the cube task with local_model='state'; "
                                         "this env is 'push"):
        envs.unwrapped.make_observer(cube_track=CubeTrack())
    envs.close()


def test_eval_config_refuses_a_search_without_the_finder():
    from fog_agent.evaluate import EvalConfig

    with pytest.raises(ValueError, match="--search-action needs --cube-finder"):
        EvalConfig(search_action=(0.0, 0.0, 1.0))
    with pytest.raises(ValueError, match="--cube-unseen-pixels needs --cube-finder"):
        EvalConfig(cube_unseen_pixels=20)
    with pytest.raises(ValueError, match="--cube-unseen-pixels needs --cube-finder"):
        EvalConfig(cube_unseen_pixels=20, deployment="pusht")
    assert EvalConfig(cube_unseen_pixels=20, deployment="cube").cube_unseen_pixels == 20  # the deployment finds it


def test_world_to_body_inverts_body_to_world_and_the_expected_pixels_follow_the_view():
    from fog_envs.wm.cube_finder import expected_pixels, world_to_body

    rng = np.random.default_rng(3)
    yaw = rng.uniform(-np.pi, np.pi, 20)
    robot = np.column_stack([rng.uniform(-1, 1, (20, 2)), np.cos(yaw), np.sin(yaw)])
    body = rng.uniform(-1, 1, (20, 2))
    np.testing.assert_allclose(world_to_body(robot, body_to_world(robot, body)), body, atol=1e-12)
    facing_x = np.array([[0.0, 0.0, 1.0, 0.0]])
    assert expected_pixels(facing_x, np.array([0.6, 0.0])) > 100  # ahead: in full view
    assert expected_pixels(facing_x, np.array([-0.6, 0.0])) == 0  # behind
    assert expected_pixels(facing_x, np.array([0.0, 0.6])) == 0  # beside, out of the 75° view
    assert expected_pixels(np.array([[0.0, 0.0, 0.0, 1.0]]), np.array([0.0, 0.6])) > 100  # turned towards it


def test_a_track_forgets_a_cube_the_frame_should_show_and_does_not():
    """With ``unseen_pixels``, a cube carried on to where the camera would see it, in a frame without it, is lost
    again; one beside the robot, out of view, is kept; without ``unseen_pixels`` nothing is forgotten."""
    seen = _blank()[0]
    seen[31:33, 31:33] = ORANGE
    robot = torch.tensor([[0.0, 0.0, 1.0, 0.0, 9.0, 9.0, 1.0, 0.0]], dtype=torch.float64)
    for pixels, forgets in ((20, True), (0, False)):
        track = CubeTrack(CubeFinderConfig(unseen_pixels=pixels))
        track.update(seen, robot)
        assert not track.lost
        ahead = track.last.copy()
        track.update(_blank()[0], robot)  # the cube is ahead where it was placed, and the frame shows none
        assert track.lost == forgets
        if not forgets:
            np.testing.assert_allclose(track.last, ahead)
    track = CubeTrack(CubeFinderConfig(unseen_pixels=20))
    track.update(seen, robot)
    turned = robot.clone()
    turned[0, 2:4] = torch.tensor([0.0, 1.0])  # the robot has turned 90° left: the cube is beside it, out of view
    track.update(_blank()[0], turned)
    assert not track.lost
    with pytest.raises(ValueError, match="unseen_pixels must be >= 0"):
        CubeFinderConfig(unseen_pixels=-1)


def test_fog_eval_deploys_a_cube_agent_with_the_cube_deployment(tmp_path):
    """``fog-eval --deployment cube`` on a two-iteration debug agent (the shipped cube bundles, the state model's
    world): one real episode, the JSON names the finder and the search action; a search action of the wrong length
    is refused by name."""
    from fog_agent.evaluate import EvalConfig, run_evaluation
    from fog_agent.train import AgentTrainConfig, train_agent

    run = tmp_path / "cube"
    train_agent(AgentTrainConfig(env_id="WMPushCube-v0", preset="debug", run_dir=str(run), local_model="state",
                                 forward_model="state", eval_env_id=None), progress=False)
    result = run_evaluation(EvalConfig(run_dir=str(run), episodes=1, video_episodes=0, deployment="cube"))
    assert result["env_id"] == "RealPushCube-v0" and result["episodes"] == 1
    assert result["cube_finder"] and result["robot_finder"] and result["search_action"] == [0.0, 0.0, 1.0]
    with pytest.raises(ValueError, match="--search-action has 2 values"):
        run_evaluation(EvalConfig(run_dir=str(run), episodes=1, video_episodes=0, cube_finder=True,
                                  search_action=(0.0, 1.0)))
    # benchmarks/bench_cube_true_state.py: the same agent on the true state, paired with the deployment's episode
    from benchmarks.bench_cube_true_state import main as true_state

    out = tmp_path / "truth.json"
    assert true_state(["--run-dir", str(run), "--episodes", "1", "--out", str(out),
                       "--compare", str(run / "eval_RealPushCube-v0.json")]) == 0
    saved = json.loads(out.read_text())
    assert len(saved["true_state_successes"]) == 1 and set(saved["compare"]) == {str(run / "eval_RealPushCube-v0.json")}


def test_the_finder_bench_reads_cubes_closer_than_the_probe(tmp_path):
    from benchmarks.bench_cube_finder import main

    out = tmp_path / "finder.json"
    assert main(["--frames", "40", "--seed", "610000", "--threads", "1", "--out", str(out)]) == 0
    rows = {r["cubes"]: r for r in json.loads(out.read_text())["rows"]}
    assert rows["all"]["frames"] >= 10
    assert rows["all"]["silhouette_mm_median"] < rows["all"]["centroid_mm_median"] < rows["all"]["probe_mm_median"]
