"""The five world-model training stages: their batch samplers and losses.

Data convention (the play-dataset rows, see ``fog_envs.data.format``): row t holds the frame o_t, the
action a_t taken after it, the reward r_t received for a_t and the true state at o_t. So within one
episode the transition is (o_t, a_t) -> o_{t+1} with reward r_t, and ``rewards[t]`` labels frame t+1.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Callable

import numpy as np
import torch

from fog_envs.wm.autoencoder import FrameAutoencoder
from fog_envs.wm.edm import EDMConfig, edm_training_loss, rollout_context
from fog_envs.wm.heads import RewardModel
from fog_envs.wm.probe import StateProbe

if TYPE_CHECKING:
    from fog_envs.wm.rssm import RSSM


def valid_window_starts(episode_ends: np.ndarray, length: int) -> np.ndarray:
    """All start rows ``i`` such that rows ``i .. i+length-1`` lie in one episode."""
    starts = np.concatenate([[0], episode_ends[:-1]])
    out = [np.arange(s, e - length + 1) for s, e in zip(starts, episode_ends) if e - s >= length]
    return np.concatenate(out) if out else np.zeros(0, dtype=np.int64)


def sample_window_starts(episode_ends: np.ndarray, length: int, count: int, seed: int) -> np.ndarray:
    """``min(count, all)`` distinct start rows of ``length``-row windows inside one episode, drawn with ``seed``,
    sorted: the held-out windows every open-loop measurement uses. ``ValueError`` when no episode is long enough."""
    starts = valid_window_starts(episode_ends, length)
    if len(starts) == 0:
        raise ValueError(f"no held-out window of {length} frames (episodes too short)")
    return np.sort(np.random.default_rng(seed).choice(starts, size=min(count, len(starts)), replace=False))


def episode_ids(episode_ends: np.ndarray) -> np.ndarray:
    """The episode index of every row."""
    return np.repeat(np.arange(len(episode_ends)), np.diff(np.concatenate([[0], episode_ends])))


@dataclass
class PlayArrays:
    """A play dataset held in memory (plus latents once the autoencoder is trained)."""

    frames: np.ndarray  # (N, H, W, 3) uint8
    actions: np.ndarray  # (N, A) float32
    rewards: np.ndarray  # (N,) float32
    is_success: np.ndarray  # (N,) bool
    state: np.ndarray  # (N, S) float64
    episode_ends: np.ndarray  # (E,) int64
    aux: np.ndarray  # (N, K) float32: task aux targets of each row's state
    probe: np.ndarray  # (N, P) float32: probe targets of each row's state
    latents: torch.Tensor | None = None  # (N, C, h, w) float32

    @property
    def next_rows(self) -> np.ndarray:
        """Rows t whose successor t+1 is in the same episode (so r_t labels frame t+1)."""
        return valid_window_starts(self.episode_ends, 2)


# --- autoencoder --------------------------------------------------------------------------------------

def autoencoder_batch(data: PlayArrays, rng: np.random.Generator, batch: int,
                      prev_rows: np.ndarray | None = None) -> dict[str, torch.Tensor]:
    """Random frames; with ``prev_rows`` (``data.next_rows``: rows whose successor is in their episode) the
    frames are those successors, each with its predecessor as ``prev_frames``."""
    if prev_rows is None:
        idx = np.sort(rng.integers(0, len(data.frames), size=batch))
        return {"frames": torch.from_numpy(data.frames[idx])}
    idx = np.sort(prev_rows[rng.integers(0, len(prev_rows), size=batch)]) + 1
    return {"frames": torch.from_numpy(data.frames[idx]), "prev_frames": torch.from_numpy(data.frames[idx - 1])}


def autoencoder_loss(model: FrameAutoencoder, batch: dict[str, torch.Tensor]):
    return model.loss(batch["frames"], batch.get("prev_frames"))


@torch.no_grad()
def encode_all(model: FrameAutoencoder, frames: np.ndarray, device: torch.device, bf16: bool,
               batch: int = 512) -> torch.Tensor:
    """Scaled latents of every frame, float32 on the CPU."""
    from fog_envs.runtime import autocast

    model.eval()
    out = []
    for i in range(0, len(frames), batch):
        with autocast(device, bf16):
            out.append(model.encode(torch.from_numpy(frames[i:i + batch]).to(device)).float().cpu())
    return torch.cat(out)


# --- denoiser -----------------------------------------------------------------------------------------

def denoiser_window(edm: EDMConfig, context_len: int) -> int:
    """Rows per denoiser training window: the context, the target, and the room for self-generated context."""
    return context_len + 1 + (edm.rollout_steps if edm.rollout_prob > 0 else 0)


def passive_motion(probe: np.ndarray, rows: np.ndarray, dims: tuple[int, ...]) -> np.ndarray:
    """``‖probe[rows, dims] − probe[rows − 1, dims]‖``: how far the passive object moved into each row."""
    idx = list(dims)
    return np.linalg.norm(probe[rows][:, idx] - probe[rows - 1][:, idx], axis=1)


def window_probabilities(motion: np.ndarray, weight: float) -> np.ndarray | None:
    """Sampling probabilities ``∝ 1 + weight·m/mean(m)`` of windows whose target moved the passive object by
    ``m``; None (uniform) when ``weight`` is 0 or nothing moved."""
    mean = float(np.mean(motion)) if len(motion) else 0.0
    if weight == 0 or mean <= 0:
        return None
    w = 1.0 + weight * np.asarray(motion, np.float64) / mean
    return w / w.sum()


def denoiser_batch(data: PlayArrays, context_len: int, rng: np.random.Generator, batch: int,
                   starts: np.ndarray, edm: EDMConfig = EDMConfig(),
                   p: np.ndarray | None = None, states: bool = False) -> dict[str, torch.Tensor]:
    """Windows of real latents and actions ending in the target z_{t+1}, plus ``generated`` (B,): how many
    context latents the loss replaces by the model's own samples (0 unless ``edm.rollout_prob > 0``).

    The windows hold ``denoiser_window(edm, context_len)`` rows; the context is the ``context_len`` rows
    before the target. ``p``: the windows' sampling probabilities (None: uniform; see
    :func:`window_probabilities`). ``states``: also ``"states"`` (B, 2, P), the true probe targets of the last
    context row and of the target row (what a state-guided denoiser is conditioned on)."""
    total = denoiser_window(edm, context_len)
    s = rng.choice(starts, size=batch, p=p)
    rows = s[:, None] + np.arange(total)[None]
    generated = np.zeros(batch, dtype=np.int64)
    if edm.rollout_prob > 0:
        on = rng.random(batch) < edm.rollout_prob
        generated[on] = rng.integers(1, edm.rollout_steps + 1, size=int(on.sum()))
    out = {"latents": data.latents[torch.from_numpy(rows)], "actions": torch.from_numpy(data.actions[rows]),
           "generated": torch.from_numpy(generated)}
    if states:
        out["states"] = torch.from_numpy(data.probe[rows[:, -2:]])
    return out


def make_denoiser_loss(edm: EDMConfig, context_len: int):
    """The EDM loss on :func:`denoiser_batch` windows (after :func:`rollout_context` where asked)."""
    def loss(model: torch.nn.Module, batch: dict[str, torch.Tensor]):
        latents, actions = batch["latents"], batch["actions"]
        if bool((batch["generated"] > 0).any()):
            if "states" in batch:
                raise ValueError("self-forcing (rollout_prob > 0) is not supported with a state-guided denoiser")
            latents = rollout_context(model, latents, actions, batch["generated"], context_len, edm)
        ctx = slice(latents.shape[1] - 1 - context_len, latents.shape[1] - 1)
        return edm_training_loss(model, latents[:, -1], latents[:, ctx], actions[:, ctx], edm, None,
                                 state=batch.get("states"))
    return loss


# --- reward model -------------------------------------------------------------------------------------

def reward_batch(data: PlayArrays, rng: np.random.Generator, batch: int, rows: np.ndarray) -> dict[str, torch.Tensor]:
    """The next frame's latent and the labels of the transition into it."""
    t = rng.choice(rows, size=batch)
    return {"latent": data.latents[torch.from_numpy(t + 1)],
            "reward": torch.from_numpy(data.rewards[t]),
            "success": torch.from_numpy(data.is_success[t].astype(np.float32)),
            "aux": torch.from_numpy(data.aux[t + 1])}


def reward_loss(model: RewardModel, batch: dict[str, torch.Tensor]):
    return model.loss(batch["latent"], batch["reward"], batch["success"], batch["aux"])


# --- RSSM ---------------------------------------------------------------------------------------------

def rssm_batch(data: PlayArrays, seq_len: int, rng: np.random.Generator, batch: int,
               starts: np.ndarray) -> dict[str, torch.Tensor]:
    """Sequences of ``seq_len`` rows from one episode; the last row's reward has no next frame, so masked."""
    s = rng.choice(starts, size=batch)
    rows = s[:, None] + np.arange(seq_len)[None]
    is_first = np.zeros((batch, seq_len), dtype=bool)
    is_first[:, 0] = True
    mask = np.ones((batch, seq_len), dtype=bool)
    return {"latents": data.latents[torch.from_numpy(rows)],
            "actions": torch.from_numpy(data.actions[rows]),
            "rewards": torch.from_numpy(data.rewards[rows]),
            "is_first": torch.from_numpy(is_first), "mask": torch.from_numpy(mask),
            "states": torch.from_numpy(data.probe[rows])}


def rssm_loss(model: "RSSM", batch: dict[str, torch.Tensor]):
    """The RSSM loss; the true states (probe targets) feed its state head when it has one."""
    return model.loss(batch["latents"], batch["actions"], batch["rewards"], batch["is_first"], batch["mask"],
                      states=batch.get("states"))


# --- state probe --------------------------------------------------------------------------------------

def probe_batch(data: PlayArrays, rng: np.random.Generator, batch: int,
                decode: Callable[[torch.Tensor], torch.Tensor] | None = None,
                decoded_fraction: float = 0.0,
                extra: tuple[np.ndarray, np.ndarray] | None = None) -> dict[str, torch.Tensor]:
    """Random rows' frames and probe targets; ``round(decoded_fraction · batch)`` random rows of the batch
    show their frame through the autoencoder (``decode`` of the row's latent) instead of the real frame. With
    ``extra`` (frames, probe targets), the batch's second half comes from it instead (never decoded)."""
    if extra is not None and len(extra[0]):
        half = batch // 2
        out = probe_batch(data, rng, batch - half, decode, decoded_fraction)
        pick = np.sort(rng.integers(0, len(extra[0]), size=half))
        return {"frames": torch.cat([out["frames"], torch.from_numpy(extra[0][pick])]),
                "targets": torch.cat([out["targets"], torch.from_numpy(extra[1][pick].astype(np.float32))])}
    idx = np.sort(rng.integers(0, len(data.frames), size=batch))
    frames = torch.from_numpy(data.frames[idx])
    k = int(round(decoded_fraction * batch))
    if k:
        if decode is None:
            raise ValueError("probe_batch: decoded_fraction > 0 needs the autoencoder's decode")
        pick = np.sort(rng.permutation(batch)[:k])
        with torch.no_grad():
            frames[torch.from_numpy(pick)] = decode(data.latents[torch.from_numpy(idx[pick])]).to(frames.device)
    return {"frames": frames, "targets": torch.from_numpy(data.probe[idx])}


def probe_loss(model: StateProbe, batch: dict[str, torch.Tensor]):
    return model.loss(batch["frames"], batch["targets"])
