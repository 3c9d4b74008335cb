"""``WorldModel``: the trained parts of one task's world model, built from a config or a bundle."""

from __future__ import annotations

import os
from typing import Any

import torch
from torch import nn

from fog_envs.wm.autoencoder import FrameAutoencoder
from fog_envs.wm.bundle import WorldModelConfig, load_state, read_bundle, split_prefix, write_bundle
from fog_envs.wm.denoiser import LatentDenoiser
from fog_envs.wm.edm import euler_sample
from fog_envs.wm.heads import RewardModel
from fog_envs.wm.probe import StateProbe
from fog_envs.wm.rssm import RSSM
from fog_envs.wm.tasks import TaskSpec, get_task


class WorldModel(nn.Module):
    """Autoencoder, diffusion denoiser, reward model, RSSM and state probe of one task.

    ``start_latents`` (N, P, C, h, w) and ``start_actions`` (N, P, A) are windows of real play data that
    start imagined episodes (``start_actions[:, i]`` is the action taken after ``start_latents[:, i]``; the
    last one is replaced by the policy's first action).
    """

    def __init__(self, config: WorldModelConfig) -> None:
        super().__init__()
        self.config = config
        self.task: TaskSpec = get_task(config.task)
        self.autoencoder = FrameAutoencoder(config.autoencoder)
        self.denoiser = LatentDenoiser(config.denoiser)
        self.reward = RewardModel(config.autoencoder.latent_shape, self.task.num_aux,
                                  config.reward.channels, config.reward.hidden)
        self.rssm = RSSM(config.rssm)
        self.probe = StateProbe(config.probe)
        c, h, w = config.autoencoder.latent_shape
        self.register_buffer("start_latents", torch.zeros(0, config.denoiser.context_len, c, h, w))
        self.register_buffer("start_actions", torch.zeros(0, config.denoiser.context_len, self.task.action_dim))
        self.card: dict[str, Any] = {}

    @property
    def context_len(self) -> int:
        return self.config.denoiser.context_len

    @property
    def latent_shape(self) -> tuple[int, int, int]:
        return self.config.autoencoder.latent_shape

    def set_start_windows(self, latents: torch.Tensor, actions: torch.Tensor) -> None:
        """Replace the real start windows shipped with the model."""
        self.start_latents = latents.float().contiguous()
        self.start_actions = actions.float().contiguous()

    @torch.no_grad()
    def next_latent(self, context: torch.Tensor, actions: torch.Tensor, generator: torch.Generator | None,
                    num_steps: int | None = None) -> torch.Tensor:
        """Sample z_{t+1} given latents z_{t-L+1..t} (B, L, C, h, w) and actions a_{t-L+1..t} (B, L, A)."""
        return euler_sample(self.denoiser, context, actions, self.config.edm, generator, num_steps=num_steps)

    def save(self, path: str | os.PathLike, card: dict[str, Any] | None = None) -> None:
        """Write this model as a bundle directory."""
        tensors = {f"{name}.{k}": v for name in ("autoencoder", "denoiser", "reward", "rssm", "probe")
                   for k, v in getattr(self, name).state_dict().items()}
        tensors["start.latents"] = self.start_latents.half()
        tensors["start.actions"] = self.start_actions
        write_bundle(path, self.config, tensors, card if card is not None else self.card)

    @classmethod
    def load(cls, name_or_path: str | os.PathLike, map_location: str | torch.device = "cpu") -> "WorldModel":
        """Load a shipped bundle by name or a user's bundle by path (``BundleError`` on any problem)."""
        config, tensors, card = read_bundle(name_or_path)
        model = cls(config)
        where = str(name_or_path)
        for name in ("autoencoder", "denoiser", "reward", "rssm", "probe"):
            load_state(getattr(model, name), tensors, name, where)
        start = split_prefix(tensors, "start")
        if "latents" in start and "actions" in start:
            model.set_start_windows(start["latents"], start["actions"])
        model.card = card
        return model.to(map_location).eval()
