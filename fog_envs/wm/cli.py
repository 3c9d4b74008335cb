"""``fog-train-wm``: train a task's world model (global diffusion + reward model + RSSM + probe) and bundle it.

    fog-train-wm --task pusht --data datasets/pusht_play.h5 --out runs/wm_pusht --preset cpu
    torchrun --nproc_per_node=2 -m fog_envs.wm.cli --task pusht ...     # DistributedDataParallel

Rerunning the same command after a kill resumes from the last checkpoint.
"""

from __future__ import annotations

import sys

import tyro

from fog_envs.wm.train import WMTrainConfig, train_world_model


def main(argv: list[str] | None = None) -> int:
    cfg = tyro.cli(WMTrainConfig, args=sys.argv[1:] if argv is None else argv, description=__doc__)
    bundle = train_world_model(cfg, progress_bar=cfg.progress)
    print(f"bundle written to {bundle}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
