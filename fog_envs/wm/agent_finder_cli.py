"""``fog-fit-agent-finder``: fit the Push-T agent finder on frames rendered by ``RealPushT-v0`` and bundle it.

    fog-fit-agent-finder --out runs/pusht_agent_finder [--frames 4000] [--heldout 2000] [--seed 2000000]

The frames: half ``RealPushT-v0``'s reset frames (seeds ``seed``, ``seed + 1``, …: agent and block anywhere),
half near-goal poses (the agent anywhere off the block, often beside it: :mod:`fog_envs.real.pusht_goal_frames`).
The template is their mean 3 × 3 crop around the true agent (:func:`fog_envs.wm.agent_finder.fit_agent_finder`).
The card holds the finder's and ``--bundle``'s probe's agent errors on ``--heldout`` frames of each kind drawn from
the seeds after the training ones. The same command gives the same finder.
"""

from __future__ import annotations

import sys
import time
from dataclasses import asdict, dataclass, field

import numpy as np
import torch
import tyro

from fog_envs.real.pusht_goal_frames import goal_frames
from fog_envs.wm.agent_finder import AgentFinderConfig, fit_agent_finder
from fog_envs.wm.model import WorldModel


@dataclass(frozen=True)
class FitAgentFinderConfig:
    """Fit an agent finder and write its bundle."""

    out: str = "runs/pusht_agent_finder"
    frames: int = 4_000
    """training frames to render, half reset frames and half near-goal poses (~4 ms each)"""
    heldout: int = 2_000
    """held-out frames of each kind for the card's error figures"""
    seed: int = 2_000_000
    bundle: str = "pusht"
    """the world-model bundle whose probe the card compares against (name or path)"""
    threads: int = 2
    finder: AgentFinderConfig = field(default_factory=AgentFinderConfig)

    def __post_init__(self) -> None:
        if self.frames < 2 or self.heldout < 1:
            raise ValueError(f"FitAgentFinderConfig: needs frames >= 2 and heldout >= 1, got {self.frames}, "
                             f"{self.heldout}")


def reset_frames(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """``(frames (n, 64, 64, 3) uint8, true states (n, 5))`` of ``RealPushT-v0`` reset with seeds ``seed + i``."""
    import gymnasium as gym

    import fog_envs  # noqa: F401  (registers the envs)

    env = gym.make("RealPushT-v0")
    frames, states = [], []
    try:
        for i in range(n):
            obs, _ = env.reset(seed=seed + i)
            frames.append(np.asarray(obs))
            states.append(env.unwrapped.true_state())
    finally:
        env.close()
    return np.stack(frames), np.stack(states)


def agent_errors(read_px: np.ndarray, true_px: np.ndarray) -> dict[str, float]:
    """Median, 90th percentile and maximum agent error (px of 512) and the share of readings off by > 20 px."""
    e = np.linalg.norm(np.asarray(read_px, np.float64) - np.asarray(true_px, np.float64), axis=1)
    return {"agent_px_median": float(np.median(e)), "agent_px_p90": float(np.percentile(e, 90)),
            "agent_px_max": float(e.max()), "share_over_20px": float(np.mean(e > 20.0))}


def _sets(n: int, seed: int) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    return {"resets": reset_frames(n - n // 2, seed), "near_goal": goal_frames(n // 2, seed)}


def fit_and_save(cfg: FitAgentFinderConfig) -> dict:
    """Render, fit, measure and write the bundle; returns its card."""
    torch.set_num_threads(cfg.threads)
    t0 = time.perf_counter()
    train = _sets(cfg.frames, cfg.seed)
    test = {"resets": reset_frames(cfg.heldout, cfg.seed + cfg.frames),
            "near_goal": goal_frames(cfg.heldout, cfg.seed + 1)}
    t1 = time.perf_counter()
    frames = np.concatenate([f for f, _ in train.values()])
    agents = np.concatenate([s[:, :2] for _, s in train.values()])
    finder = fit_agent_finder(frames, agents, cfg.finder)
    t2 = time.perf_counter()
    probe = WorldModel.load(cfg.bundle).probe
    heldout = {}
    for name, (f, s) in test.items():
        with torch.no_grad():
            probe_px = probe(torch.from_numpy(f)).double()[:, :2].numpy() * 512.0
        heldout[name] = {"finder": agent_errors(finder.locate(f).numpy(), s[:, :2]),
                         "probe": agent_errors(probe_px, s[:, :2])}
    card = {"task": "pusht", "reference_env": "RealPushT-v0", "frames": len(frames), "heldout": cfg.heldout,
            "seed": cfg.seed, "bundle": cfg.bundle, "config": asdict(cfg.finder), "heldout_errors": heldout,
            "render_seconds": round(t1 - t0, 1), "fit_seconds": round(t2 - t1, 3)}
    finder.save(cfg.out, card)
    return card


def main(argv: list[str] | None = None) -> int:
    cfg = tyro.cli(FitAgentFinderConfig, args=sys.argv[1:] if argv is None else argv, description=__doc__)
    card = fit_and_save(cfg)
    print(f"agent finder written to {cfg.out} ({card['frames']} frames)")
    for name, e in card["heldout_errors"].items():
        f, p = e["finder"], e["probe"]
        print(f"  {name}: agent median {f['agent_px_median']:.2f} px, max {f['agent_px_max']:.1f}, "
              f"{100 * f['share_over_20px']:.1f} % > 20 px (probe {p['agent_px_median']:.2f} px, max "
              f"{p['agent_px_max']:.1f}, {100 * p['share_over_20px']:.1f} % > 20 px)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
