"""Readers that refine the state probe's readings of real frames at deployment (Push-T): a chain applied in order,
loaded by bundle name or path whatever their format (:mod:`fog_envs.wm.local_reader`,
:mod:`fog_envs.wm.goal_reader`, :mod:`fog_envs.wm.agent_finder`)."""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from typing import Protocol

import numpy as np
import torch

from fog_envs.wm import agent_finder, goal_reader, local_reader
from fog_envs.wm.bundle import BundleError, resolve_bundle_path


class Reader(Protocol):
    """Probe readings (N, 6) of uint8 frames (N, H, W, 3) in, refined readings of the same layout out."""

    def refine(self, frames: torch.Tensor | np.ndarray, readings: torch.Tensor) -> torch.Tensor: ...


_FORMATS = {agent_finder.FORMAT_NAME: agent_finder.AgentFinder, goal_reader.FORMAT_NAME: goal_reader.GoalReader,
            local_reader.FORMAT_NAME: local_reader.LocalReader}


def load_reader(name_or_path: str | os.PathLike) -> Reader:
    """A reader bundle (shipped name, e.g. ``pusht_local_reader``, or path) of any reader format; ``BundleError``
    naming the formats it knows when the bundle is none of them."""
    path = resolve_bundle_path(name_or_path)
    try:
        found = json.loads((path / "config.json").read_text()).get("format_name")
    except (OSError, json.JSONDecodeError, AttributeError) as exc:
        raise BundleError(f"bundle {path}: config.json is missing or not valid JSON ({exc})") from exc
    if found not in _FORMATS:
        raise BundleError(f"bundle {path} is a {found!r} bundle, not a reader ({sorted(_FORMATS)})")
    return _FORMATS[found].load(path)[0]


def refine_all(readers: Sequence[Reader], frames: torch.Tensor | np.ndarray, readings: torch.Tensor) -> torch.Tensor:
    """``readings`` refined by each reader in turn."""
    for reader in readers:
        readings = reader.refine(frames, readings)
    return readings
