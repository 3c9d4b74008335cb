"""A third-party first-order method on a fog learned env: short-horizon BPTT, in under a page.

It uses only the public interface: ``gym.make_vec(...).diff`` (values from the global model, gradients from
the local surrogate), ``cut_graph()`` at every window start and ``extras["obs_before_reset"]``.
Run: ``python examples/bptt_toy.py`` (WMToy-v0, a few seconds on a CPU).
"""

from __future__ import annotations

import gymnasium as gym
import torch

import fog_envs  # noqa: F401  (registers the env ids)


def train(env_id: str = "WMToy-v0", num_envs: int = 32, horizon: int = 16, iterations: int = 60,
          lr: float = 3e-3, seed: int = 0, **env_kwargs) -> list[float]:
    """Train a deterministic tanh-MLP policy by back-propagating H-step returns; return mean rewards."""
    torch.manual_seed(seed)
    envs = gym.make_vec(env_id, num_envs=num_envs, vectorization_mode="vector_entry_point", **env_kwargs)
    diff = envs.unwrapped.diff
    policy = torch.nn.Sequential(torch.nn.Linear(diff.state_dim, 64), torch.nn.Tanh(),
                                 torch.nn.Linear(64, diff.action_dim), torch.nn.Tanh())
    opt = torch.optim.Adam(policy.parameters(), lr=lr)
    obs, history = diff.reset(seed=seed), []
    for _ in range(iterations):
        obs = diff.cut_graph()
        total = 0.0
        for _ in range(horizon):
            obs, reward, terminated, truncated, extras = diff.step(policy(obs.float()))
            total = total + reward.float().mean()
        loss = -total / horizon
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(policy.parameters(), 1.0)
        opt.step()
        history.append(-loss.item())
    return history


if __name__ == "__main__":
    rewards = train()
    print(f"mean reward per step: first window {rewards[0]:.3f}, last window {rewards[-1]:.3f}")
