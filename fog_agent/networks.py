"""Actor and critics of DMO-SAPO: SiLU + LayerNorm MLPs, a squashed-Gaussian actor, clipped double critics."""

from __future__ import annotations

import math

import torch
from torch import nn

LOG_STD_MIN, LOG_STD_MAX = -5.0, 2.0


def mlp(in_dim: int, hidden: tuple[int, ...], out_dim: int) -> nn.Sequential:
    """Linear -> LayerNorm -> SiLU blocks, then a linear head (orthogonal init, gain 1 as in SAPO)."""
    layers: list[nn.Module] = []
    prev = in_dim
    for h in hidden:
        layers += [nn.Linear(prev, h), nn.LayerNorm(h), nn.SiLU()]
        prev = h
    layers.append(nn.Linear(prev, out_dim))
    for m in layers:
        if isinstance(m, nn.Linear):
            nn.init.orthogonal_(m.weight, gain=1.0)
            nn.init.zeros_(m.bias)
    return nn.Sequential(*layers)


def normal_log_prob(z: torch.Tensor, log_std: torch.Tensor) -> torch.Tensor:
    """``log N(u; μ, σ)`` summed over the last axis, from the standardised draw ``z = (u − μ)/σ`` and
    ``log σ``."""
    return (-0.5 * z.pow(2) - log_std - 0.5 * math.log(2 * math.pi)).sum(-1)


class SquashedGaussianActor(nn.Module):
    """``a = tanh(u)``, ``u ~ N(μ(x), σ(x))`` with state-dependent ``log σ`` clamped to [-5, 2]."""

    def __init__(self, obs_dim: int, action_dim: int, hidden: tuple[int, ...]) -> None:
        super().__init__()
        self.net = mlp(obs_dim, hidden, 2 * action_dim)
        self.action_dim = action_dim

    def distribution(self, obs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        mu, log_std = self.net(obs).chunk(2, dim=-1)
        return mu, log_std.clamp(LOG_STD_MIN, LOG_STD_MAX)

    def sample(self, obs: torch.Tensor, generator: torch.Generator | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """A reparameterised action and its ``-log π(a|x)`` (with the tanh correction), per row."""
        action, neg_log_prob, _ = self.rsample(obs, generator)
        return action, neg_log_prob

    def rsample(self, obs: torch.Tensor,
                generator: torch.Generator | None = None) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """:meth:`sample` plus the pre-squash Gaussian draw ``u`` (``a = tanh(u)``)."""
        mu, log_std = self.distribution(obs)
        eps = torch.randn(mu.shape, generator=generator, dtype=mu.dtype, device=mu.device)
        u = mu + log_std.exp() * eps
        action = torch.tanh(u)
        log_prob = normal_log_prob(eps, log_std) - (2 * (math.log(2.0) - u - nn.functional.softplus(-2 * u))).sum(-1)
        return action, -log_prob, u

    def gaussian_log_prob(self, obs: torch.Tensor, u: torch.Tensor) -> torch.Tensor:
        """``log N(u; μ(x), σ(x))`` per row: the score-function (likelihood-ratio) term's log-likelihood. The
        tanh correction is left out: for a fixed ``u`` it does not depend on the actor's weights."""
        mu, log_std = self.distribution(obs)
        return normal_log_prob((u - mu) / log_std.exp(), log_std)

    def deterministic(self, obs: torch.Tensor) -> torch.Tensor:
        """``tanh(μ(x))``: the action used for evaluation and deployment."""
        return torch.tanh(self.distribution(obs)[0])


class DoubleCritic(nn.Module):
    """Two independent value MLPs; ``forward`` returns (2, N). Targets use the min, the actor the mean."""

    def __init__(self, obs_dim: int, hidden: tuple[int, ...], num_critics: int = 2) -> None:
        super().__init__()
        self.critics = nn.ModuleList(mlp(obs_dim, hidden, 1) for _ in range(num_critics))

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        return torch.stack([c(obs).squeeze(-1) for c in self.critics])
