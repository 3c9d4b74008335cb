"""Run-directory plumbing shared by the agent's CLIs: checkpoint paths, atomic JSON/torch writes, metric logs,
curves."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import torch


def checkpoint_path(source: str | Path) -> Path:
    """A run directory's latest checkpoint, or ``source`` as given when it is not a directory (a ``latest.pt``)."""
    path = Path(source)
    return path / "checkpoints" / "latest.pt" if path.is_dir() else path


def atomic_write_json(path: Path, obj: Any) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(obj, indent=2, default=str))
    os.replace(tmp, path)


def atomic_torch_save(obj: Any, path: Path) -> None:
    tmp = path.with_name(path.name + ".tmp")
    torch.save(obj, tmp)
    os.replace(tmp, path)


def append_jsonl(path: Path, row: dict[str, Any]) -> None:
    with path.open("a") as f:
        f.write(json.dumps(row, default=str) + "\n")


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def truncate_jsonl(path: Path, max_value: float, key: str = "iteration") -> list[dict[str, Any]]:
    """Drop rows whose ``key`` exceeds ``max_value`` (rows written after the last checkpoint of a killed run);
    return the rows kept."""
    rows = [r for r in read_jsonl(path) if r.get(key, 0) <= max_value]
    if path.exists():
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_text("".join(json.dumps(r, default=str) + "\n" for r in rows))
        os.replace(tmp, path)
    return rows


def plot_learning_curve(metrics_path: Path, evals_path: Path, out_png: Path, title: str) -> None:
    """Reward against imagined steps and wall time, plus zero-shot success at evaluations."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows, evals = read_jsonl(metrics_path), read_jsonl(evals_path)
    fig, axes = plt.subplots(1, 3, figsize=(13, 3.6))
    if rows:
        steps = [r["train/imagined_steps"] for r in rows]
        axes[0].plot(steps, [r["train/reward"] for r in rows])
        axes[1].plot([r["time/wall_s"] / 60 for r in rows], [r["train/reward"] for r in rows])
    axes[0].set(xlabel="imagined steps", ylabel="mean reward per step (learned env)")
    axes[1].set(xlabel="wall time (min)", ylabel="mean reward per step (learned env)")
    plot_zero_shot(axes[2], evals)
    save_figure(fig, out_png, title)


def plot_zero_shot(ax, evals: list[dict[str, Any]]) -> None:
    """Zero-shot success (and Push-T mean max coverage) against imagined steps on ``ax``."""
    if evals:
        steps = [e["imagined_steps"] for e in evals]
        ax.plot(steps, [e["success_rate"] for e in evals], "o-", label="success rate")
        if evals[0].get("mean_max_coverage") is not None:
            ax.plot(steps, [e["mean_max_coverage"] for e in evals], "s-", label="mean max coverage")
        ax.legend()
    ax.set(xlabel="imagined steps", ylabel="zero-shot on reference system", ylim=(0, 1.05))


def save_figure(fig, out_png: Path, title: str) -> None:
    """Title, tighten and write a matplotlib figure atomically, then close it."""
    import matplotlib.pyplot as plt

    fig.suptitle(title)
    fig.tight_layout()
    tmp = out_png.with_name(out_png.stem + ".tmp.png")
    fig.savefig(tmp, dpi=100)
    plt.close(fig)
    os.replace(tmp, out_png)
