"""Mix uniformly random actions into any play policy, so that a dataset's actions are not predictable from
its past actions.

Scripted play moves in segments: consecutive actions correlate strongly (0.81 on the Push-T play data), and
a world model trained on such data cannot tell the effect of ``a_t`` from that of ``a_{t-1}`` (its local
derivative d(next state)/d(a_t) can come out with the wrong sign while its predictions on the data are
fine). One-step random actions give the data interventions that separate the two.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from fog_envs.play.base import PlayPolicy
from fog_envs.data.rollout import policy_name


@dataclass(frozen=True)
class RandomMixConfig:
    """The wrapped policy (its provenance string) and the per-step chance of a random action."""

    policy: str
    random_action_prob: float


class RandomActionMix:
    """``policy``'s action, replaced w.p. ``prob`` at each step by one drawn uniformly from [-1, 1]^A.

    The wrapped policy is still called every step (its plan advances as if its action had been taken), and
    all draws come from the episode's generator, so collections stay reproducible from their seed.
    """

    def __init__(self, policy: PlayPolicy, prob: float) -> None:
        if not 0.0 <= prob <= 1.0:
            raise ValueError(f"random_action_prob must be in [0, 1], got {prob}")
        self.policy = policy
        self.config = RandomMixConfig(policy_name(policy), float(prob))
        self._rng = np.random.default_rng(0)

    def reset_options(self, rng: np.random.Generator) -> dict[str, Any] | None:
        inner = getattr(self.policy, "reset_options", None)
        return inner(rng) if inner is not None else None

    def reset(self, info: dict[str, Any], rng: np.random.Generator) -> None:
        self._rng = rng
        self.policy.reset(info, rng)

    def __call__(self, info: dict[str, Any]) -> np.ndarray:
        action = np.asarray(self.policy(info), dtype=np.float32)
        if self._rng.random() < self.config.random_action_prob:
            return self._rng.uniform(-1.0, 1.0, size=action.shape).astype(np.float32)
        return action
