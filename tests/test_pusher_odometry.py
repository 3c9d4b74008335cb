"""The Push-T pusher odometry (fog_envs.wm.pusher_odometry): the actuator fit, dead reckoning against the reference
system, the start estimators, the bundle, the CLI and the deployment observer."""

from __future__ import annotations

import dataclasses
import json
from types import SimpleNamespace

import gymnasium as gym
import numpy as np
import pytest
import torch

import fog_envs  # noqa: F401
from fog_envs.real.pusht import TABLE_SIZE
from fog_envs.wm.bundle import BundleError
from fog_envs.wm.pusher_odometry import (PusherOdometry, PusherOdometryConfig, actuator_rows, dead_reckon,
                                         fit_actuator, inliers)

COEF = (-0.2, 0.15, 0.4)  # (α, β, γ) with α·γ + β ≠ 0: from rest d_t is not just γ·u_t


def _odometry(estimator: str = "median", coef=COEF, **pool) -> PusherOdometry:
    """An odometry that pools every reading unless ``pool`` (PusherOdometryConfig fields) says otherwise."""
    config = dataclasses.replace(PusherOdometryConfig(estimator=estimator, inlier_radius=0.0, min_move=0.0), **pool)
    return PusherOdometry(config).set_coefficients(coef)


def _random_actions(steps: int, batch: int, seed: int) -> torch.Tensor:
    return torch.rand(steps, batch, 2, generator=torch.Generator().manual_seed(seed), dtype=torch.float64) * 2 - 1


def test_config_and_coefficients_are_checked():
    with pytest.raises(ValueError, match="command_scale must be > 0"):
        PusherOdometryConfig(command_scale=0.0)
    with pytest.raises(ValueError, match="low < high"):
        PusherOdometryConfig(low=1.0, high=1.0)
    with pytest.raises(ValueError, match="estimator must be 'mean' or 'median'"):
        PusherOdometryConfig(estimator="mode")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="window must be >= 0"):
        PusherOdometryConfig(window=-1)
    with pytest.raises(ValueError, match="min_move must be >= 0"):
        PusherOdometryConfig(min_move=-1.0)
    with pytest.raises(ValueError, match="inlier_radius must be >= 0"):
        PusherOdometryConfig(inlier_radius=float("nan"))
    with pytest.raises(ValueError, match="3 finite coefficients"):
        PusherOdometry().set_coefficients([1.0, 2.0])
    with pytest.raises(ValueError, match="3 finite coefficients"):
        PusherOdometry().set_coefficients([1.0, float("nan"), 0.0])
    with pytest.raises(ValueError, match=r"\(B, 2\) pusher reading"):
        _odometry().track(torch.zeros(2))
    with pytest.raises(ValueError, match=r"positions \(T\+1, 2\) and actions \(T, 2\)"):
        actuator_rows(np.zeros((5, 2)), np.zeros((5, 2)), PusherOdometryConfig())
    with pytest.raises(ValueError, match="at least 3 displacements"):
        fit_actuator([(np.zeros((2, 2)), np.zeros((1, 2)))], PusherOdometryConfig())


def test_dead_reckoning_by_hand_with_a_clipped_target():
    odo = _odometry()
    s = odo.config.command_scale
    # x: from rest at 0.5, u0 = s, u1 = −s; y: at the table's edge 1.0, the target clipped (u = 0)
    path = dead_reckon(odo, torch.tensor([[0.5, 1.0]]), torch.tensor([[[1.0, 1.0]], [[-1.0, 1.0]]]))
    d0 = 0.4 * s
    d1 = -0.2 * d0 + 0.15 * s + 0.4 * (-s)
    np.testing.assert_allclose(path[:, 0, 0].numpy(), [0.5, 0.5 + d0, 0.5 + d0 + d1], atol=1e-15)
    np.testing.assert_array_equal(path[:, 0, 1].numpy(), [1.0, 1.0, 1.0])


def test_fit_recovers_the_coefficients_of_a_known_actuator():
    odo = _odometry()
    episodes = []
    for seed in range(3):
        actions = _random_actions(40, 1, seed)
        path = dead_reckon(odo, torch.full((1, 2), 0.5, dtype=torch.float64), actions)
        episodes.append((path[:, 0].numpy(), actions[:, 0].numpy()))
    coef, residual = fit_actuator(episodes, odo.config)
    np.testing.assert_allclose(coef, COEF, atol=1e-10)
    assert residual["rows"] == 3 * 40 * 2 and residual["max"] < 1e-12


def test_the_shipped_odometry_dead_reckons_the_reference_pusher():
    """The contract the module rests on: RealPushT-v0's pusher goes where its actions send it, block or no block,
    targets clipped at the table's edge included (the start near a corner, pushed outwards)."""
    odo = PusherOdometry.load("pusht_odometry")[0]
    env = gym.make("RealPushT-v0", obs_type="state", render_mode=None).unwrapped
    gen = np.random.default_rng(0)
    for start, bias in (([30.0, 30.0, 256.0, 300.0, 0.3], -0.6), ([256.0, 250.0, 300.0, 300.0, 1.0], 0.0)):
        _, info = env.reset(seed=0, options={"reset_to_state": np.array(start)})
        actions = np.clip(gen.normal(bias, 0.6, size=(80, 2)), -1, 1).astype(np.float32)
        true = [info["state"][:2]]
        for a in actions:
            true.append(env.step(a)[4]["state"][:2])
        true = np.array(true) / TABLE_SIZE
        path = dead_reckon(odo, torch.from_numpy(true[:1]), torch.from_numpy(actions.astype(np.float64))[:, None])
        assert np.abs(path[:, 0].numpy() - true).max() * TABLE_SIZE < 1e-3
    env.close()


def test_track_estimates_the_start_as_the_mean_or_median_of_the_readings():
    """With the pusher's path known, each reading r_t = p_t + e_t reads the start; the track's error after T
    frames is exactly the mean (median) of e_0..e_T, and it is the same at every point of the path."""
    gen = torch.Generator().manual_seed(1)
    actions = _random_actions(60, 4, 2)
    truth = dead_reckon(_odometry(), torch.full((4, 2), 0.5, dtype=torch.float64), actions)
    noise = torch.randn(61, 4, 2, generator=gen, dtype=torch.float64) * 0.01
    noise[30, 0] = 5.0  # one reading gone badly wrong
    for estimator, pool in (("mean", lambda e: e.mean(0)), ("median", lambda e: e.quantile(0.5, dim=0))):
        track = _odometry(estimator).track(truth[0] + noise[0])
        for t in range(60):
            est = track.update(actions[t], truth[t + 1] + noise[t + 1])
        np.testing.assert_allclose((est - truth[60]).numpy(), pool(noise).numpy(), atol=1e-12)
    # the median shrugs the outlier off, the mean carries a 61st of it
    median = _odometry("median").track(truth[0] + noise[0])
    mean = _odometry("mean").track(truth[0] + noise[0])
    for t in range(60):
        reading = truth[t + 1] + noise[t + 1]
        m, a = median.update(actions[t], reading), mean.update(actions[t], reading)
    assert (m - truth[60])[0].norm() < 0.01 < (a - truth[60])[0].norm()


def test_a_window_forgets_a_stretch_of_misread_frames():
    """21 frames misread by the same 0.1 (a reader fooled for a while), then 10 read right: the whole episode's
    median is still the misreading, the last 10 frames' is the truth."""
    actions = _random_actions(30, 1, 3)
    truth = dead_reckon(_odometry(), torch.full((1, 2), 0.5, dtype=torch.float64), actions)
    readings = truth.clone()
    readings[:21] += 0.1
    tracks = {w: _odometry(window=w).track(readings[0]) for w in (0, 10)}
    for t in range(30):
        est = {w: track.update(actions[t], readings[t + 1]) for w, track in tracks.items()}
    np.testing.assert_allclose((est[0] - truth[30]).numpy(), 0.1, atol=1e-12)
    np.testing.assert_allclose((est[10] - truth[30]).numpy(), 0.0, atol=1e-12)


def test_inliers_are_the_densest_cluster_ties_to_the_latest():
    # batch 0: three readings agree, two stray; batch 1: two pairs, the later pair wins the tie
    starts = torch.tensor([[[0.0, 0.0], [0.0, 0.0]], [[5.0, 0.0], [0.0, 0.0]], [[0.1, 0.0], [3.0, 0.0]],
                           [[0.0, 0.1], [3.1, 0.0]], [[-4.0, 2.0], [9.0, 9.0]]], dtype=torch.float64)
    mask = inliers(starts, 0.5)
    assert mask[:, 0].tolist() == [True, False, True, True, False]
    assert mask[:, 1].tolist() == [False, False, True, True, False]


def test_inliers_find_the_start_while_most_frames_are_misread():
    """The first 20 of 30 frames misread by scattered errors of 20–60 px to one side (the reader lost at the table's
    edge), the last 10 read right: the median of all is off, the inliers' median is the truth."""
    gen = torch.Generator().manual_seed(4)
    actions = _random_actions(29, 1, 5)
    truth = dead_reckon(_odometry(), torch.full((1, 2), 0.5, dtype=torch.float64), actions)
    angle = torch.rand(20, 1, generator=gen, dtype=torch.float64) * 1.57  # all to one side, as at an edge
    size = 0.04 + 0.08 * torch.rand(20, 1, generator=gen, dtype=torch.float64)
    readings = truth.clone()
    readings[:20] += size[..., None] * torch.stack([angle.cos(), angle.sin()], -1)
    tracks = {r: _odometry(inlier_radius=r).track(readings[0]) for r in (0.0, 0.01)}
    for t in range(29):
        est = {r: track.update(actions[t], readings[t + 1]) for r, track in tracks.items()}
    assert (est[0.0] - truth[29]).norm() > 0.01
    np.testing.assert_allclose(est[0.01].numpy(), truth[29].numpy(), atol=1e-12)


def test_a_parked_pusher_does_not_outvote_the_moving_one():
    """10 moves read right, then the pusher parks and its frame is misread by the same 0.1 thirty times: those
    repeated readings are the densest cluster unless frames where the pusher has not moved are left out."""
    actions = torch.cat([_random_actions(10, 1, 6), torch.zeros(35, 1, 2, dtype=torch.float64)])
    truth = dead_reckon(_odometry(), torch.full((1, 2), 0.5, dtype=torch.float64), actions)
    readings = truth.clone()
    readings[16:] += 0.1
    est = {}
    for move in (0.0, 0.001):
        track = _odometry(inlier_radius=0.01, min_move=move).track(readings[0])
        for t in range(45):
            est[move] = track.update(actions[t], readings[t + 1])
    np.testing.assert_allclose((est[0.0] - truth[45]).numpy(), 0.1, atol=1e-9)
    np.testing.assert_allclose(est[0.001].numpy(), truth[45].numpy(), atol=1e-9)


def test_bundle_round_trip_and_foreign_bundles(tmp_path):
    odo = _odometry("mean")
    odo.save(tmp_path / "odo", {"note": "test"})
    back, card = PusherOdometry.load(tmp_path / "odo")
    assert back.config == odo.config and card == {"note": "test"}
    np.testing.assert_array_equal(back.coefficients.numpy(), COEF)
    with pytest.raises(BundleError, match="fog-pusher-odometry"):
        PusherOdometry.load("pusht_goal_reader")
    (tmp_path / "odo" / "card.json").write_text("{not json")
    with pytest.raises(BundleError, match="not valid JSON"):
        PusherOdometry.load(tmp_path / "odo")


def test_cli_fits_the_reference_actuator_and_writes_its_card(tmp_path, capsys):
    from fog_envs.wm.pusher_odometry_cli import main

    out = tmp_path / "odo"
    assert main(["--out", str(out), "--episodes", "2", "--steps", "30", "--heldout", "1"]) == 0
    assert "pusher odometry written to" in capsys.readouterr().out
    card = json.loads((out / "card.json").read_text())
    assert card["residual_px"]["rows"] == 2 * 30 * 2 and card["residual_px"]["max"] < 1e-4
    assert card["heldout_max_error_px"] < 1e-3
    shipped = PusherOdometry.load("pusht_odometry")[0].coefficients.numpy()
    np.testing.assert_allclose(card["coefficients"], shipped, atol=1e-6)
    with pytest.raises(SystemExit):
        main(["--out", str(out), "--episodes", "0"])
    assert "needs episodes >= 1" in capsys.readouterr().err


def _pusht_stand_in(stand_in_local, reading):
    from fog_envs.wm.tasks import get_task

    local = stand_in_local(reading)
    local.model = SimpleNamespace(task=get_task("pusht"))
    return local


def test_state_observer_replaces_the_pusher_reading_with_the_track(stand_in_local):
    from fog_envs.learned.state_local import StateObserver

    frame = np.zeros((8, 8, 3), dtype=np.uint8)
    reading = [0.5, 0.5, 0.25, 0.25, 1.0, 0.0]
    odo = _odometry()
    observer = StateObserver(_pusht_stand_in(stand_in_local, reading), odometry=odo)  # type: ignore[arg-type]
    np.testing.assert_allclose(observer.reset(frame)[:6].numpy(), reading)
    # the frame keeps reading the pusher at its start: the median start stays there, the track adds the travel
    x = observer.update(np.array([1.0, -1.0]), frame)
    travel = 0.4 * odo.config.command_scale
    expected = torch.tensor([0.5, 0.5]) + torch.quantile(torch.tensor([[0.0, 0.0], [-travel, travel]]), 0.5, dim=0)
    expected += torch.tensor([travel, -travel])
    np.testing.assert_allclose(x[:2].numpy(), expected.numpy(), atol=1e-7)
    np.testing.assert_allclose(x[2:6].numpy(), reading[2:], atol=1e-7)
    np.testing.assert_allclose(x[6:].numpy(), reading, atol=1e-7)


def test_odometry_needs_the_pusht_state_local_model(debug_bundle):
    from fog_envs.learned.factory import make_backend

    backend = make_backend("pusht", 1, world_model=str(debug_bundle))
    with pytest.raises(ValueError, match="odometry need the Push-T task with local_model='state'"):
        backend.make_observer(odometry=_odometry())


def test_an_episode_is_parked_when_nothing_moved_over_its_last_steps_and_the_block_is_not_home():
    from benchmarks.bench_policy_fixed_points import STILL_STEPS, parked

    still = np.tile([[100.0, 100.0, 256.0, 300.0, 1.0]], (STILL_STEPS + 5, 1))
    assert parked(still, home=False) and not parked(still, home=True)
    jiggle = still.copy()
    jiggle[-3, 0] += 1.0  # the pusher moved 1 px
    assert not parked(jiggle, home=False)
    pushed = still.copy()
    pushed[-2:, 4] += 0.01  # the block turned
    assert not parked(pushed, home=False)
    early = still.copy()
    early[:3, 0] += 50.0  # it moved, but before the last STILL_STEPS steps
    assert parked(early, home=False)
