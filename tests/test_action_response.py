"""The probe-free Push-T action-response check: the agent read from pixels, and the response figures."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
import torch

import fog_envs  # noqa: F401
from fog_envs.data.collect import CollectConfig, collect
from fog_envs.wm.action_response import ResponseConfig, action_response, agent_centroid, local_sensitivity
from fog_envs.wm.bundle import SHIPPED_DIR
from fog_envs.wm.model import WorldModel
from fog_envs.wm.train import load_play_arrays


def test_agent_centroid_reads_the_true_agent_position_from_real_frames():
    env = gym.make("RealPushT-v0")
    frames, states = [], []
    for seed in range(6):
        obs, info = env.reset(seed=seed)
        for a in ([1.0, 0.5], [-0.3, 1.0]):
            obs, *_, info = env.step(np.asarray(a, np.float32))
            frames.append(obs)
            states.append(info["state"][:2])
    err = np.linalg.norm(agent_centroid(np.stack(frames)) - np.stack(states), axis=1)
    assert err.max() < 4.0  # of 512 px; one frame pixel is 8


def test_agent_centroid_edge_cases():
    assert np.isnan(agent_centroid(np.full((1, 64, 64, 3), 255, np.uint8))).all()
    with pytest.raises(ValueError, match=r"frames \(N, H, W, 3\)"):
        agent_centroid(np.zeros((64, 64, 3), np.uint8))


@pytest.mark.skipif(not (SHIPPED_DIR / "pusht" / "weights.safetensors").exists(), reason="no shipped bundle")
def test_action_response_of_the_shipped_model(tmp_path):
    path = tmp_path / "heldout.h5"
    collect(CollectConfig(env_id="RealPushT-v0", out=path, num_episodes=2, seed=5, workers=1, max_episode_steps=24))
    torch.set_num_threads(1)
    model = WorldModel.load("pusht")
    res = action_response(model, load_play_arrays(path, "pusht"), ResponseConfig(num_windows=6))
    assert res["windows"] == 6
    rp = res["response_px"]
    assert 15.0 < rp["true"] < 35.0  # the real agent moves ~12 px each way in one 0.1 s step
    assert abs(rp["real_frames"] - rp["true"]) < 4.0
    assert all(np.isfinite(v) for v in [*rp.values(), *res["agent_error_px"].values()])
    state = {"rssm_state"} if model.rssm.state_head is not None else set()
    assert set(res["agent_error_px"]) == {"diffusion", "rssm", "autoencoder"} | state


@pytest.mark.skipif(not (SHIPPED_DIR / "pusht" / "weights.safetensors").exists(), reason="no shipped bundle")
def test_local_sensitivity_of_the_shipped_model(tmp_path):
    """The real system's d(agent)/d(action) is ~12 px per unit action (one 0.1 s step of the PD-driven agent);
    every model source gets a median and a sign agreement in [0, 1]; cube models are refused."""
    path = tmp_path / "heldout.h5"
    collect(CollectConfig(env_id="RealPushT-v0", out=path, num_episodes=2, seed=5, workers=1, max_episode_steps=24))
    torch.set_num_threads(1)
    model = WorldModel.load("pusht")
    res = local_sensitivity(model, load_play_arrays(path, "pusht"), ResponseConfig(num_windows=6))
    assert 6.0 < res["real_median"] < 20.0 and res["eps"] == 0.25
    sources = {"diffusion", "rssm"} | ({"rssm_state"} if model.rssm.state_head is not None else set())
    assert sources <= set(res)
    for k in sources:
        assert np.isfinite(res[k]["median"]) and 0.0 <= res[k]["sign_agreement"] <= 1.0
