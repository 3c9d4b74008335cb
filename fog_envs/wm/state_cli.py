"""``fog-train-state``: train the state-space local model on a play dataset's true states and bundle it.

    fog-train-state --task pusht --data datasets/pusht_play.h5 --out runs/state_pusht \
        [--heldout datasets/pusht_heldout.h5] [--steps 8000]

Rerunning the same command after a kill resumes from the last checkpoint.
"""

from __future__ import annotations

import sys

import tyro

from fog_envs.wm.state_model_train import StateModelTrainConfig, train_state_model


def main(argv: list[str] | None = None) -> int:
    cfg = tyro.cli(StateModelTrainConfig, args=sys.argv[1:] if argv is None else argv, description=__doc__)
    bundle = train_state_model(cfg)
    print(f"state model written to {bundle}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
