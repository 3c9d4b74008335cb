"""``fog-fit-local-reader``: fit the Push-T local reader on real frames and a bundle's probe readings, and bundle it.

    fog-fit-local-reader --out runs/pusht_local_reader [--bundle pusht] \
        [--data datasets/pusht_play.h5 datasets/pusht_agent_s1.h5] [--goal-frames 40000] \
        [--heldout datasets/pusht_agent_heldout.h5 datasets/pusht_heldout.h5]

The training frames: the ``--data`` datasets' frames with their true states, plus ``--goal-frames`` frames
rendered by ``RealPushT-v0`` with the block within 12 px / 6° of its goal (:mod:`fog_envs.real.pusht_goal_frames`,
seed ``--goal-seed``), all read by ``--bundle``'s probe; the read-outs are solved in closed form
(:func:`fog_envs.wm.local_reader.fit_local_reader`). The card holds the reader's and the probe's errors on each
``--heldout`` dataset. The same command gives the same reader.
"""

from __future__ import annotations

import sys
import time
from dataclasses import asdict, dataclass, field

import numpy as np
import torch
import tyro

from fog_envs.data.format import load_arrays
from fog_envs.real.pusht_goal_frames import goal_frames, probe_to_true
from fog_envs.real.pusht_starts import GoalStartConfig
from fog_envs.wm.local_reader import LocalReaderConfig, fit_local_reader, pose_errors
from fog_envs.wm.model import WorldModel

GOAL_SPAN = GoalStartConfig(12.0, 6.0)


@dataclass(frozen=True)
class FitLocalReaderConfig:
    """Fit a local reader and write its bundle."""

    out: str = "runs/pusht_local_reader"
    bundle: str = "pusht"
    """the world-model bundle whose probe the reader corrects (name or path)"""
    data: tuple[str, ...] = ("datasets/pusht_play.h5", "datasets/pusht_agent_s1.h5")
    goal_frames: int = 40_000
    goal_seed: int = 0
    heldout: tuple[str, ...] = ("datasets/pusht_agent_heldout.h5", "datasets/pusht_heldout.h5")
    threads: int = 2
    reader: LocalReaderConfig = field(default_factory=LocalReaderConfig)

    def __post_init__(self) -> None:
        if self.goal_frames < 0:
            raise ValueError(f"FitLocalReaderConfig: goal_frames must be >= 0, got {self.goal_frames}")
        if not self.data and self.goal_frames == 0:
            raise ValueError("FitLocalReaderConfig: nothing to fit on (no --data and --goal-frames 0)")


def probe_readings(model: WorldModel, frames: np.ndarray, batch: int = 1024) -> torch.Tensor:
    """(n, 6) float64 probe readings of uint8 frames (n, S, S, 3)."""
    with torch.no_grad():
        return torch.cat([model.probe(torch.from_numpy(frames[i:i + batch])).double()
                          for i in range(0, len(frames), batch)]) if len(frames) else torch.zeros(0, 6)


def _dataset(path: str) -> tuple[np.ndarray, np.ndarray]:
    arrays = load_arrays(path, ("frames", "state"))
    return arrays["frames"], arrays["state"]


def fit_and_save(cfg: FitLocalReaderConfig) -> dict:
    """Read, fit, measure and write the bundle; returns its card."""
    torch.set_num_threads(cfg.threads)
    model = WorldModel.load(cfg.bundle)
    if model.config.task != "pusht":
        raise ValueError(f"fog-fit-local-reader: {cfg.bundle!r} is a {model.config.task!r} bundle; the local "
                         "reader is Push-T's")
    t0 = time.perf_counter()
    parts = [_dataset(p) for p in cfg.data]
    if cfg.goal_frames:
        parts.append(goal_frames(cfg.goal_frames, cfg.goal_seed, GOAL_SPAN))
    frames = np.concatenate([f for f, _ in parts])
    poses = np.concatenate([s for _, s in parts])
    del parts
    readings = probe_readings(model, frames)
    t1 = time.perf_counter()
    reader = fit_local_reader(frames, poses, readings, cfg.reader)
    t2 = time.perf_counter()
    heldout = {}
    for path in cfg.heldout:
        f, s = _dataset(path)
        r = probe_readings(model, f)
        heldout[path] = {"reader": pose_errors(reader.read(f, r).numpy(), s),
                         "probe": pose_errors(probe_to_true(r.numpy()), s)}
    card = {"task": "pusht", "bundle": cfg.bundle, "data": list(cfg.data), "goal_frames": cfg.goal_frames,
            "goal_seed": cfg.goal_seed, "goal_span": asdict(GOAL_SPAN), "frames": len(frames),
            "config": asdict(cfg.reader), "heldout": heldout, "read_seconds": round(t1 - t0, 1),
            "fit_seconds": round(t2 - t1, 1)}
    reader.save(cfg.out, card)
    return card


def main(argv: list[str] | None = None) -> int:
    cfg = tyro.cli(FitLocalReaderConfig, args=sys.argv[1:] if argv is None else argv, description=__doc__)
    card = fit_and_save(cfg)
    print(f"local reader written to {cfg.out} ({card['frames']} frames)")
    for path, e in card["heldout"].items():
        r, p = e["reader"], e["probe"]
        print(f"  {path}: agent {r['agent_px_median']:.2f} px (probe {p['agent_px_median']:.2f}), block "
              f"{r['block_px_median']:.2f} px (probe {p['block_px_median']:.2f}), {r['block_deg_median']:.2f}° "
              f"(probe {p['block_deg_median']:.2f})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
