"""fog-collect: collect a play dataset on a reference system (resumable; see datasets/README.md).

Example::

    fog-collect --env-id RealPushT-v0 --out datasets/pusht_play.h5 --num-episodes 400 --workers 2 --seed 0
"""

from __future__ import annotations

import os
import sys

import tyro

from fog_envs.data.collect import CollectConfig, CollectMismatchError, CollectReport, collect
from fog_envs.data.format import DatasetError


def format_report(report: CollectReport) -> str:
    """A short human-readable summary of a collection."""
    if report.already_existed:
        head = f"{report.path} already complete (same config); nothing to do"
    elif report.complete:
        head = f"wrote {report.path}"
    else:
        head = f"stopped early: {report.episodes} episode shards in {report.path}.parts (rerun to resume)"
    moved = "n/a" if report.moved_fraction is None else f"{report.moved_fraction:.3f}"
    lines = [head]
    if report.complete:
        lines.append(f"  frames {report.frames}  episodes {report.episodes}  moved fraction {moved}  "
                     f"success fraction {report.success_fraction:.3f}")
    if report.new_episodes:
        lines.append(f"  this run: {report.new_episodes} episodes, {report.new_frames} frames in "
                     f"{report.wall_s:.1f} s ({report.frames_per_s:.0f} frames/s)")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``fog-collect``."""
    os.environ.setdefault("MUJOCO_GL", "egl")
    config = tyro.cli(CollectConfig, args=argv, description=__doc__.splitlines()[0])
    try:
        report = collect(config, progress=True)
    except (DatasetError, CollectMismatchError) as exc:
        print(f"fog-collect: error: {exc}", file=sys.stderr)
        return 2
    print(format_report(report))
    return 0


if __name__ == "__main__":
    sys.exit(main())
