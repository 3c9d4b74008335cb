"""``WorldModel``: the trained parts of one task's world model, built from a config or a bundle."""

from __future__ import annotations

import os
from dataclasses import fields, replace
from typing import Any, Callable, Protocol

import torch
from torch import nn

from fog_envs.wm.autoencoder import FrameAutoencoder
from fog_envs.wm.bundle import WorldModelConfig, load_state, read_bundle, split_prefix, write_bundle
from fog_envs.wm.denoiser import LatentDenoiser
from fog_envs.wm.edm import EDMConfig, euler_sample
from fog_envs.learned.diff import straight_through
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

    def set_sampler(self, **edm_overrides: Any) -> None:
        """Change sampler settings of the global model (``EDMConfig`` fields, e.g. ``start_sigma``,
        ``num_steps``) without touching its weights; validated like the config itself."""
        known = {f.name for f in fields(EDMConfig)}
        unknown = sorted(set(edm_overrides) - known)
        if unknown:
            raise ValueError(f"set_sampler: unknown EDMConfig field(s) {unknown}")
        self.config = replace(self.config, edm=replace(self.config.edm, **edm_overrides))

    def set_start_windows(self, latents: torch.Tensor, actions: torch.Tensor) -> None:
        """Replace the real start windows shipped with the model."""
        self.start_latents = latents.float().contiguous()
        self.start_actions = actions.float().contiguous()

    @torch.no_grad()
    def next_latent(self, context: torch.Tensor, actions: torch.Tensor, generator: torch.Generator | None,
                    num_steps: int | None = None, bf16: bool = False, state: torch.Tensor | None = None) -> torch.Tensor:
        """Sample z_{t+1} given latents z_{t-L+1..t} (B, L, C, h, w) and actions a_{t-L+1..t} (B, L, A) (and, for
        a state-guided denoiser, ``state`` (B, 2, P): the probe-target states at t and t+1)."""
        return euler_sample(self.denoiser, context, actions, self.config.edm, generator, num_steps=num_steps,
                            bf16=bf16, state=state)

    @torch.no_grad()
    def next_latent_fixed(self, context: torch.Tensor, actions: torch.Tensor, noise: torch.Tensor,
                          context_noise: torch.Tensor, num_steps: int | None = None,
                          bf16: bool = False, state: torch.Tensor | None = None) -> torch.Tensor:
        """:meth:`next_latent` with its random draws given (per-env generators, finite differences)."""
        return euler_sample(self.denoiser, context, actions, self.config.edm, None, num_steps=num_steps,
                            noise=noise, context_noise=context_noise, bf16=bf16, state=state)

    # --- the local model on flat states x = [deter, stoch] -------------------------------------------
    @property
    def state_guided(self) -> bool:
        """Whether the denoiser is conditioned on physical states (``DenoiserConfig.state_dim`` > 0)."""
        return self.config.denoiser.state_dim > 0

    @property
    def local_state_dim(self) -> int:
        return self.config.rssm.deter + self.config.rssm.stoch

    def _split(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        d = self.config.rssm.deter
        return x[..., :d], x[..., d:]

    def local_step(self, x: torch.Tensor, action: torch.Tensor) -> torch.Tensor:
        """The RSSM's one-step prediction ``[GRU(deter, stoch, a), mean p(stoch | deter')]`` (differentiable)."""
        deter, stoch = self._split(x)
        deter_next = self.rssm.next_deter(deter, stoch, action)
        return torch.cat([deter_next, self.rssm.prior(deter_next)[0].to(deter_next.dtype)], -1)

    def local_reward(self, x: torch.Tensor) -> torch.Tensor:
        """The RSSM reward head at local states ``x`` (differentiable)."""
        return self.rssm.reward(x)

    def filter_step(self, x: torch.Tensor, action: torch.Tensor, latent: torch.Tensor) -> torch.Tensor:
        """The RSSM posterior (mean) after ``action`` and the next latent frame ``latent``."""
        deter, stoch = self._split(x)
        deter_next = self.rssm.next_deter(deter, stoch, action)
        mean, _ = self.rssm.posterior(deter_next, self.rssm.embed(latent))
        return torch.cat([deter_next, mean.to(deter_next.dtype)], -1)

    def filter_window(self, latents: torch.Tensor, actions: torch.Tensor) -> torch.Tensor:
        """Filter real windows (B, T, C, h, w) with ``actions[:, t]`` taken after frame t; state at the last frame."""
        first = torch.zeros(latents.shape[:2], dtype=torch.bool, device=latents.device)
        posts, _ = self.rssm.observe(latents, actions, first, sample=False)
        return torch.cat([posts.deter[:, -1], posts.mean[:, -1]], -1)

    def decode_local(self, x: torch.Tensor) -> torch.Tensor:
        """The RSSM decoder's latent frame for local states ``x``."""
        return self.rssm.decode(x)

    @torch.no_grad()
    def rssm_open_loop(self, context: torch.Tensor, context_actions: torch.Tensor,
                       future_actions: torch.Tensor) -> torch.Tensor:
        """The "no diffusion" forward model: filter the context, then dream ``future_actions`` (B, H, A) with
        the RSSM prior mean; returns the decoded latent frames (B, H, C, h, w)."""
        x = self.filter_window(context, context_actions)
        out = []
        for k in range(future_actions.shape[1]):
            x = self.local_step(x, future_actions[:, k])
            out.append(self.decode_local(x))
        return torch.stack(out, 1)

    def surrogate_action_gradient(self, context: torch.Tensor, context_actions: torch.Tensor,
                                  future_actions: torch.Tensor, noise: torch.Tensor,
                                  context_noise: torch.Tensor) -> torch.Tensor:
        """FoG's gradient of the H-step global-reward return w.r.t. ``future_actions`` (B, H, A): values from
        the diffusion model (with the given noise), Jacobians from the RSSM at those values."""
        return self.surrogate_gradient_along(
            context, context_actions, future_actions,
            lambda k, ctx, ctx_act: self.next_latent_fixed(ctx, ctx_act, noise[k], context_noise[k]))

    def surrogate_gradient_along(self, context: torch.Tensor, context_actions: torch.Tensor,
                                 future_actions: torch.Tensor,
                                 next_latent: Callable[[int, torch.Tensor, torch.Tensor], torch.Tensor],
                                 local: "LocalModel | None" = None) -> torch.Tensor:
        """The RSSM-surrogate gradient of the H-step return w.r.t. ``future_actions`` (B, H, A) along the latent
        frames ``next_latent(k, context, context_actions)`` of some global model (the diffusion sampler, or the
        encoded frames of the reference system): the local state is filtered on those frames and the local
        step's Jacobians are evaluated there, as :class:`fog_envs.learned.diff.DifferentiableEnv` does.
        ``local``: another local model (default: this bundle's RSSM, :class:`RSSMLocal`)."""
        local = local if local is not None else RSSMLocal(self)
        with torch.no_grad():
            x = local.start_window(context, context_actions)
        acts = future_actions.detach().clone().requires_grad_(True)
        ctx, ctx_act = context, context_actions.clone()
        total = torch.zeros(acts.shape[0], device=acts.device)
        for k in range(acts.shape[1]):
            ctx_act = torch.cat([ctx_act[:, :-1], acts[:, k:k + 1].detach()], 1) if k == 0 else \
                torch.cat([ctx_act[:, 1:], acts[:, k:k + 1].detach()], 1)
            with torch.no_grad():
                z = next_latent(k, ctx, ctx_act)
                x_star = local.filter_latent(x, acts[:, k], z)
                r_star = self.reward(z)["reward"]
            x = straight_through(local.step(x, acts[:, k]), x_star)
            total = total + straight_through(local.reward(x), r_star)
            ctx = torch.cat([ctx[:, 1:], z[:, None]], 1)
        (grad,) = torch.autograd.grad(total.sum(), acts)
        return grad

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


class LocalModel(Protocol):
    """What FoG needs from a local model: a start from real context, a filter onto the global model's next
    latent frame, and a differentiable step and reward (the RSSM's: :class:`RSSMLocal`; a state-space
    model's: :class:`fog_envs.learned.state_local.StateLocalModel`)."""

    def start_window(self, latents: torch.Tensor, actions: torch.Tensor) -> torch.Tensor: ...

    def filter_latent(self, x: torch.Tensor, action: torch.Tensor, latent: torch.Tensor) -> torch.Tensor: ...

    def step(self, x: torch.Tensor, action: torch.Tensor) -> torch.Tensor: ...

    def reward(self, x: torch.Tensor) -> torch.Tensor: ...


class RSSMLocal:
    """A :class:`WorldModel`'s RSSM as a :class:`LocalModel` (its filter, prior step and reward head)."""

    def __init__(self, model: WorldModel) -> None:
        self.model = model

    def start_window(self, latents: torch.Tensor, actions: torch.Tensor) -> torch.Tensor:
        return self.model.filter_window(latents, actions)

    def filter_latent(self, x: torch.Tensor, action: torch.Tensor, latent: torch.Tensor) -> torch.Tensor:
        return self.model.filter_step(x, action, latent)

    def step(self, x: torch.Tensor, action: torch.Tensor) -> torch.Tensor:
        return self.model.local_step(x, action)

    def reward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model.local_reward(x)
