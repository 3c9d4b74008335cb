"""The SB3 callback of a PPO run: FoG-compatible TensorBoard tags, metrics.jsonl, checkpoints, evaluations.

Per rollout (one PPO iteration: ``n_steps × num_envs`` imagined steps, then the update) it logs, at step
``num_timesteps`` (= imagined steps):

* ``train/episode_return``   mean undiscounted return of the episodes that ended in the rollout
* ``train/success_rate``     fraction of imagined steps with ``is_success`` (the FoG agent's definition)
* ``train/episode_success_rate``  fraction of ended episodes that reached success at some step
* ``train/reward``           mean reward per imagined step (un-normalised)
* ``train/mean_max_coverage`` mean over ended episodes of the max ``coverage`` (Push-T only)
* ``train/imagined_steps``, ``time/imagined_steps_per_s`` (collection + update), ``time/wall_s``
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any, Callable

import numpy as np
from stable_baselines3.common.callbacks import BaseCallback

from baselines.run_io import append_jsonl


class RolloutStats:
    """Per-env episode accumulators and per-rollout sums."""

    def __init__(self, num_envs: int) -> None:
        self.ep_return = np.zeros(num_envs)
        self.ep_success = np.zeros(num_envs, dtype=bool)
        self.ep_max_cov = np.full(num_envs, np.nan)
        self.clear()

    def clear(self) -> None:
        self.steps = 0
        self.reward_sum = 0.0
        self.success_steps = 0
        self.returns: list[float] = []
        self.successes: list[bool] = []
        self.max_covs: list[float] = []

    def update(self, rewards: np.ndarray, dones: np.ndarray, infos: list[dict[str, Any]]) -> None:
        n = len(infos)
        success = np.fromiter((bool(i.get("is_success", False)) for i in infos), dtype=bool, count=n)
        self.steps += n
        self.reward_sum += float(rewards.sum())
        self.success_steps += int(success.sum())
        self.ep_return += rewards
        self.ep_success |= success
        if "coverage" in infos[0]:
            cov = np.fromiter((float(i.get("coverage", np.nan)) for i in infos), dtype=float, count=n)
            self.ep_max_cov = np.fmax(self.ep_max_cov, cov)
        for i in np.flatnonzero(dones):
            self.returns.append(float(self.ep_return[i]))
            self.successes.append(bool(self.ep_success[i]))
            if not np.isnan(self.ep_max_cov[i]):
                self.max_covs.append(float(self.ep_max_cov[i]))
        self.ep_return[dones] = 0.0
        self.ep_success[dones] = False
        self.ep_max_cov[dones] = np.nan

    def summary(self) -> dict[str, float | None]:
        mean = lambda xs: float(np.mean(xs)) if xs else None  # noqa: E731
        return {
            "train/episode_return": mean(self.returns),
            "train/success_rate": self.success_steps / self.steps if self.steps else None,
            "train/episode_success_rate": mean(self.successes),
            "train/reward": self.reward_sum / self.steps if self.steps else None,
            "train/mean_max_coverage": mean(self.max_covs),
            "train/episodes": float(len(self.returns)),
        }


class RunCallback(BaseCallback):
    """Logs every rollout; calls ``checkpoint()`` / ``evaluate()`` when ``num_timesteps`` crosses a multiple
    of ``checkpoint_every`` / ``eval_every`` (0: never) and ``checkpoint()`` at the end.

    ``stop_after_steps``: after this many steps in this call, checkpoint and stop as if killed (for tests).
    """

    def __init__(self, writer: Any, metrics_path: Path, checkpoint: Callable[[], None],
                 evaluate: Callable[[], None] | None = None, checkpoint_every: int = 0, eval_every: int = 0,
                 wall_offset: float = 0.0, stop_after_steps: int | None = None,
                 on_rollout: Callable[[dict[str, Any]], None] | None = None) -> None:
        super().__init__()
        self.writer = writer
        self.metrics_path = metrics_path
        self.checkpoint = checkpoint
        self.evaluate = evaluate
        self.checkpoint_every = checkpoint_every
        self.eval_every = eval_every
        self.wall_offset = wall_offset
        self.stop_after_steps = stop_after_steps
        self.on_rollout = on_rollout
        self.stopped = False
        self._stats: RolloutStats | None = None
        self._t0 = time.perf_counter()

    def wall_s(self) -> float:
        return self.wall_offset + time.perf_counter() - self._t0

    def _on_training_start(self) -> None:
        self._stats = RolloutStats(self.training_env.num_envs)
        self._t0 = self._t_last = time.perf_counter()
        self._start_steps = self._last_steps = self.num_timesteps

    def _on_step(self) -> bool:
        if self.stopped:
            return False
        vec_norm = self.model.get_vec_normalize_env()
        rewards = vec_norm.get_original_reward() if vec_norm is not None else self.locals["rewards"]
        self._stats.update(np.asarray(rewards, dtype=np.float64), np.asarray(self.locals["dones"], dtype=bool),
                           self.locals["infos"])
        return True

    def _on_rollout_start(self) -> None:
        """The previous rollout's update is done: log it, then checkpoint / evaluate / stop if due."""
        if self._stats.steps == 0:
            return
        prev = self._last_steps
        self._log_rollout()
        if self._crossed(prev, self.checkpoint_every):
            self.checkpoint()
        if self.evaluate is not None and self._crossed(prev, self.eval_every):
            self.evaluate()
        if self.stop_after_steps is not None and self.num_timesteps - self._start_steps >= self.stop_after_steps:
            if not self._crossed(prev, self.checkpoint_every):
                self.checkpoint()
            self.stopped = True

    def _on_training_end(self) -> None:
        if self.stopped:
            return
        if self._stats.steps:
            self._log_rollout()
        self.checkpoint()

    def _crossed(self, prev: int, every: int) -> bool:
        return every > 0 and self.num_timesteps // every > prev // every

    def _log_rollout(self) -> None:
        now, steps = time.perf_counter(), self.num_timesteps
        row: dict[str, Any] = {"imagined_steps": steps, **self._stats.summary(),
                               "train/imagined_steps": float(steps),
                               "time/imagined_steps_per_s": (steps - self._last_steps) / max(now - self._t_last, 1e-9),
                               "time/wall_s": self.wall_s()}
        for k, v in row.items():
            if k != "imagined_steps" and v is not None:
                self.writer.add_scalar(k, v, steps)
        append_jsonl(self.metrics_path, row)
        if self.on_rollout is not None:
            self.on_rollout(row)
        self._stats.clear()
        self._t_last, self._last_steps = now, steps
