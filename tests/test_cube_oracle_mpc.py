"""Contracts of benchmarks/cube_oracle_mpc.py, the planner that simulates the true cube system."""

from __future__ import annotations

import sys
from pathlib import Path

import mujoco
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.cube_oracle_mpc import plan_episode, sequence_returns  # noqa: E402
from fog_envs.real import cube_reward  # noqa: E402
from fog_envs.real.cube import RealPushCubeEnv  # noqa: E402


def test_a_sequences_return_is_the_env_reward_summed_along_it_and_the_episode_stays_put():
    env = RealPushCubeEnv(render_mode=None)
    env.reset(seed=3)
    start = env.true_state()
    seqs = np.random.default_rng(0).uniform(-1, 1, size=(3, 4, 3)).astype(np.float32)
    got = sequence_returns(env, env.data, mujoco.MjData(env.model), seqs)
    assert np.array_equal(env.true_state(), start)
    for seq, value in zip(seqs, got):
        env.reset(seed=3)
        want = sum(env.step(a)[1] for a in seq)
        assert value == want
    assert len(set(got.tolist())) == 3


def test_planned_episodes_are_seeded_and_record_their_outcome():
    a = plan_episode(5, samples=4, horizon=3, iterations=1, steps=3, std=0.6)
    b = plan_episode(5, samples=4, horizon=3, iterations=1, steps=3, std=0.6)
    assert {k: v for k, v in a.items() if k != "wall_time_s"} == {k: v for k, v in b.items() if k != "wall_time_s"}
    assert a["final_cube_goal_m"] > cube_reward.GOAL_RADIUS and not a["success"]  # three steps do not finish a reset
