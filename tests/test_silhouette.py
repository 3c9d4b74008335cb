"""Silhouettes drawn from the physical state (fog_envs.wm.silhouette) and the denoiser input they make."""

from __future__ import annotations

import math
from dataclasses import replace

import gymnasium as gym
import numpy as np
import pytest
import torch

import fog_envs  # noqa: F401  (registers the ids)
from fog_envs.real.pusht_reward import AGENT_RADIUS, TEE_BOXES
from fog_envs.wm.denoiser import DenoiserConfig, LatentDenoiser
from fog_envs.wm.silhouette import silhouettes
from fog_envs.wm.tasks import get_task

CELL = 512.0 / 64  # px of the table per cell of a 64-cell grid


def _tee_area() -> float:
    return float(sum((b[:, 0].max() - b[:, 0].min()) * (b[:, 1].max() - b[:, 1].min()) for b in TEE_BOXES))


def test_pusht_silhouettes_cover_the_objects_areas_at_any_pose() -> None:
    """Summed over the grid, the block plane is the T's area and the agent plane the disc's, at every angle."""
    angles = torch.linspace(0, 2 * math.pi, 7)
    state = torch.stack([torch.full_like(angles, 0.3), torch.full_like(angles, 0.7), torch.full_like(angles, 0.55),
                         torch.full_like(angles, 0.45), angles.cos(), angles.sin()], 1)
    sil = silhouettes("pusht", state, 64)
    assert sil.shape == (7, 2, 64, 64) and sil.min() >= 0 and sil.max() <= 1
    torch.testing.assert_close(sil[:, 0].sum((1, 2)) * CELL**2, torch.full((7,), _tee_area()), rtol=0.03, atol=0)
    torch.testing.assert_close(sil[:, 1].sum((1, 2)) * CELL**2, torch.full((7,), math.pi * AGENT_RADIUS**2),
                               rtol=0.05, atol=0)


def test_pusht_silhouettes_follow_the_pose() -> None:
    """Moving the block by whole cells moves its plane by as many cells; a quarter turn turns it (about its
    centre of rotation, the block's position)."""
    base = torch.tensor([[0.2, 0.2, 0.5, 0.5, 1.0, 0.0]])
    moved = base.clone()
    moved[0, 2] += 3 / 64
    moved[0, 3] += 2 / 64
    a, b = silhouettes("pusht", base, 64)[0, 0], silhouettes("pusht", moved, 64)[0, 0]
    torch.testing.assert_close(b[2:, 3:], a[:-2, :-3])
    turned = base.clone()
    turned[0, 4:] = torch.tensor([0.0, 1.0])  # θ = 90°: x → y, y → −x about the block position (cell corner 32, 32)
    c = silhouettes("pusht", turned, 64)[0, 0]
    torch.testing.assert_close(c, torch.rot90(a, -1, (0, 1)), atol=1e-5, rtol=0)  # c[r, k] = a[63 − k, r]


def test_pusht_silhouettes_match_the_rendered_frames() -> None:
    """On RealPushT-v0's own frames the drawn objects lie where the pixels differ from the empty table."""
    env = gym.make("RealPushT-v0")
    frames, states = [], []
    for seed in range(6):
        obs, info = env.reset(seed=seed)
        for _ in range(5):
            obs, _, _, _, info = env.step(env.action_space.sample())
        frames.append(obs.astype(np.float32) / 255)
        states.append(info["state"])
    env.close()
    targets = torch.tensor(get_task("pusht").probe_targets(np.array(states)))
    drawn = silhouettes("pusht", targets, 64).sum(1).clamp(max=1).numpy()
    empty = np.median(np.stack(frames), 0)
    changed = (np.abs(np.stack(frames) - empty).sum(-1) > 0.15).astype(np.float32)
    cosine = (drawn * changed).sum() / np.sqrt((drawn**2).sum() * (changed**2).sum())
    assert cosine > 0.85
    mirrored = targets.clone()
    mirrored[:, 5] = -mirrored[:, 5]
    wrong = silhouettes("pusht", mirrored, 64).sum(1).clamp(max=1).numpy()
    assert (wrong * changed).sum() < 0.8 * (drawn * changed).sum()


def test_silhouette_inputs_reach_the_denoiser_and_bad_options_are_named() -> None:
    torch.manual_seed(0)
    cfg = DenoiserConfig(latent_channels=4, channels=16, cond_dim=32, state_dim=6, state_points=((0, 1), (2, 3)),
                         silhouette="pusht", silhouette_size=16, withhold_context=True)
    assert cfg.state_planes == 2 * 6 + 2 * 3 * 2 + 2 * 2 * 4
    net = LatentDenoiser(cfg)
    for p in net.parameters():
        torch.nn.init.normal_(p, std=0.1)
    x, c = torch.randn(2, 4, 8, 8), torch.randn(2)
    ctx, act = torch.randn(2, 4, 4, 8, 8), torch.rand(2, 4, 2) * 2 - 1
    state = torch.tensor([[[0.3, 0.3, 0.5, 0.5, 1.0, 0.0]] * 2] * 2)
    turned = state.clone()
    turned[:, 1, 4:] = torch.tensor([math.cos(0.3), math.sin(0.3)])  # only the drawn T differs: cos/sin of 0.3 rad
    out = net(x, c, ctx, act, state=state)
    assert out.shape == x.shape and torch.isfinite(out).all()
    assert not torch.allclose(out, net(x, c, ctx, act, state=turned))
    unguided = LatentDenoiser(replace(cfg, state_dim=0, state_points=(), silhouette="", withhold_context=False))
    grown = LatentDenoiser(cfg)
    grown.load_unguided(unguided.state_dict())
    torch.testing.assert_close(grown(x, c, ctx, act, state=state), torch.zeros_like(x))  # zero-init output conv
    with pytest.raises(ValueError, match="unknown silhouette kind 'cube'"):
        replace(cfg, silhouette="cube")
    with pytest.raises(ValueError, match="silhouette needs state guidance"):
        DenoiserConfig(silhouette="pusht")
    with pytest.raises(ValueError, match="silhouette_size 12 must be a multiple of latent_size 8"):
        replace(cfg, silhouette_size=12)
    with pytest.raises(ValueError, match="read the task's 6 probe targets"):
        silhouettes("pusht", torch.zeros(2, 5), 16)
