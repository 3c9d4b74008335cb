"""benchmarks/bench_small_pushes.py: its starts touch the block, and its reference pushes are monotone."""

import numpy as np
import shapely.geometry as sg

from benchmarks.bench_small_pushes import AGENT_RADIUS, block_moved_px, contact_starts, reference_pushes
from fog_envs.real.pusht_reward import GOAL_POSE, tee_polygon


def test_contact_starts_touch_the_block_near_the_goal_and_are_seeded():
    states, inward = contact_starts(60, seed=3)
    again, _ = contact_starts(60, seed=3)
    np.testing.assert_array_equal(states, again)
    assert 10 <= len(states) <= 60
    np.testing.assert_allclose(np.linalg.norm(inward, axis=1), 1.0, atol=1e-6)
    for (ax, ay, bx, by, bth), d in zip(states, inward):
        tee = tee_polygon(np.array([bx, by, bth]))
        gap = tee.distance(sg.Point(ax, ay))
        # the disc clears the T (no overlap) and its contact point is 1 px off the outline
        assert AGENT_RADIUS - 1.0 <= gap <= AGENT_RADIUS + 1.0 + 1e-6
        centre = np.array(tee.centroid.coords[0])
        towards = (centre - [ax, ay]) / np.linalg.norm(centre - [ax, ay])
        np.testing.assert_allclose(d, towards, atol=1e-6)  # the push aims at the T's centroid
    assert np.median(np.abs(states[:, 2:4] - GOAL_POSE[:2])) < 16.0


def test_reference_pushes_move_the_block_more_under_a_harder_push():
    states, inward = contact_starts(12, seed=0)
    states, inward = states[:4], inward[:4]
    gentle = reference_pushes(states, (0.1 * inward).astype(np.float32), steps=4)
    hard = reference_pushes(states, (0.8 * inward).astype(np.float32), steps=4)
    assert gentle.shape == hard.shape == (4, 5, gentle.shape[-1])
    assert np.median(block_moved_px(hard)) > 3.0 * np.median(block_moved_px(gentle)) > 0.0
