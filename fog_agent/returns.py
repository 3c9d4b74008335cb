"""Pure numeric pieces of DMO-SAPO: the normalised entropy bonus and TD(λ) targets."""

from __future__ import annotations

import torch


def normalized_entropy(neg_log_prob: torch.Tensor, target_entropy: float) -> torch.Tensor:
    """SAPO's entropy bonus ``(-log π + |H̄|) / (2|H̄|)``: 0.5 at the target entropy H̄, ~[0, 1] around it."""
    scale = abs(target_entropy)
    return (neg_log_prob + scale) / (2 * scale)


def clip_row_norms(grad: torch.Tensor, max_norm: float) -> torch.Tensor:
    """Scale each row of ``grad`` (N, D) down to at most ``max_norm`` in L2 norm; shorter rows are unchanged."""
    norms = grad.norm(dim=-1, keepdim=True)
    return grad * (max_norm / norms.clamp_min(max_norm))


def reward_to_go(rewards: torch.Tensor, dones: torch.Tensor, gamma: float) -> torch.Tensor:
    """Discounted sum of each step's own and later rewards up to its segment's end, tensors (H, N).

    ``dones[t]`` marks an episode end after step t; the window's last step ends every segment (nothing is
    bootstrapped): ``G_t = r_t + γ·G_{t+1}·(1 − done_t)``, ``G_{H−1} = r_{H−1}``.
    """
    return td_lambda_reference(rewards, torch.zeros_like(rewards), dones, gamma, lam=1.0)


def td_lambda_targets(rewards: torch.Tensor, next_values: torch.Tensor, dones: torch.Tensor,
                      gamma: float, lam: float) -> torch.Tensor:
    """TD(λ) targets over an H-step buffer (SHAC's recursion), all tensors (H, N).

    ``rewards[t]`` is the reward of step t (entropy bonus included), ``next_values[t]`` the value of the state
    reached by step t (0 where the episode truly terminated), ``dones[t]`` marks an episode end after step t.
    The last step is always treated as an end (the window is cut there and bootstrapped).
    """
    horizon = rewards.shape[0]
    d = dones.to(rewards.dtype).clone()
    d[-1] = 1.0
    targets = torch.zeros_like(rewards)
    lam_acc = torch.ones_like(rewards[0])
    big_a = torch.zeros_like(rewards[0])
    big_b = torch.zeros_like(rewards[0])
    for t in reversed(range(horizon)):
        lam_acc = lam_acc * lam * (1.0 - d[t]) + d[t]
        big_a = (1.0 - d[t]) * (lam * gamma * big_a + gamma * next_values[t] + (1.0 - lam_acc) / (1.0 - lam) * rewards[t])
        big_b = gamma * (next_values[t] * d[t] + big_b * (1.0 - d[t])) + rewards[t]
        targets[t] = (1.0 - lam) * big_a + lam_acc * big_b
    return targets


def td_lambda_reference(rewards: torch.Tensor, next_values: torch.Tensor, dones: torch.Tensor,
                        gamma: float, lam: float) -> torch.Tensor:
    """The same targets from the textbook recursion ``G_t = r_t + γ[(1-λ)V_{t+1} + λ G_{t+1}]``.

    Within a segment, ``G`` bootstraps fully (``G = r + γ V'``) at its last step. Used by the tests as an
    independent check of :func:`td_lambda_targets`; at ``lam = 1`` with zero values it is
    :func:`reward_to_go` (which :func:`td_lambda_targets` cannot give: it divides by ``1 − λ``).
    """
    horizon = rewards.shape[0]
    d = dones.to(rewards.dtype).clone()
    d[-1] = 1.0
    out = torch.zeros_like(rewards)
    g_next = torch.zeros_like(rewards[0])
    for t in reversed(range(horizon)):
        mixed = (1.0 - lam) * next_values[t] + lam * g_next
        out[t] = rewards[t] + gamma * torch.where(d[t] > 0, next_values[t], mixed)
        g_next = out[t]
    return out
