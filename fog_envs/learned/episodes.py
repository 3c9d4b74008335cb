"""Episode bookkeeping shared by the learned envs: per-env generators, step counters, time limits."""

from __future__ import annotations

import numpy as np
import torch


class EpisodeClock:
    """Per-env ``torch.Generator`` (seeded at reset) and elapsed steps with a time limit."""

    def __init__(self, num_envs: int, max_episode_steps: int | None) -> None:
        self.num_envs = num_envs
        self.max_episode_steps = max_episode_steps
        self.generators = [torch.Generator() for _ in range(num_envs)]
        self.elapsed = np.zeros(num_envs, dtype=np.int64)
        self._seed_rng = np.random.default_rng()

    def seed(self, seed: int | None) -> None:
        """Seed every env's generator: env i gets ``seed + i``. ``None`` continues from the last seed
        (or from fresh entropy if never seeded), so ``reset(seed=s); reset()`` is reproducible."""
        if seed is not None:
            self._seed_rng = np.random.default_rng(seed)
            seeds = [seed + i for i in range(self.num_envs)]
        else:
            seeds = self._seed_rng.integers(0, 2**62, size=self.num_envs).tolist()
        for g, s in zip(self.generators, seeds):
            g.manual_seed(int(s))

    def seed_rng_state(self) -> dict:
        return self._seed_rng.bit_generator.state

    def set_seed_rng_state(self, state: dict) -> None:
        self._seed_rng.bit_generator.state = state

    def restart(self, ids: np.ndarray) -> None:
        """Zero the step counters of envs ``ids``."""
        self.elapsed[ids] = 0

    def tick(self) -> np.ndarray:
        """Count one step in every env; return the truncation mask."""
        self.elapsed += 1
        if self.max_episode_steps is None:
            return np.zeros(self.num_envs, dtype=bool)
        return self.elapsed >= self.max_episode_steps
