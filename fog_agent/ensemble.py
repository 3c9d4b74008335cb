"""Several agents trained in the same learned env acting as one on a real system.

Cube agents trained with different seeds fail on different episodes (README item 35: over 50 episodes each of nine
deployed agents fails 5–17, and every episode is solved by at least one of them), so the failures are the policies'
own, not the task's. :class:`MeanPolicy` averages their actions; :class:`StallHandover` lets one act at a time and
hands over to the next when the reward of the filtered state stops rising. Measured on the cube (item 35): the mean
acts worse than its agents (40 % for three agents at 74–82 %), the handover within the seeds' spread of its first
agent (78–82 % against 78 %).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import torch


def check_same_io(agents: Sequence[Any], owner: str) -> None:
    """Refuse, by name, agents that do not read the same local state and act in the same action space."""
    if not agents:
        raise ValueError(f"{owner}: needs at least one agent")
    first = agents[0]
    for i, other in enumerate(agents[1:], 1):
        mismatch = []
        if other.obs_norm.mean.shape != first.obs_norm.mean.shape:
            mismatch.append("observation size")
        if other.actor.action_dim != first.actor.action_dim:
            mismatch.append("action size")
        if mismatch:
            raise ValueError(f"{owner}: agent {i} differs from agent 0 in {', '.join(mismatch)}; an ensemble's "
                             f"agents must act on the same local state")


class MeanPolicy:
    """Acts with the mean of ``agents``' ``tanh(μ)`` (each normalising the observation with its own statistics);
    stands in for one agent wherever only ``act`` and ``device`` are used (``fog_agent.controller.FogController``)."""

    def __init__(self, agents: Sequence[Any]) -> None:
        check_same_io(agents, "MeanPolicy")
        self.agents = tuple(agents)
        self.device = agents[0].device

    def act(self, obs: torch.Tensor, deterministic: bool = True) -> torch.Tensor:
        """(B, A): the agents' mean deterministic action for observations (B, D)."""
        if not deterministic:
            raise ValueError("MeanPolicy: acts with the agents' mean tanh(μ) only (deterministic=True)")
        return torch.stack([a.act(obs, deterministic=True) for a in self.agents]).mean(0)


@dataclass(frozen=True)
class HandoverConfig:
    """When :class:`StallHandover` passes control to the next agent."""

    patience: int = 40
    """steps in a row without progress before the next agent takes over"""
    min_gain: float = 0.01
    """progress: the reward of the filtered state rises this much above the best since the last progress (or the
    last handover)"""

    def __post_init__(self) -> None:
        if self.patience < 1:
            raise ValueError(f"HandoverConfig: patience must be >= 1 step, got {self.patience}")
        if not (self.min_gain >= 0 and math.isfinite(self.min_gain)):
            raise ValueError(f"HandoverConfig: min_gain must be a finite number >= 0, got {self.min_gain}")


class StallHandover:
    """One agent acts (``tanh(μ)``) at a time, the first at each episode's start; when ``reward`` of the state it
    acts on (e.g. the learned env's ``diff.local_reward``) has not risen by ``min_gain`` above its best for
    ``patience`` steps, the next agent (in turn, round the list) takes over and the count starts again.

    A deterministic policy that stalls (the cube pinned on a wall, the robot in a corner) stays stalled; another
    agent's policy, trained with another seed, seldom stalls in the same state."""

    def __init__(self, agents: Sequence[Any], reward: Callable[[torch.Tensor], torch.Tensor],
                 cfg: HandoverConfig = HandoverConfig()) -> None:
        check_same_io(agents, "StallHandover")
        self.agents, self.reward, self.cfg = tuple(agents), reward, cfg
        self.device = agents[0].device
        self.reset()

    def reset(self) -> None:
        """A new episode: the first agent acts, no progress measured yet."""
        self.current = 0
        self.handovers = 0
        self._best = -math.inf
        self._stalled = 0

    def act(self, obs: torch.Tensor, deterministic: bool = True) -> torch.Tensor:
        """(1, A): the acting agent's deterministic action for one observation (1, D), after counting its
        progress."""
        if not deterministic:
            raise ValueError("StallHandover: acts with each agent's tanh(μ) only (deterministic=True)")
        if obs.shape[0] != 1:
            raise ValueError(f"StallHandover: follows one episode, so one observation at a time; got {obs.shape[0]}")
        with torch.no_grad():
            r = float(self.reward(obs.to(self.device).float())[0])
        if r > self._best + self.cfg.min_gain:
            self._best, self._stalled = r, 0
        else:
            self._stalled += 1
            if self._stalled >= self.cfg.patience:
                self.current = (self.current + 1) % len(self.agents)
                self.handovers += 1
                self._best, self._stalled = r, 0
        return self.agents[self.current].act(obs, deterministic=True)
