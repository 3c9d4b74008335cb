"""The zeroth-order reference for the agent oracle: SB3 PPO on the true Push-T system with the true state.

    python benchmarks/bench_ppo_oracle.py --checkpoints 102400 307200 1024000 [--seed 0]

``benchmarks/bench_agent_oracle.py`` trains DMO-SAPO on ``RealPushT-v0`` with the true state and a learned
state model's Jacobians. This script trains PPO (likelihood-ratio gradients: no Jacobians at all) on the same
system, the same observation (the task's probe targets ``[s_t, s_{t−1}]``, normalised by SB3's
``VecNormalize``), the same reward and the same 64-step training episodes, and evaluates its deterministic
policy at each checkpoint (imagined-step budgets: the oracle's 100, 300 and 1000 iterations by default) on the
same 50 seeded 300-step episodes (seed 100000), next to doing nothing. Where PPO pushes the T further than
DMO-SAPO with the same steps, the first-order gradient at contact is what holds DMO-SAPO back. Prints a table and
writes ``benchmarks/results/ppo_oracle.json``. Hyperparameters: SB3's PPO defaults with 16 envs, 256 steps each
per rollout and batch 256. Not resumable (a diagnostic).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import torch
from stable_baselines3 import PPO
from stable_baselines3.common.vec_env import DummyVecEnv, VecNormalize

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import fog_envs  # noqa: E402,F401
from fog_envs.evaluation import ZeroActionController, episode_gains, evaluate  # noqa: E402
from fog_envs.wm.tasks import get_task  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results" / "ppo_oracle.json"
EVAL_SEED = 100_000
STATE_OBS = {"obs_type": "state"}


def probe_state(info: dict[str, Any]) -> np.ndarray:
    """The true state of an info dict in the task's probe units (float32)."""
    return get_task("pusht").probe_targets(np.asarray(info["state"])[None])[0].astype(np.float32)


class StateHistory(gym.Wrapper):
    """``RealPushT-v0`` (state observations) seen as the oracle agent sees it: ``[s_t, s_{t−1}]`` in probe units."""

    def __init__(self, env: gym.Env) -> None:
        super().__init__(env)
        self.observation_space = gym.spaces.Box(-np.inf, np.inf, (2 * get_task("pusht").probe_dim,), np.float32)
        self.prev: np.ndarray | None = None

    def reset(self, **kwargs):
        _, info = self.env.reset(**kwargs)
        self.prev = probe_state(info)
        return np.concatenate([self.prev, self.prev]), info

    def step(self, action):
        _, reward, terminated, truncated, info = self.env.step(action)
        s = probe_state(info)
        obs, self.prev = np.concatenate([s, self.prev]), s
        return obs, reward, terminated, truncated, info


class PPOStateController:
    """Acts on ``RealPushT-v0`` from ``[s_t, s_{t−1}]`` with a PPO policy and its frozen normalisation."""

    def __init__(self, model: PPO, norm: VecNormalize) -> None:
        self.model, self.norm = model, norm
        self.prev: np.ndarray | None = None

    def reset(self, obs: np.ndarray, info: dict[str, Any]) -> None:
        self.prev = probe_state(info)

    def act(self, obs: np.ndarray, info: dict[str, Any]) -> np.ndarray:
        s = probe_state(info)
        x = self.norm.normalize_obs(np.concatenate([s, self.prev])[None])
        self.prev = s
        return self.model.predict(x, deterministic=True)[0][0].astype(np.float32)


def make_env(episode_steps: int, seed: int):
    def thunk() -> gym.Env:
        env = gym.make("RealPushT-v0", render_mode=None, max_episode_steps=episode_steps, **STATE_OBS)
        env.reset(seed=seed)
        return StateHistory(env)
    return thunk


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--checkpoints", type=int, nargs="+", default=[102_400, 307_200, 1_024_000],
                        help="env-step budgets at which the policy is evaluated (increasing)")
    parser.add_argument("--num-envs", type=int, default=16)
    parser.add_argument("--episode-steps", type=int, default=64, help="training episode length (the oracle's)")
    parser.add_argument("--episodes", type=int, default=50)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default=str(RESULTS))
    args = parser.parse_args()
    if sorted(args.checkpoints) != args.checkpoints or args.checkpoints[0] <= 0:
        raise SystemExit(f"--checkpoints must be positive and increasing, got {args.checkpoints}")
    torch.set_num_threads(1)
    venv = VecNormalize(DummyVecEnv([make_env(args.episode_steps, args.seed * 1000 + i) for i in range(args.num_envs)]),
                        norm_obs=True, norm_reward=True, gamma=0.99)
    model = PPO("MlpPolicy", venv, n_steps=256, batch_size=256, seed=args.seed, device="cpu", verbose=0)
    baseline = evaluate(lambda: ZeroActionController(2), "RealPushT-v0", episodes=args.episodes, seed=EVAL_SEED,
                        env_kwargs=STATE_OBS)
    rows, t0, done = [], time.perf_counter(), 0
    for budget in args.checkpoints:
        model.learn(budget - done, reset_num_timesteps=False)
        done = model.num_timesteps
        train_s = time.perf_counter() - t0
        venv.training = False
        result = evaluate(lambda: PPOStateController(model, venv), "RealPushT-v0", episodes=args.episodes,
                          seed=EVAL_SEED, env_kwargs=STATE_OBS)
        venv.training = True
        gains = episode_gains(np.array(result.max_coverages), np.array(baseline.max_coverages), 0.05)
        improved, worse = gains["improved"], gains["worse"]
        rows.append({"steps": int(done), "train_s": train_s, "coverage": result.mean_max_coverage,
                     "success_rate": result.success_rate, "improved": improved, "worse": worse,
                     "max_coverages": result.max_coverages})
        t0 += time.perf_counter() - t0 - train_s  # evaluation time is not training time
        print(f"{done} steps: coverage {result.mean_max_coverage:.3f}, success {result.success_rate:.0%}, "
              f"{improved} improved / {worse} worse (> 0.05), {train_s / 60:.1f} min of training", flush=True)
    print(f"do nothing: coverage {baseline.mean_max_coverage:.3f}")
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + ".tmp")
    tmp.write_text(json.dumps({"args": vars(args), "do_nothing": {"coverage": baseline.mean_max_coverage,
                                                                  "max_coverages": baseline.max_coverages},
                               "checkpoints": rows}, indent=2))
    os.replace(tmp, out)
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
