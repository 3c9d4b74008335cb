"""Run-directory files of a PPO run: atomic writes, JSON-lines logs and the learning-curve figure."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any


def atomic_write_json(path: Path, obj: Any) -> None:
    """Write ``obj`` as JSON to ``path`` through a temporary file and ``os.replace``."""
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(obj, indent=2, default=str))
    os.replace(tmp, path)


def append_jsonl(path: Path, row: dict[str, Any]) -> None:
    with path.open("a") as f:
        f.write(json.dumps(row, default=str) + "\n")


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def truncate_jsonl(path: Path, max_steps: int, key: str = "imagined_steps") -> list[dict[str, Any]]:
    """Drop rows logged after ``max_steps`` (written after the last checkpoint of a killed run); return the rest."""
    rows = [r for r in read_jsonl(path) if r.get(key, 0) <= max_steps]
    if path.exists():
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_text("".join(json.dumps(r, default=str) + "\n" for r in rows))
        os.replace(tmp, path)
    return rows


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
        steps = [e["imagined_steps"] for e in evals]
        axes[2].plot(steps, [e["success_rate"] for e in evals], "o-", label="success rate")
        if evals[0].get("mean_max_coverage") is not None:
            axes[2].plot(steps, [e["mean_max_coverage"] for e in evals], "s-", label="mean max coverage")
        axes[2].legend()
        axes[2].set(xlabel="imagined steps", ylabel="zero-shot on reference system", ylim=(0, 1.05))
    fig.suptitle(title)
    fig.tight_layout()
    tmp = out_png.with_name(out_png.stem + ".tmp.png")
    fig.savefig(tmp, dpi=100)
    plt.close(fig)
    os.replace(tmp, out_png)
