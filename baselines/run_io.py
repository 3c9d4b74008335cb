"""Run-directory files of a PPO run: atomic writes, JSON-lines logs and the learning-curve figure."""

from __future__ import annotations

from pathlib import Path

# The generic run-directory helpers are the FoG agent's, so both runs are written the same way.
from fog_agent.run_io import (append_jsonl, atomic_write_json, plot_zero_shot, read_jsonl, save_figure,
                              truncate_jsonl)

__all__ = ["append_jsonl", "atomic_write_json", "read_jsonl", "truncate_jsonl", "plot_learning_curve"]


def plot_learning_curve(metrics_path: Path, evals_path: Path, out_png: Path, title: str) -> None:
    """Episode return against imagined steps and wall time, plus zero-shot results if there are any."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = [r for r in read_jsonl(metrics_path) if r.get("train/episode_return") is not None]
    evals = read_jsonl(evals_path)
    fig, axes = plt.subplots(1, 3 if evals else 2, figsize=(13 if evals else 9, 3.6))
    if rows:
        ret = [r["train/episode_return"] for r in rows]
        axes[0].plot([r["imagined_steps"] for r in rows], ret)
        axes[1].plot([r["time/wall_s"] / 60 for r in rows], ret)
    axes[0].set(xlabel="imagined steps", ylabel="episode return (learned env)")
    axes[1].set(xlabel="wall time (min)", ylabel="episode return (learned env)")
    if evals:
        plot_zero_shot(axes[2], evals)
    save_figure(fig, out_png, title)
