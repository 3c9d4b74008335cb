"""Does the world model move the Push-T agent the way the action says? A probe-free fidelity check.

The agent is the only blue object in Push-T frames, so its position can be read straight from the pixels
(:func:`agent_centroid`, within ~1 px of the true state on real frames), also on the blurry frames a model
generates, where the learned state probe is biased. From held-out real windows, for each window:

* **response**: the agent's x-shift between the next frame after ``a=(+1, 0)`` and after ``a=(-1, 0)``
  (the last context action replaced), for the real system (``RealPushT-v0`` reset to the window's true
  state), the autoencoder's reconstruction of those real frames, the diffusion model's sample and the RSSM
  prior's one-step prediction (decoded; and, when the RSSM has a state head, its own agent estimate,
  ``rssm_state``). A model that ignores the action has response 0; the real one is ~24 px.
* **error**: the distance between the agent in each model's next frame and the true agent position, with
  the window's real action.
* **sensitivity** (:func:`local_sensitivity`): the local derivative d(agent position)/d(action) at the
  window's real action (central differences, each action component in turn), per source, as the median
  derivative (px per unit action) and the fraction of (window, component) pairs whose sign agrees with the
  real system's. This is what FoG's gradients need from the local model; a model that uses the action as
  evidence of where the agent already is (the play data's policy correlates them) gets the sign wrong.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from fog_envs.wm.model import WorldModel
from fog_envs.wm.stages import PlayArrays, valid_window_starts

#: workspace pixels per frame pixel (512-px Push-T workspace rendered at 64×64)
PX_PER_FRAME_PX = 512 / 64


def agent_centroid(frames: np.ndarray, radius: int = 3) -> np.ndarray:
    """Agent position (N, 2) in workspace pixels from uint8 Push-T frames (N, 64, 64, 3).

    Blueness ``B − (R + G)/2`` peaks on the agent (≈140 on real frames; the grey block ≈25, the green goal
    and the white floor < 0); the position is the blueness-weighted centroid, above half the peak, within
    ``radius`` frame pixels of the peak. NaN where a frame has no blue at all.
    """
    f = np.asarray(frames, dtype=np.float64)
    if f.ndim != 4 or f.shape[-1] != 3:
        raise ValueError(f"agent_centroid: expected frames (N, H, W, 3), got {f.shape}")
    blue = f[..., 2] - 0.5 * (f[..., 0] + f[..., 1])
    n, h, w = blue.shape
    ys, xs = np.mgrid[0:h, 0:w]
    out = np.full((n, 2), np.nan)
    for i in range(n):
        b = blue[i]
        peak = b.max()
        if peak <= 0:
            continue
        iy, ix = np.unravel_index(np.argmax(b), b.shape)
        near = (ys - iy) ** 2 + (xs - ix) ** 2 <= radius ** 2
        wgt = np.where(near, np.clip(b - 0.5 * peak, 0.0, None), 0.0)
        out[i] = [(wgt * xs).sum() / wgt.sum(), (wgt * ys).sum() / wgt.sum()]
    return (out + 0.5) * PX_PER_FRAME_PX


@dataclass(frozen=True)
class ResponseConfig:
    num_windows: int = 48
    seed: int = 0
    denoising_steps: int | None = None
    sensitivity_eps: float = 0.25
    """action perturbation of :func:`local_sensitivity` (clipped to the action box; the derivative divides by
    the perturbation actually applied)"""


def _windows(model: WorldModel, data: PlayArrays, cfg: ResponseConfig) -> np.ndarray:
    if model.task.name != "pusht":
        raise ValueError(f"action_response reads the Push-T agent; this model is for {model.task.name!r}")
    starts = valid_window_starts(data.episode_ends, model.context_len + 1)
    return np.sort(np.random.default_rng(cfg.seed).choice(starts, size=min(cfg.num_windows, len(starts)),
                                                          replace=False))


@torch.no_grad()
def _predict_agent(model: WorldModel, lat: torch.Tensor, actions: torch.Tensor, cfg: ResponseConfig
                   ) -> dict[str, np.ndarray]:
    """The agent position (px of 512) one step after ``actions[:, -1]``, per model (see the module docstring)."""
    gen = torch.Generator(device=lat.device).manual_seed(cfg.seed)
    z = model.next_latent(lat, actions, gen, cfg.denoising_steps)
    x = model.local_step(model.filter_window(lat, actions), actions[:, -1])
    out = {"diffusion": agent_centroid(model.autoencoder.decode(z).cpu().numpy()),
           "rssm": agent_centroid(model.autoencoder.decode(model.decode_local(x)).cpu().numpy())}
    if model.rssm.state_head is not None:  # the RSSM's own state estimate (probe targets: agent xy / 512)
        out["rssm_state"] = model.rssm.state(x)[:, :2].cpu().numpy().astype(np.float64) * 512.0
    return out


@torch.no_grad()
def local_sensitivity(model: WorldModel, data: PlayArrays, cfg: ResponseConfig = ResponseConfig()) -> dict[str, dict]:
    """Median d(agent)/d(action) (px per unit action) and sign agreement with the real system, per source."""
    import gymnasium as gym

    import fog_envs  # noqa: F401  (registers RealPushT-v0)

    starts = _windows(model, data, cfg)
    L = model.context_len
    device = next(model.parameters()).device
    rows = starts[:, None] + np.arange(L)[None]
    lat = model.autoencoder.encode(torch.from_numpy(data.frames[rows]).to(device))
    real_act = data.actions[rows].astype(np.float32)
    env = gym.make("RealPushT-v0").unwrapped
    derivs: dict[str, list[np.ndarray]] = {}
    for dim in range(real_act.shape[-1]):
        ends = {}
        for sign in (1.0, -1.0):
            acts = real_act.copy()
            acts[:, -1, dim] = np.clip(acts[:, -1, dim] + sign * cfg.sensitivity_eps, -1.0, 1.0)
            true = []
            for s, a in zip(starts, acts[:, -1]):
                env.reset(options={"reset_to_state": data.state[s + L - 1]})
                true.append(env.step(a)[-1]["state"][dim])
            ends[sign] = {"true": np.asarray(true), "applied": acts[:, -1, dim],
                          **{k: v[:, dim] for k, v in
                             _predict_agent(model, lat, torch.from_numpy(acts).to(device), cfg).items()}}
        step = ends[1.0]["applied"] - ends[-1.0]["applied"]
        ok = step > 1e-6
        for k in ends[1.0]:
            if k != "applied":
                derivs.setdefault(k, []).append(((ends[1.0][k] - ends[-1.0][k]) / np.where(ok, step, 1.0))[ok])
    env.close()
    d = {k: np.concatenate(v) for k, v in derivs.items()}
    real = d.pop("true")
    return {"eps": cfg.sensitivity_eps, "real_median": float(np.median(real)),
            **{k: {"median": float(np.nanmedian(v)), "sign_agreement": float(np.mean(np.sign(v) == np.sign(real)))}
               for k, v in d.items()}}


@torch.no_grad()
def action_response(model: WorldModel, data: PlayArrays, cfg: ResponseConfig = ResponseConfig()) -> dict[str, dict]:
    """Median agent response (px) and agent position error (px) per source; see the module docstring."""
    import gymnasium as gym

    import fog_envs  # noqa: F401  (registers RealPushT-v0)

    starts = _windows(model, data, cfg)
    L = model.context_len
    env = gym.make("RealPushT-v0").unwrapped
    device = next(model.parameters()).device
    rows = starts[:, None] + np.arange(L)[None]
    lat = model.autoencoder.encode(torch.from_numpy(data.frames[rows]).to(device))
    real_act = torch.from_numpy(data.actions[rows]).to(device)

    def predict(actions: torch.Tensor) -> dict[str, np.ndarray]:
        return _predict_agent(model, lat, actions, cfg)

    def real_step(action: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        states, frames = [], []
        for s in starts:
            env.reset(options={"reset_to_state": data.state[s + L - 1]})
            obs, *_, info = env.step(action)
            states.append(info["state"][:2])
            frames.append(obs)
        return np.asarray(states), np.asarray(frames)

    at: dict[float, dict[str, np.ndarray]] = {}
    for sign in (1.0, -1.0):
        acts = real_act.clone()
        acts[:, -1] = torch.tensor([sign, 0.0])
        true, frames = real_step(np.array([sign, 0.0], np.float32))
        recon = model.autoencoder.decode(model.autoencoder.encode(torch.from_numpy(frames).to(device))).cpu().numpy()
        at[sign] = {"true": true, "real_frames": agent_centroid(frames), "autoencoder": agent_centroid(recon),
                    **predict(acts)}
    response = {k: float(np.nanmedian(at[1.0][k][:, 0] - at[-1.0][k][:, 0])) for k in at[1.0]}
    with_real = predict(real_act)
    true_next = data.state[starts + L][:, :2]
    error = {k: float(np.nanmedian(np.linalg.norm(v - true_next, axis=1))) for k, v in with_real.items()}
    error["autoencoder"] = float(np.nanmedian(np.linalg.norm(at[1.0]["autoencoder"] - at[1.0]["true"], axis=1)))
    env.close()
    return {"windows": int(len(starts)), "response_px": response, "agent_error_px": error}
