"""``fog-ppo``: train the SB3 PPO baseline in a learned env (rerun the same command to resume).

Example: ``fog-ppo --env-id WMPushT-v0 --obs-type pixels --total-timesteps 1000000 --run-dir runs/ppo_pusht``
"""

from __future__ import annotations

from typing import Any

from baselines.ppo import PPOConfig, train_ppo


def main(argv: list[str] | None = None) -> None:
    """Parse ``argv`` (default: ``sys.argv``) into a :class:`PPOConfig` and train."""
    import tyro
    from tqdm import tqdm

    cfg = tyro.cli(PPOConfig, args=argv)
    bar = tqdm(total=cfg.total_timesteps, desc=f"PPO {cfg.env_id}", unit="step", dynamic_ncols=True,
               disable=not cfg.progress)

    def on_rollout(row: dict[str, Any]) -> None:
        bar.update(min(row["imagined_steps"], cfg.total_timesteps) - bar.n)
        ret = row.get("train/episode_return")
        bar.set_postfix(ret="-" if ret is None else f"{ret:.2f}",
                        steps_s=f"{row['time/imagined_steps_per_s']:.0f}", refresh=False)

    result = train_ppo(cfg, on_rollout=on_rollout)
    bar.close()
    keys = ("success_rate", "mean_max_coverage", "mean_return", "train/episode_return", "imagined_steps", "stopped")
    print({k: result[k] for k in keys if k in result})


if __name__ == "__main__":
    main()
