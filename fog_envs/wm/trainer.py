"""One generic, resumable training loop used by every world-model stage.

A stage is a module, a batch sampler and a loss. The loop checkpoints atomically every
``checkpoint_every`` steps (model, optimiser, scheduler, step and the sampler's RNG state), resumes from
the last checkpoint after a kill, and gives the same final weights as an uninterrupted run. Under
``torchrun`` the module is wrapped in DistributedDataParallel and only rank 0 writes.
"""

from __future__ import annotations

import math
import os
import time
from dataclasses import dataclass
from pathlib import Path
from contextlib import contextmanager
from typing import Any, Callable, Iterator

import numpy as np
import torch
from torch import nn
from torch.nn.parallel import DistributedDataParallel

from fog_envs.runtime import autocast
from fog_envs.wm.distributed import DistContext


@dataclass(frozen=True)
class StageConfig:
    """Optimisation settings of one training stage (AdamW, linear warm-up then cosine decay)."""

    steps: int
    batch: int
    lr: float = 3e-4
    weight_decay: float = 1e-2
    warmup: int = 100
    grad_clip: float = 1.0
    final_lr_fraction: float = 0.1


class LossModule(nn.Module):
    """Wraps ``model`` and a loss function so DDP sees the loss computation as ``forward``."""

    def __init__(self, model: nn.Module, loss_fn: Callable[[nn.Module, dict], tuple[torch.Tensor, dict]]) -> None:
        super().__init__()
        self.model = model
        self.loss_fn = loss_fn

    def forward(self, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, dict[str, float]]:
        return self.loss_fn(self.model, batch)


class StopRequested(RuntimeError):
    """Raised when ``stop_after`` steps were done in this call (tests use it to simulate a kill)."""


def lr_factor(step: int, cfg: StageConfig) -> float:
    """Linear warm-up to 1, then cosine decay to ``final_lr_fraction`` at ``cfg.steps``."""
    if step < cfg.warmup:
        return (step + 1) / cfg.warmup
    progress = min(1.0, (step - cfg.warmup) / max(1, cfg.steps - cfg.warmup))
    return cfg.final_lr_fraction + (1 - cfg.final_lr_fraction) * 0.5 * (1 + math.cos(math.pi * progress))


@contextmanager
def stage_progress(name: str, desc: str, total: int, enabled: bool = True) -> Iterator[Callable[[int, int, dict], None]]:
    """A tqdm bar for stage ``name`` (``desc``, ``total`` steps) as :func:`train_stage`'s ``progress`` callback,
    showing the stage's loss; closed on exit (a no-op callback when not ``enabled``)."""
    bar = None
    if enabled:
        from tqdm import tqdm

        bar = tqdm(total=total, desc=desc, dynamic_ncols=True)

    def on_step(step: int, total: int, metrics: dict[str, float]) -> None:
        if bar is not None:
            bar.n = step
            bar.set_postfix(loss=f"{metrics.get(f'{name}/loss', float('nan')):.4f}", refresh=False)
            bar.update(0)

    try:
        yield on_step
    finally:
        if bar is not None:
            bar.close()


def _atomic_save(obj: Any, path: Path) -> None:
    tmp = path.with_name(path.name + ".tmp")
    torch.save(obj, tmp)
    os.replace(tmp, path)


def train_stage(
    name: str,
    model: nn.Module,
    loss_fn: Callable[[nn.Module, dict], tuple[torch.Tensor, dict]],
    sample_batch: Callable[[np.random.Generator, int], dict[str, torch.Tensor]],
    cfg: StageConfig,
    ckpt_dir: Path,
    seed: int,
    ctx: DistContext,
    bf16: bool,
    log: Callable[[str, dict[str, float], int], None] | None = None,
    progress: Callable[[int, int, dict[str, float]], None] | None = None,
    checkpoint_every: int = 500,
    stop_after: int | None = None,
) -> dict[str, float]:
    """Train ``model`` for ``cfg.steps`` steps (resuming from ``ckpt_dir/<name>.pt``); return the last metrics."""
    ckpt_dir.mkdir(parents=True, exist_ok=True)
    path = ckpt_dir / f"{name}.pt"
    rng_path = ckpt_dir / f"{name}.rng{ctx.rank}.pt"
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    rng = np.random.default_rng([seed, ctx.rank, sum(map(ord, name))])
    step = 0
    if path.exists():
        state = torch.load(path, map_location=ctx.device, weights_only=False)
        model.load_state_dict(state["model"])
        opt.load_state_dict(state["optimizer"])
        step = int(state["step"])
        if rng_path.exists():
            rng.bit_generator.state = torch.load(rng_path, weights_only=False)
    if step >= cfg.steps:
        return dict(state.get("metrics", {})) if path.exists() else {}
    module: nn.Module = LossModule(model, loss_fn)
    if ctx.enabled:
        module = DistributedDataParallel(module, device_ids=[ctx.device.index] if ctx.device.type == "cuda" else None)
    model.train()
    metrics: dict[str, float] = {}
    done_here = 0
    t0 = time.perf_counter()

    def save() -> None:
        torch.save(rng.bit_generator.state, rng_path.with_name(rng_path.name + ".tmp"))
        os.replace(rng_path.with_name(rng_path.name + ".tmp"), rng_path)
        if ctx.is_main:
            _atomic_save({"model": model.state_dict(), "optimizer": opt.state_dict(), "step": step,
                          "metrics": metrics}, path)
        ctx.barrier()

    while step < cfg.steps:
        for group in opt.param_groups:
            group["lr"] = cfg.lr * lr_factor(step, cfg)
        batch = sample_batch(rng, cfg.batch)
        torch.manual_seed(int(rng.integers(2**62)))  # the loss's own noise, reproducible across resumes
        batch = {k: v.to(ctx.device, non_blocking=True) for k, v in batch.items()}
        with autocast(ctx.device, bf16):
            loss, metrics = module(batch)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        grad_norm = nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
        opt.step()
        step += 1
        done_here += 1
        metrics = {**metrics, f"{name}/loss": loss.item(), f"{name}/grad_norm": float(grad_norm),
                   f"{name}/lr": opt.param_groups[0]["lr"],
                   f"{name}/steps_per_s": done_here / (time.perf_counter() - t0)}
        if log is not None and ctx.is_main and (step % 25 == 0 or step == cfg.steps):
            log(name, metrics, step)
        if progress is not None and ctx.is_main:
            progress(step, cfg.steps, metrics)
        if step % checkpoint_every == 0 or step == cfg.steps:
            save()
        if stop_after is not None and done_here >= stop_after and step < cfg.steps:
            save()
            raise StopRequested(f"stage {name}: stopped after {done_here} steps (step {step}/{cfg.steps})")
    model.eval()
    return metrics
