"""``fog-fit-odometry``: fit the Push-T pusher's actuator model on play of ``RealPushT-v0`` and bundle it.

    fog-fit-odometry --out runs/pusht_odometry [--episodes 20] [--steps 100] [--heldout 10] [--seed 0]

Plays ``--episodes`` seeded episodes of the scripted play policy (with 30 % random actions, as the play datasets
mix them; the true state only, no frames), fits :func:`fog_envs.wm.pusher_odometry.fit_actuator` on the pusher's
positions and the actions, then dead-reckons ``--heldout`` more episodes (seed ``seed + 1``) from their true
start and writes the largest position error to the card. The same command gives the same model.
"""

from __future__ import annotations

import sys
import time
from dataclasses import asdict, dataclass, field

import gymnasium as gym
import numpy as np
import torch
import tyro

from fog_envs.play import make_play_policy
from fog_envs.real.pusht import TABLE_SIZE
from fog_envs.wm.pusher_odometry import PusherOdometry, PusherOdometryConfig, dead_reckon, fit_actuator


@dataclass(frozen=True)
class FitOdometryConfig:
    """Fit the pusher's actuator model and write its bundle."""

    out: str = "runs/pusht_odometry"
    episodes: int = 20
    steps: int = 100
    """steps per episode"""
    heldout: int = 10
    """held-out episodes (seed + 1) dead-reckoned for the card"""
    seed: int = 0
    odometry: PusherOdometryConfig = field(default_factory=PusherOdometryConfig)

    def __post_init__(self) -> None:
        if self.episodes < 1 or self.steps < 2 or self.heldout < 1:
            raise ValueError(f"FitOdometryConfig: needs episodes >= 1, steps >= 2, heldout >= 1, got "
                             f"{self.episodes}, {self.steps}, {self.heldout}")


def play_episodes(episodes: int, steps: int, seed: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """``(pusher positions (steps+1, 2) in px / 512, actions (steps, 2))`` of seeded play episodes."""
    env = gym.make("RealPushT-v0", obs_type="state", render_mode=None).unwrapped
    policy = make_play_policy("RealPushT-v0", random_action_prob=0.3)
    rng = np.random.default_rng(seed)
    out = []
    for ep in range(episodes):
        _, info = env.reset(seed=seed * 100_003 + ep)
        policy.reset(info, rng)
        positions, actions = [info["state"][:2]], []
        for _ in range(steps):
            action = np.asarray(policy(info), dtype=np.float32)
            _, _, _, _, info = env.step(action)
            positions.append(info["state"][:2])
            actions.append(action)
        out.append((np.array(positions) / TABLE_SIZE, np.array(actions, dtype=np.float64)))
    env.close()
    return out


def dead_reckoning_error(odometry: PusherOdometry, episodes: list[tuple[np.ndarray, np.ndarray]]) -> float:
    """The largest distance (px of 512) between the true pusher and its dead reckoning from the true start."""
    worst = 0.0
    for positions, actions in episodes:
        p = torch.from_numpy(positions)
        est = dead_reckon(odometry, p[:1], torch.from_numpy(actions)[:, None])[:, 0]
        worst = max(worst, float((est - p).norm(dim=-1).max()) * TABLE_SIZE)
    return worst


def fit_and_save(cfg: FitOdometryConfig) -> dict:
    """Play, fit, check and write the bundle; returns its card."""
    t0 = time.perf_counter()
    train = play_episodes(cfg.episodes, cfg.steps, cfg.seed)
    coef, residual = fit_actuator(train, cfg.odometry)
    odometry = PusherOdometry(cfg.odometry).set_coefficients(coef)
    heldout = play_episodes(cfg.heldout, cfg.steps, cfg.seed + 1)
    card = {"task": "pusht", "env_id": "RealPushT-v0", "episodes": cfg.episodes, "steps": cfg.steps,
            "seed": cfg.seed, "coefficients": [float(c) for c in coef],
            "residual_px": {k: (v * TABLE_SIZE if k != "rows" else v) for k, v in residual.items()},
            "heldout_episodes": cfg.heldout, "heldout_max_error_px": dead_reckoning_error(odometry, heldout),
            "config": asdict(cfg.odometry), "seconds": round(time.perf_counter() - t0, 1)}
    odometry.save(cfg.out, card)
    return card


def main(argv: list[str] | None = None) -> int:
    cfg = tyro.cli(FitOdometryConfig, args=sys.argv[1:] if argv is None else argv, description=__doc__)
    card = fit_and_save(cfg)
    a, b, g = card["coefficients"]
    print(f"pusher odometry written to {cfg.out}: α {a:.5f}, β {b:.5f}, γ {g:.5f}; residual rms "
          f"{card['residual_px']['rms']:.2e} px over {card['residual_px']['rows']} displacements; held-out dead "
          f"reckoning within {card['heldout_max_error_px']:.2e} px over {cfg.heldout} episodes of {cfg.steps} steps")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
