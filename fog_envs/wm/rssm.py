"""The local world model: a small RSSM (Dreamer-style) over the global model's latent frames.

Dreamer words: ``deter`` (GRU state), ``stoch`` (Gaussian latent; smooth, so its Jacobians are useful),
``prior`` p(stoch | deter), ``post`` q(stoch | deter, latent frame), ``img_step`` (prior transition),
``obs_step`` (posterior update), ``observe`` (filter a sequence).

Conventions: ``actions[t]`` is the action taken *after* ``latents[t]``, so the transition into
``latents[t]`` uses ``actions[t-1]`` (zeros at the first step and wherever ``is_first``); ``rewards[t]`` is
the reward for ``actions[t]`` and is predicted from the features of the state at ``t+1``. The flat local
state used by the learned envs is ``x = [deter, stoch]`` (``features``). In :meth:`RSSM.loss`, ``mask`` (B, T)
is False at padded positions: their latents, actions and rewards are replaced by zeros before anything is
computed (so padded values, NaN included, never matter) and they carry no loss; pad at the end of a sequence,
or mark the first real step after padding with ``is_first``.

The Jacobian hook on this model (local step, VJP/JVP, dense Jacobians) is in :mod:`fog_envs.learned.hook`.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn
from torch.nn import functional as F

from fog_envs.wm.loss_weights import motion_weights


@dataclass(frozen=True)
class RSSMConfig:
    """Sizes and loss weights of the RSSM."""

    latent_shape: tuple[int, int, int] = (16, 8, 8)
    action_dim: int = 2
    deter: int = 256
    stoch: int = 32
    hidden: int = 256
    embed: int = 256
    min_std: float = 0.1
    free_bits: float = 1.0
    kl_dyn: float = 0.5
    kl_rep: float = 0.1
    recon_weight: float = 1.0
    reward_weight: float = 1.0
    motion_weight: float = 0.0
    """reconstruction weight on what moves between consecutive latents (``fog_envs.wm.loss_weights.motion_weights``):
    keeps the small, action-driven Push-T agent from being averaged away. 0: plain MSE"""
    state_dim: int = 0
    """size of the true physical state a *state head* regresses from the features during training (the task's
    probe targets: agent and block pose for Push-T). 0: no state head. The head only shapes the
    representation (training time); at run time the RSSM still sees nothing but latent frames"""
    state_weight: float = 100.0
    """weight of the state-head MSE (targets are O(1): positions / 512, cos/sin), on posterior *and* one-step
    prior features, so the prior's dynamics (FoG's Jacobians) must carry the state too"""

    @property
    def feature_dim(self) -> int:
        return self.deter + self.stoch


@dataclass
class RSSMState:
    """One RSSM state: ``deter`` (B, D), ``stoch`` (B, S) and the Gaussian it was drawn from."""

    deter: torch.Tensor
    stoch: torch.Tensor
    mean: torch.Tensor
    std: torch.Tensor


def _full(t: torch.Tensor) -> torch.Tensor:
    """Half-precision (autocast) tensors in float32; float32/float64 left as they are."""
    return t.float() if t.dtype in (torch.bfloat16, torch.float16) else t


def _mlp(i: int, h: int, o: int) -> nn.Sequential:
    return nn.Sequential(nn.Linear(i, h), nn.LayerNorm(h), nn.SiLU(), nn.Linear(h, o))


def gaussian_kl(mean_q: torch.Tensor, std_q: torch.Tensor, mean_p: torch.Tensor, std_p: torch.Tensor) -> torch.Tensor:
    """KL(q || p) of diagonal Gaussians, summed over the last dimension."""
    var_q, var_p = std_q.pow(2), std_p.pow(2)
    kl = torch.log(std_p / std_q) + (var_q + (mean_q - mean_p).pow(2)) / (2 * var_p) - 0.5
    return kl.sum(-1)


class RSSM(nn.Module):
    """GRU + Gaussian-latent state-space model with a latent-frame decoder and a reward head."""

    def __init__(self, config: RSSMConfig = RSSMConfig()) -> None:
        super().__init__()
        self.config = config
        c, h, w = config.latent_shape
        hid = config.hidden
        self.encoder = nn.Sequential(
            nn.Conv2d(c, 64, 3, padding=1), nn.SiLU(), nn.Conv2d(64, 64, 4, stride=2, padding=1), nn.SiLU(),
            nn.Flatten(), nn.Linear(64 * (h // 2) * (w // 2), config.embed), nn.LayerNorm(config.embed))
        self.img_in = nn.Sequential(nn.Linear(config.stoch + config.action_dim, hid), nn.LayerNorm(hid), nn.SiLU())
        self.gru = nn.GRUCell(hid, config.deter)
        self.prior_net = _mlp(config.deter, hid, 2 * config.stoch)
        self.post_net = _mlp(config.deter + config.embed, hid, 2 * config.stoch)
        self._dec_shape = (64, h // 2, w // 2)
        self.decoder = nn.Sequential(
            _mlp(config.feature_dim, hid, 64 * (h // 2) * (w // 2)), nn.SiLU(),
            nn.Unflatten(-1, self._dec_shape), nn.ConvTranspose2d(64, 64, 4, stride=2, padding=1), nn.SiLU(),
            nn.Conv2d(64, c, 3, padding=1))
        self.reward_head = _mlp(config.feature_dim, hid, 1)
        self.state_head = _mlp(config.feature_dim, hid, config.state_dim) if config.state_dim > 0 else None

    @property
    def latent_dim_features(self) -> int:
        """Size of :meth:`features`: ``deter + stoch``."""
        return self.config.feature_dim

    # --- pieces --------------------------------------------------------------------------------------
    def initial(self, batch: int, device: torch.device | None = None, dtype: torch.dtype | None = None) -> RSSMState:
        """The all-zero start state (unit std), on the parameters' device and dtype unless given."""
        cfg = self.config
        dev = device if device is not None else self.gru.weight_hh.device
        dt = dtype if dtype is not None else self.gru.weight_hh.dtype
        z = torch.zeros(batch, cfg.stoch, device=dev, dtype=dt)
        return RSSMState(torch.zeros(batch, cfg.deter, device=dev, dtype=dt), z, z, torch.ones_like(z))

    def _gaussian(self, raw: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        mean, std = _full(raw).chunk(2, dim=-1)
        return mean, F.softplus(std) + self.config.min_std

    def next_deter(self, deter: torch.Tensor, stoch: torch.Tensor, action: torch.Tensor) -> torch.Tensor:
        """The GRU update ``deter' = GRU(deter, [stoch, action])``."""
        return self.gru(self.img_in(torch.cat([stoch, action.to(stoch.dtype)], -1)), deter)

    def prior(self, deter: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self._gaussian(self.prior_net(deter))

    def posterior(self, deter: torch.Tensor, embed: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self._gaussian(self.post_net(torch.cat([deter, embed.to(deter.dtype)], -1)))

    def embed(self, latent: torch.Tensor) -> torch.Tensor:
        """Embed latent frames (..., C, h, w) -> (..., embed)."""
        lead = latent.shape[:-3]
        return self.encoder(latent.reshape(-1, *latent.shape[-3:])).reshape(*lead, -1)

    @staticmethod
    def _draw(mean: torch.Tensor, std: torch.Tensor, sample: bool, generator: torch.Generator | None) -> torch.Tensor:
        if not sample:
            return mean
        return mean + std * torch.randn(mean.shape, generator=generator, device=mean.device, dtype=mean.dtype)

    def img_step(self, state: RSSMState, action: torch.Tensor, sample: bool = False,
                 generator: torch.Generator | None = None) -> RSSMState:
        """Prior transition: GRU, then p(stoch | deter') (its mean unless ``sample``)."""
        deter = self.next_deter(state.deter, state.stoch, action)
        mean, std = self.prior(deter)
        return RSSMState(deter, self._draw(mean, std, sample, generator), mean, std)

    def obs_step(self, state: RSSMState, action: torch.Tensor, latent: torch.Tensor, sample: bool = False,
                 generator: torch.Generator | None = None) -> tuple[RSSMState, RSSMState]:
        """Posterior update on the next latent frame; returns ``(post, prior)``."""
        prior = self.img_step(state, action, sample=False)
        mean, std = self.posterior(prior.deter, self.embed(latent))
        return RSSMState(prior.deter, self._draw(mean, std, sample, generator), mean, std), prior

    def observe(self, latents: torch.Tensor, actions: torch.Tensor, is_first: torch.Tensor, sample: bool = False,
                generator: torch.Generator | None = None) -> tuple[RSSMState, RSSMState]:
        """Filter a sequence (B, T, ...); returns stacked posts and priors with fields (B, T, ...)."""
        b, t = latents.shape[:2]
        state = self.initial(b, latents.device)
        embeds = self.embed(latents)
        posts, priors = [], []
        zero_action = torch.zeros_like(actions[:, 0])
        for i in range(t):
            first = is_first[:, i].bool()[:, None] if i > 0 else torch.ones(b, 1, dtype=torch.bool, device=latents.device)
            init = self.initial(b, latents.device)
            state = RSSMState(*(torch.where(first, x0, x) for x0, x in
                                ((init.deter, state.deter), (init.stoch, state.stoch), (init.mean, state.mean),
                                 (init.std, state.std))))
            action = torch.where(first, zero_action, actions[:, i - 1] if i > 0 else zero_action)
            prior = self.img_step(state, action)
            mean, std = self.posterior(prior.deter, embeds[:, i])
            state = RSSMState(prior.deter, self._draw(mean, std, sample, generator), mean, std)
            posts.append(state)
            priors.append(prior)
        stack = lambda xs, f: torch.stack([getattr(x, f) for x in xs], 1)  # noqa: E731
        fields = ("deter", "stoch", "mean", "std")
        return RSSMState(*(stack(posts, f) for f in fields)), RSSMState(*(stack(priors, f) for f in fields))

    def imagine(self, state: RSSMState, actions: torch.Tensor, sample: bool = False,
                generator: torch.Generator | None = None) -> RSSMState:
        """Roll the prior forward over ``actions`` (B, T, A); returns stacked states (B, T, ...)."""
        out = []
        for i in range(actions.shape[1]):
            state = self.img_step(state, actions[:, i], sample=sample, generator=generator)
            out.append(state)
        fields = ("deter", "stoch", "mean", "std")
        return RSSMState(*(torch.stack([getattr(s, f) for s in out], 1) for f in fields))

    @staticmethod
    def features(state: RSSMState) -> torch.Tensor:
        return torch.cat([state.deter, state.stoch], -1)

    def decode(self, features: torch.Tensor) -> torch.Tensor:
        """Features (..., D+S) -> latent frames (..., C, h, w)."""
        lead = features.shape[:-1]
        out = self.decoder(features.reshape(-1, features.shape[-1]))
        return out.reshape(*lead, *out.shape[-3:])

    def reward(self, features: torch.Tensor) -> torch.Tensor:
        return _full(self.reward_head(features).squeeze(-1))

    def state(self, features: torch.Tensor) -> torch.Tensor:
        """The state head's estimate of the physical state (..., state_dim); ``ValueError`` without a head."""
        if self.state_head is None:
            raise ValueError("this RSSM has no state head (RSSMConfig.state_dim is 0)")
        return _full(self.state_head(features))

    # --- training --------------------------------------------------------------------------------------
    def loss(self, latents: torch.Tensor, actions: torch.Tensor, rewards: torch.Tensor, is_first: torch.Tensor,
             mask: torch.Tensor, reward_mask: torch.Tensor | None = None,
             generator: torch.Generator | None = None,
             states: torch.Tensor | None = None) -> tuple[torch.Tensor, dict[str, float]]:
        """Latent reconstruction + reward regression + KL (free bits, dyn/rep balancing), masked.

        ``reward_mask`` (B, T) marks the rewards that are known (default: all of them); posterior samples
        are drawn from ``generator`` (the global RNG when None). ``states`` (B, T, state_dim), when given
        and the model has a state head, adds ``state_weight`` × the state MSE of the posterior features and
        of the one-step prior features (not at first steps, where the prior knows nothing). Metrics:
        ``rssm/loss``, ``rssm/recon``, ``rssm/reward_mse``, ``rssm/kl`` (KL(post || prior)),
        ``rssm/kl_free_bits`` (clipped as in the loss) and, with states, ``rssm/state_mse_post`` and
        ``rssm/state_mse_prior``."""
        cfg = self.config
        pad = ~mask.bool()  # padded positions: zeroed so that their values (NaN included) never matter
        latents = latents.masked_fill(pad[..., None, None, None], 0)
        actions = actions.masked_fill(pad[..., None], 0)
        rewards = rewards.masked_fill(pad, 0)
        posts, priors = self.observe(latents, actions, is_first, sample=True, generator=generator)
        feat = self.features(posts)
        m = mask.float()
        denom = m.sum().clamp_min(1.0)
        err = (self.decode(feat).float() - latents.float()).pow(2)
        if cfg.motion_weight > 0:
            prev = torch.cat([latents[:, :1], latents[:, :-1]], dim=1)  # the first step has nothing to compare
            err = err * motion_weights(latents.float(), prev.float(), cfg.motion_weight)
        recon = (err.mean((-3, -2, -1)) * m).sum() / denom
        # rewards[t] is predicted from the state at t+1 (both inside the sequence and unmasked)
        rm = m[:, :-1] * m[:, 1:] * (~is_first[:, 1:].bool()).float()
        if reward_mask is not None:
            rm = rm * reward_mask[:, :-1].float()
        rew_pred = self.reward(feat[:, 1:])
        reward = ((rew_pred - rewards[:, :-1].float()).pow(2) * rm).sum() / rm.sum().clamp_min(1.0)
        dyn = gaussian_kl(posts.mean.detach(), posts.std.detach(), priors.mean, priors.std)
        rep = gaussian_kl(posts.mean, posts.std, priors.mean.detach(), priors.std.detach())
        kl_dyn = (dyn.clamp_min(cfg.free_bits) * m).sum() / denom
        kl_rep = (rep.clamp_min(cfg.free_bits) * m).sum() / denom
        loss = cfg.recon_weight * recon + cfg.reward_weight * reward + cfg.kl_dyn * kl_dyn + cfg.kl_rep * kl_rep
        metrics = {"rssm/recon": recon.item(), "rssm/reward_mse": reward.item(),
                   "rssm/kl": ((dyn * m).sum() / denom).item(), "rssm/kl_free_bits": kl_dyn.item()}
        if states is not None and self.state_head is not None:
            if states.shape[:2] != mask.shape or states.shape[-1] != cfg.state_dim:
                raise ValueError(f"states must have shape {tuple(mask.shape) + (cfg.state_dim,)}, "
                                 f"got {tuple(states.shape)}")
            target = states.float().masked_fill(pad[..., None], 0)
            prior_feat = torch.cat([priors.deter, priors.mean], -1)
            post_err = (self.state(feat) - target).pow(2).mean(-1)
            prior_err = (self.state(prior_feat) - target).pow(2).mean(-1)
            pm = m * (~is_first.bool()).float()
            pm[:, 0] = 0.0
            state_post = (post_err * m).sum() / denom
            state_prior = (prior_err * pm).sum() / pm.sum().clamp_min(1.0)
            loss = loss + cfg.state_weight * (state_post + state_prior)
            metrics.update({"rssm/state_mse_post": state_post.item(), "rssm/state_mse_prior": state_prior.item()})
        return loss, {"rssm/loss": loss.item(), **metrics}
