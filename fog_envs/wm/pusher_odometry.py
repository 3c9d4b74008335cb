"""Pusher odometry (Push-T): where the pusher is, from its first reading and the actions it was given.

The Push-T pusher is a kinematic body driven by a PD controller towards ``p_t + a_t · 40 px`` (clipped to the
table): nothing pushes it back, so its path depends on its own commands alone. Over one control step the PD law
is linear in the command ``u_t = clip(p_t + a_t · s) − p_t`` and the velocity, and eliminating the velocity
leaves an exact recursion in the displacement ``d_t = p_{t+1} − p_t``:

    d_t = α · d_{t−1} + β · u_{t−1} + γ · u_t,    from rest: d_{−1} = u_{−1} = 0,

the same for x and y. :func:`fit_actuator` solves (α, β, γ) by least squares on play of the reference system
(``fog-fit-odometry``; residual ~1e-6 px, the model is exact). Then ``p_t = p_0 + D_t`` with ``D_t = Σ d``
known from the actions, and every reading ``r_t`` of the pusher is a reading of the start ``p_0 = r_t − D_t``:
:class:`PusherTrack` estimates ``p_0`` by pooling those over the episode so far, so the readers' error (2 px of 512
near the block) shrinks with every frame instead of entering each step afresh. The readers' errors are not
independent, and the pool is built for how they fail (``benchmarks/bench_pusher_odometry.py``): where they misread
the pusher for a stretch of frames (at the table's edge, crossing the goal's drawing: 20–80 px) the readings of the
true start still agree with each other to a few px while the misreadings scatter, so the pool keeps the densest
cluster (``inlier_radius``); and a parked pusher's frames repeat one reading, so a frame is pooled only where the
pusher has moved (``min_move``). Positions are in the task's probe units (Push-T: px / 512).

Files: a ``fog-pusher-odometry`` bundle directory (config.json, weights.safetensors with the three
coefficients, card.json; :mod:`fog_envs.wm.bundle`); the shipped one loads by name
(``PusherOdometry.load("pusht_odometry")``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np
import torch
from torch import nn

from fog_envs.wm.bundle import ConfigBundleMixin

FORMAT_NAME = "fog-pusher-odometry"
FORMAT_VERSION = 1


@dataclass(frozen=True)
class PusherOdometryConfig:
    """How actions become PD targets, and how the start is estimated from the readings."""

    command_scale: float = 40.0 / 512.0
    """target offset per unit action, in position units (RealPushT-v0: 40 px of the 512 px table)"""
    low: float = 0.0
    """the table's lower bound: targets are clipped to [low, high] ..."""
    high: float = 1.0
    """... and its upper bound"""
    estimator: Literal["mean", "median"] = "median"
    """how :class:`PusherTrack` pools the start readings ``r_τ − D_τ``: the mean (best for independent errors)
    or the median (robust to the few frames a reader gets badly wrong)"""
    window: int = 0
    """pool the last ``window`` pooled frames' start readings only (0: the whole episode so far), so that a stretch
    of frames the reader misreads (the pusher crossing the goal's drawing, far from the block) is forgotten"""
    min_move: float = 4.0 / 512.0
    """a frame's start reading is pooled only where the pusher has moved at least this far (position units) since
    the last pooled frame: a parked pusher's frames repeat one reading, misread or not, and would outvote the
    moving pusher's (the readers misread a pusher parked at the table's edge by 80 px); the default, 4 px, and
    ``inlier_radius`` 8 px were the best of those ``benchmarks/bench_pusher_odometry.py`` compared"""
    inlier_radius: float = 8.0 / 512.0
    """pool only the start readings within this distance (position units; Push-T: px / 512) of the densest one, the
    start reading with the most others that near (ties: the latest); 0: pool them all. Readings of the true start
    agree with each other to a few px, misreadings scatter, so this finds the start even while most frames so far
    were misread, where the median cannot"""

    def __post_init__(self) -> None:
        if not self.command_scale > 0:
            raise ValueError(f"PusherOdometryConfig: command_scale must be > 0, got {self.command_scale}")
        if not self.low < self.high:
            raise ValueError(f"PusherOdometryConfig: needs low < high, got {self.low}, {self.high}")
        if self.estimator not in ("mean", "median"):
            raise ValueError(f"PusherOdometryConfig: estimator must be 'mean' or 'median', got {self.estimator!r}")
        if self.window < 0:
            raise ValueError(f"PusherOdometryConfig: window must be >= 0 (0: the whole episode), got {self.window}")
        if not self.min_move >= 0:
            raise ValueError(f"PusherOdometryConfig: min_move must be >= 0, got {self.min_move}")
        if not self.inlier_radius >= 0:
            raise ValueError(f"PusherOdometryConfig: inlier_radius must be >= 0 (0: every reading), got "
                             f"{self.inlier_radius}")


def commands(positions: torch.Tensor, actions: torch.Tensor, config: PusherOdometryConfig) -> torch.Tensor:
    """The PD commands ``u = clip(p + a · s, low, high) − p`` of positions and actions (..., 2)."""
    return (positions + actions * config.command_scale).clamp(config.low, config.high) - positions


def actuator_rows(positions: np.ndarray, actions: np.ndarray,
                  config: PusherOdometryConfig) -> tuple[np.ndarray, np.ndarray]:
    """Regression rows ``[d_{t−1}, u_{t−1}, u_t] → d_t`` (2T, 3) and (2T,) of one episode from rest: positions
    (T+1, 2) (the start and after each step) and the actions (T, 2) taken; x and y pooled."""
    p, a = np.asarray(positions, dtype=np.float64), np.asarray(actions, dtype=np.float64)
    if p.ndim != 2 or p.shape[1] != 2 or a.shape != (len(p) - 1, 2):
        raise ValueError(f"actuator_rows: expected positions (T+1, 2) and actions (T, 2), got {p.shape} and {a.shape}")
    d, u = np.diff(p, axis=0), commands(torch.from_numpy(p[:-1]), torch.from_numpy(a), config).numpy()
    d_prev = np.concatenate([np.zeros((1, 2)), d[:-1]])
    u_prev = np.concatenate([np.zeros((1, 2)), u[:-1]])
    x = np.stack([d_prev, u_prev, u], -1).reshape(-1, 3)
    return x, d.reshape(-1)


def fit_actuator(episodes: Sequence[tuple[np.ndarray, np.ndarray]],
                 config: PusherOdometryConfig) -> tuple[np.ndarray, dict[str, float]]:
    """``(α, β, γ)`` by least squares over episodes ``(positions (T+1, 2), actions (T, 2))`` that start at rest,
    and the fit's residual (``rms``, ``max``, in position units) over ``rows`` displacements."""
    rows = [actuator_rows(p, a, config) for p, a in episodes]
    if not rows or sum(len(y) for _, y in rows) < 3:
        raise ValueError("fit_actuator: needs at least 3 displacements (one episode of two steps)")
    x, y = np.concatenate([r[0] for r in rows]), np.concatenate([r[1] for r in rows])
    coef, *_ = np.linalg.lstsq(x, y, rcond=None)
    res = y - x @ coef
    return coef, {"rows": int(len(y)), "rms": float(np.sqrt(np.mean(res ** 2))), "max": float(np.abs(res).max())}


class PusherOdometry(ConfigBundleMixin, nn.Module):
    """The fitted actuator model: the pusher's displacement under its commands; :meth:`track` follows one
    episode (or a batch) from its readings."""

    bundle_format, bundle_version, bundle_task = FORMAT_NAME, FORMAT_VERSION, "pusht"
    config_cls = PusherOdometryConfig

    def __init__(self, config: PusherOdometryConfig = PusherOdometryConfig()) -> None:
        super().__init__()
        self.config = config
        self.register_buffer("coefficients", torch.zeros(3, dtype=torch.float64))

    def set_coefficients(self, coefficients: Sequence[float] | np.ndarray) -> "PusherOdometry":
        """Set ``(α, β, γ)`` (a fit's); returns self."""
        c = torch.as_tensor(np.asarray(coefficients, dtype=np.float64))
        if c.shape != (3,) or not torch.isfinite(c).all():
            raise ValueError(f"PusherOdometry: expected 3 finite coefficients (α, β, γ), got {coefficients}")
        self.coefficients.copy_(c)
        return self

    def displacement(self, d_prev: torch.Tensor, u_prev: torch.Tensor, u: torch.Tensor) -> torch.Tensor:
        """``α · d_{t−1} + β · u_{t−1} + γ · u_t``."""
        alpha, beta, gamma = self.coefficients.to(u)
        return alpha * d_prev + beta * u_prev + gamma * u

    def step(self, position: torch.Tensor, d_prev: torch.Tensor, u_prev: torch.Tensor,
             action: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``(d_t, u_t)``: the displacement and the command of ``action`` taken at ``position`` after the last
        ``(d_{t−1}, u_{t−1})`` (a track gives its estimate of the position: within a pixel of the table's edge the
        command it assumes may differ from the one the system applied)."""
        u = commands(position, action.double(), self.config)
        return self.displacement(d_prev, u_prev, u), u

    def track(self, reading: torch.Tensor) -> "PusherTrack":
        """A track of episodes that start at rest where ``reading`` (B, 2) reads the pusher."""
        return PusherTrack(self, reading)


def dead_reckon(odometry: PusherOdometry, start: torch.Tensor, actions: torch.Tensor) -> torch.Tensor:
    """Positions (T+1, B, 2) of pushers that start at rest at ``start`` (B, 2) under ``actions`` (T, B, 2)."""
    p = start.double()
    d_prev = u_prev = torch.zeros_like(p)
    out = [p]
    for a in actions:
        d_prev, u_prev = odometry.step(p, d_prev, u_prev, a)
        p = p + d_prev
        out.append(p)
    return torch.stack(out)


def inliers(starts: torch.Tensor, radius: float) -> torch.Tensor:
    """(N, B) mask of the start readings (N, B, 2) within ``radius`` of each batch entry's densest one: the reading
    with the most readings within ``radius`` of it, ties to the latest."""
    n, b = starts.shape[:2]
    near = (starts[:, None] - starts[None]).norm(dim=-1) <= radius  # (N, N, B)
    score = near.sum(1).double() + torch.arange(n, dtype=torch.float64)[:, None] / n  # recency breaks ties
    center = score.argmax(0)  # (B,)
    return near.permute(2, 0, 1)[torch.arange(b), center].T


class PusherTrack:
    """Dead reckoning of a batch of pushers (B, 2) from rest, with the start re-estimated from the readings."""

    def __init__(self, odometry: PusherOdometry, reading: torch.Tensor) -> None:
        if reading.ndim != 2 or reading.shape[1] != 2:
            raise ValueError(f"PusherTrack: expected a (B, 2) pusher reading, got {tuple(reading.shape)}")
        self.odometry = odometry
        reading = reading.double()
        self.travelled = torch.zeros_like(reading)
        self.d_prev = torch.zeros_like(reading)
        self.u_prev = torch.zeros_like(reading)
        self.starts = [reading]
        """every frame's start reading ``r_t − D_t`` (B, 2), NaN where the frame is not pooled"""
        self.last_pooled = torch.zeros_like(reading)
        self.position = reading

    def _start(self) -> torch.Tensor:
        starts = torch.stack(self.starts)  # (N, B, 2)
        config = self.odometry.config
        if config.window:
            pooled = ~starts[..., 0].isnan()
            recent = pooled.flip(0).cumsum(0).flip(0) <= config.window
            starts = starts.masked_fill(~recent[..., None], float("nan"))
        if config.inlier_radius > 0:
            starts = starts.masked_fill(~inliers(starts, config.inlier_radius)[..., None], float("nan"))
        if config.estimator == "mean":
            return starts.nanmean(0)
        return starts.nanquantile(0.5, dim=0)

    def update(self, action: torch.Tensor, reading: torch.Tensor) -> torch.Tensor:
        """The pusher's estimated position (B, 2) after ``action`` (B, 2) was taken from the last one, given the
        new frame's ``reading`` (B, 2)."""
        self.d_prev, self.u_prev = self.odometry.step(self.position, self.d_prev, self.u_prev, action)
        self.travelled = self.travelled + self.d_prev
        start = reading.double() - self.travelled
        moved = (self.travelled - self.last_pooled).norm(dim=-1) >= self.odometry.config.min_move
        self.last_pooled = torch.where(moved[:, None], self.travelled, self.last_pooled)
        self.starts.append(start.masked_fill(~moved[:, None], float("nan")))
        self.position = self._start() + self.travelled
        return self.position
