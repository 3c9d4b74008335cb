"""``forward_model="reference"``: the reference system as the global model, the bundle's RSSM as the local one."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
import torch

import fog_envs  # noqa: F401
from fog_envs.learned.factory import make_backend
from fog_envs.wm.bundle import SHIPPED_DIR

pytestmark = pytest.mark.skipif(not (SHIPPED_DIR / "pusht" / "weights.safetensors").exists(),
                                reason="no shipped pusht bundle in this checkout")


def _generators(n: int, seed: int) -> list[torch.Generator]:
    return [torch.Generator().manual_seed(seed + i) for i in range(n)]


def _actions(steps: int, n: int) -> list[torch.Tensor]:
    rng = np.random.default_rng(0)
    return [torch.as_tensor(rng.uniform(-1, 1, (n, 2)), dtype=torch.float32) for _ in range(steps)]


def test_global_step_is_the_reference_system_seen_through_the_rssm(one_thread):
    """Rewards, success, coverage and frames are RealPushT-v0's for the same seeds and actions; the local state
    is the RSSM posterior on the encoded true frame, started as the deployment observer starts."""
    n = 3
    backend = make_backend("pusht", n, forward_model="reference", bf16=False)
    gens = _generators(n, 7)
    backend.reset(torch.arange(n), gens)
    model = backend.model
    real = [gym.make("RealPushT-v0") for _ in range(n)]
    x = torch.stack([model.autoencoder.encode(torch.as_tensor(env.reset(seed=s)[0])[None]) for env, s
                     in zip(real, backend._seeds)])  # (n, 1, C, h, w)
    x = model.filter_window(x, torch.zeros(n, 1, 2))
    torch.testing.assert_close(backend.state(), x)
    for action in _actions(4, n):
        out = backend.global_step(action, gens)
        steps = [env.step(a) for env, a in zip(real, action.numpy())]
        frames = np.stack([s[0] for s in steps])
        np.testing.assert_array_equal(backend.render_obs("pixels"), frames)
        np.testing.assert_allclose(out.reward.numpy(), [s[1] for s in steps], rtol=1e-6)
        np.testing.assert_allclose(out.aux["coverage"].numpy(), [s[4]["coverage"] for s in steps], rtol=1e-6)
        assert out.is_success.tolist() == [s[4]["is_success"] for s in steps]
        x = model.filter_step(x, action, model.autoencoder.encode(torch.as_tensor(frames)))
        torch.testing.assert_close(out.next_state, x)
        torch.testing.assert_close(backend.state(), x)


def test_snapshot_restore_replays_the_reference_system_exactly(one_thread):
    n = 2
    backend = make_backend("pusht", n, forward_model="reference", bf16=False)
    gens = _generators(n, 3)
    backend.reset(torch.arange(n), gens)
    acts = _actions(8, n)
    for a in acts[:5]:
        backend.global_step(a, gens)
    snap = backend.snapshot()
    first = [backend.global_step(a, gens) for a in acts[5:]]
    frames = backend.render_obs("pixels")

    other = make_backend("pusht", n, forward_model="reference", bf16=False)
    other.restore(snap)
    again = [other.global_step(a, gens) for a in acts[5:]]
    for a, b in zip(first, again):
        assert torch.equal(a.reward, b.reward) and torch.equal(a.next_state, b.next_state)
    np.testing.assert_array_equal(other.render_obs("pixels"), frames)


def test_learned_env_with_the_reference_forward_model_and_its_errors(one_thread):
    envs = gym.make_vec("WMPushT-v0", num_envs=2, vectorization_mode="vector_entry_point", obs_type="latent",
                        forward_model="reference")
    obs, _ = envs.reset(seed=0)
    obs2, reward, terminated, truncated, infos = envs.step(np.zeros((2, 2), np.float32))
    assert obs2.shape == obs.shape and np.all(np.isfinite(obs2)) and np.all((reward >= 0) & (reward <= 1))
    assert envs.unwrapped.reference_env_id == "RealPushT-v0"
    envs.close()
    with pytest.raises(ValueError, match="forward_model='reference' / local_model='rssm' apply to world-model envs"):
        gym.make("WMToy-v0", forward_model="reference")
    with pytest.raises(ValueError, match="start_sigma sets the diffusion sampler"):
        gym.make("WMPushT-v0", forward_model="reference", start_sigma=0.5)
