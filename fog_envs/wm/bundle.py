"""World-model bundles: configs (JSON) + weights (safetensors) + a card (JSON), in one directory.

Layout of a bundle directory::

    config.json          format name/version, task, every sub-model's config
    weights.safetensors  all weights (prefixes ``autoencoder.``, ``denoiser.``, ``reward.``, ``rssm.``,
                         ``probe.``) and the real start windows (``start.latents``, ``start.actions``)
    card.json            provenance and figures: dataset + fingerprint, steps, wall time, fidelity

Shipped bundles live in ``fog_envs/bundles/<name>/`` and load by name (``load_bundle("pusht")``); a user's
own bundle loads by path. Missing, corrupt or mismatched bundles raise :class:`BundleError`.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file

from fog_envs.wm.autoencoder import AutoencoderConfig
from fog_envs.wm.config_io import config_from_dict, config_to_dict
from fog_envs.wm.denoiser import DenoiserConfig
from fog_envs.wm.edm import EDMConfig
from fog_envs.wm.probe import ProbeConfig
from fog_envs.wm.rssm import RSSMConfig

FORMAT_NAME = "fog-world-model"
FORMAT_VERSION = 1
SHIPPED_DIR = Path(__file__).resolve().parent.parent / "bundles"


class BundleError(ValueError):
    """A world-model bundle is missing, corrupt, or does not match what was asked for."""


@dataclass(frozen=True)
class RewardConfig:
    """Sizes of the reward model."""

    channels: int = 64
    hidden: int = 256


@dataclass(frozen=True)
class WorldModelConfig:
    """Every sub-model's config, plus the task they were trained for."""

    task: str
    autoencoder: AutoencoderConfig = field(default_factory=AutoencoderConfig)
    denoiser: DenoiserConfig = field(default_factory=DenoiserConfig)
    edm: EDMConfig = field(default_factory=EDMConfig)
    rssm: RSSMConfig = field(default_factory=RSSMConfig)
    reward: RewardConfig = field(default_factory=RewardConfig)
    probe: ProbeConfig = field(default_factory=ProbeConfig)

    def to_dict(self) -> dict[str, Any]:
        return {"format_name": FORMAT_NAME, "format_version": FORMAT_VERSION, "task": self.task,
                **{k: config_to_dict(getattr(self, k)) for k in _SUBCONFIGS}}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "WorldModelConfig":
        try:
            return cls(task=data["task"], **{k: config_from_dict(t, data[k]) for k, t in _SUBCONFIGS.items()})
        except (KeyError, TypeError, ValueError) as exc:
            raise BundleError(f"config.json does not describe a fog world model: {exc}") from exc


_SUBCONFIGS: dict[str, type] = {
    "autoencoder": AutoencoderConfig, "denoiser": DenoiserConfig, "edm": EDMConfig,
    "rssm": RSSMConfig, "reward": RewardConfig, "probe": ProbeConfig,
}


def resolve_bundle_path(name_or_path: str | os.PathLike) -> Path:
    """A shipped bundle's directory for a bare name, else the given path; ``BundleError`` if absent."""
    text = str(name_or_path)
    shipped = SHIPPED_DIR / text
    if os.sep not in text and "/" not in text and shipped.is_dir():
        return shipped
    path = Path(text).expanduser()
    if path.is_dir():
        return path
    known = sorted(p.name for p in SHIPPED_DIR.iterdir() if p.is_dir()) if SHIPPED_DIR.is_dir() else []
    raise BundleError(f"no world-model bundle at {text!r} (not a directory; shipped bundles: {known})")


def write_bundle(path: str | os.PathLike, config: Any, tensors: dict[str, torch.Tensor],
                 card: dict[str, Any]) -> Path:
    """Write a bundle directory atomically (a temporary directory renamed into place); ``config`` is anything
    with a ``to_dict()`` for ``config.json`` (a :class:`WorldModelConfig`, or a state model's header)."""
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    save_file({k: v.detach().contiguous().cpu() for k, v in tensors.items()}, str(tmp / "weights.safetensors"))
    (tmp / "config.json").write_text(json.dumps(config.to_dict(), indent=2))
    (tmp / "card.json").write_text(json.dumps(card, indent=2, default=str))
    old = path.with_name(path.name + ".old")
    if path.exists():
        shutil.rmtree(old, ignore_errors=True)
        os.replace(path, old)
    os.replace(tmp, path)
    shutil.rmtree(old, ignore_errors=True)
    return path


def update_card(name_or_path: str | os.PathLike, **entries: Any) -> dict[str, Any]:
    """Set ``entries`` in a bundle's card.json (atomically, the rest kept); return the new card."""
    card_path = resolve_bundle_path(name_or_path) / "card.json"
    try:
        card = json.loads(card_path.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise BundleError(f"bundle {name_or_path}: card.json is missing or not valid JSON ({exc})") from exc
    card.update(entries)
    tmp = card_path.with_name("card.json.tmp")
    tmp.write_text(json.dumps(card, indent=2, default=str))
    os.replace(tmp, card_path)
    return card


def read_bundle_files(name_or_path: str | os.PathLike, format_name: str = FORMAT_NAME,
                      format_version: int = FORMAT_VERSION) -> tuple[Path, dict[str, Any], dict[str, torch.Tensor],
                                                                     dict[str, Any]]:
    """``(path, raw config dict, tensors, card)`` of a bundle directory in the format ``format_name`` (world
    models, or state models: :mod:`fog_envs.wm.state_model`); every failure is a :class:`BundleError`."""
    path = resolve_bundle_path(name_or_path)
    for fname in ("config.json", "weights.safetensors", "card.json"):
        if not (path / fname).is_file():
            raise BundleError(f"bundle {path} is incomplete: {fname} is missing")
    try:
        raw = json.loads((path / "config.json").read_text())
        card = json.loads((path / "card.json").read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise BundleError(f"bundle {path}: config.json or card.json is not valid JSON ({exc})") from exc
    if not isinstance(raw, dict) or raw.get("format_name") != format_name:
        found = raw.get("format_name") if isinstance(raw, dict) else None
        raise BundleError(f"bundle {path}: config.json is not a {format_name} config (format_name {found!r})")
    if raw.get("format_version") != format_version:
        raise BundleError(f"bundle {path}: format version {raw.get('format_version')} is not supported "
                          f"(this fog_envs reads version {format_version})")
    try:
        tensors = load_file(str(path / "weights.safetensors"))
    except Exception as exc:  # safetensors raises several types for damaged files
        raise BundleError(f"bundle {path}: weights.safetensors is corrupt or truncated ({exc})") from exc
    return path, raw, tensors, card


@dataclass(frozen=True)
class ConfigHeader:
    """``config.json`` of a single-config bundle (a reader's): format, task and one dataclass config."""

    format_name: str
    format_version: int
    task: str
    config: Any

    def to_dict(self) -> dict[str, Any]:
        return {"format_name": self.format_name, "format_version": self.format_version, "task": self.task,
                "config": config_to_dict(self.config)}


def read_config_bundle(name_or_path: str | os.PathLike, format_name: str, format_version: int,
                       config_cls: type) -> tuple[Path, Any, dict[str, torch.Tensor], dict[str, Any]]:
    """``(path, config, tensors, card)`` of a bundle written with a :class:`ConfigHeader`; a config that does not
    fit ``config_cls`` is a :class:`BundleError` like every other failure."""
    path, raw, tensors, card = read_bundle_files(name_or_path, format_name, format_version)
    try:
        config = config_from_dict(config_cls, raw["config"])
    except (KeyError, TypeError, ValueError) as exc:
        raise BundleError(f"{format_name} bundle {path}: bad config ({exc})") from exc
    return path, config, tensors, card


class ConfigBundleMixin:
    """``save`` / ``load`` for a module built from one dataclass ``config`` whose whole state dict is its bundle's
    weights; subclasses set ``bundle_format``, ``bundle_version``, ``bundle_task`` and ``config_cls``."""

    bundle_format: str
    bundle_version: int
    bundle_task: str
    config_cls: type

    def save(self, path: str | os.PathLike, card: dict[str, Any]) -> Path:
        """Write the bundle directory (atomically)."""
        config = self.config  # type: ignore[attr-defined]
        header = ConfigHeader(self.bundle_format, self.bundle_version, self.bundle_task, config)
        return write_bundle(path, header, dict(self.state_dict()), card)  # type: ignore[attr-defined]

    @classmethod
    def load(cls, name_or_path: str | os.PathLike) -> tuple[Any, dict[str, Any]]:
        """``(module, card)`` from a bundle (a shipped name or a path); ``BundleError`` when missing, corrupt or
        of another format."""
        path, config, tensors, card = read_config_bundle(name_or_path, cls.bundle_format, cls.bundle_version,
                                                         cls.config_cls)
        module = cls(config)  # type: ignore[call-arg]
        load_state(module, {f"m.{k}": v for k, v in tensors.items()}, "m", str(path))  # type: ignore[arg-type]
        return module.eval(), card  # type: ignore[attr-defined]


def read_bundle(name_or_path: str | os.PathLike) -> tuple[WorldModelConfig, dict[str, torch.Tensor], dict[str, Any]]:
    """Read ``(config, tensors, card)`` from a world-model bundle; every failure is a :class:`BundleError`."""
    _, raw, tensors, card = read_bundle_files(name_or_path)
    return WorldModelConfig.from_dict(raw), tensors, card


def weights_fingerprint(state: dict[str, torch.Tensor]) -> str:
    """SHA-256 (hex) over a state dict's names, dtypes, shapes and values, in sorted name order: names one
    stage's weights exactly, whichever bundle or checkpoint they sit in."""
    digest = hashlib.sha256()
    for name in sorted(state):
        value = state[name].detach().to("cpu").contiguous()
        digest.update(f"{name}|{value.dtype}|{tuple(value.shape)}\n".encode())
        digest.update(value.reshape(-1).view(torch.uint8).numpy().tobytes() if value.numel() else b"")
    return digest.hexdigest()


def split_prefix(tensors: dict[str, torch.Tensor], prefix: str) -> dict[str, torch.Tensor]:
    """The entries of ``tensors`` under ``prefix.``, with the prefix removed."""
    start = prefix + "."
    return {k[len(start):]: v for k, v in tensors.items() if k.startswith(start)}


def load_state(module: torch.nn.Module, tensors: dict[str, torch.Tensor], prefix: str, where: str) -> None:
    """Load ``prefix.*`` weights into ``module``, turning shape/key mismatches into a :class:`BundleError`."""
    state = split_prefix(tensors, prefix)
    try:
        module.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        raise BundleError(f"bundle {where}: the {prefix} weights do not match its config ({str(exc)[:300]})") from exc
