"""``fog-fit-goal-reader``: fit the Push-T goal reader on frames rendered by ``RealPushT-v0`` and bundle it.

    fog-fit-goal-reader --out runs/pusht_goal_reader [--frames 40000] [--heldout 5000] [--seed 0]

Renders ``--frames`` seeded poses with the block within the reader's range of the goal (the agent anywhere off
the block: :mod:`fog_envs.real.pusht_goal_frames`), fits the read-out in closed form
(:func:`fog_envs.wm.goal_reader.fit_goal_reader`), measures it on ``--heldout`` poses drawn with seed
``seed + 1`` and writes a ``fog-goal-reader`` bundle whose card holds those figures. The same command gives
the same reader.
"""

from __future__ import annotations

import sys
import time
from dataclasses import asdict, dataclass, field

import tyro

from fog_envs.real.pusht_goal_frames import goal_frames
from fog_envs.real.pusht_starts import GoalStartConfig
from fog_envs.wm.goal_reader import GoalReaderConfig, fit_goal_reader, reader_errors


@dataclass(frozen=True)
class FitGoalReaderConfig:
    """Fit a goal reader and write its bundle."""

    out: str = "runs/pusht_goal_reader"
    frames: int = 40_000
    """training frames to render (~4 ms each)"""
    heldout: int = 5_000
    """held-out frames (seed + 1) for the card's error figures"""
    seed: int = 0
    reader: GoalReaderConfig = field(default_factory=GoalReaderConfig)

    def __post_init__(self) -> None:
        if self.frames < 2 or self.heldout < 1:
            raise ValueError(f"FitGoalReaderConfig: needs frames >= 2 and heldout >= 1, got {self.frames}, "
                             f"{self.heldout}")


def fit_and_save(cfg: FitGoalReaderConfig) -> dict:
    """Render, fit, measure and write the bundle; returns its card."""
    t0 = time.perf_counter()
    span = GoalStartConfig(cfg.reader.range_px, cfg.reader.range_deg)
    frames, poses = goal_frames(cfg.frames, cfg.seed, span)
    test_frames, test_poses = goal_frames(cfg.heldout, cfg.seed + 1, span)
    t1 = time.perf_counter()
    reader = fit_goal_reader(frames, poses, cfg.reader)
    t2 = time.perf_counter()
    card = {"task": "pusht", "reference_env": "RealPushT-v0", "frames": cfg.frames, "heldout": cfg.heldout,
            "seed": cfg.seed, "heldout_seed": cfg.seed + 1, "config": asdict(cfg.reader),
            "train_errors": reader_errors(reader.offsets(frames).numpy(), poses),
            "heldout_errors": reader_errors(reader.offsets(test_frames).numpy(), test_poses),
            "render_seconds": round(t1 - t0, 1), "fit_seconds": round(t2 - t1, 1)}
    reader.save(cfg.out, card)
    return card


def main(argv: list[str] | None = None) -> int:
    cfg = tyro.cli(FitGoalReaderConfig, args=sys.argv[1:] if argv is None else argv, description=__doc__)
    card = fit_and_save(cfg)
    e = card["heldout_errors"]
    print(f"goal reader written to {cfg.out}: held-out block error {e['block_px_median']:.2f} px (p90 "
          f"{e['block_px_p90']:.2f}), {e['block_deg_median']:.2f}° (p90 {e['block_deg_p90']:.2f})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
