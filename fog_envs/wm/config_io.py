"""Frozen dataclass configs to and from JSON-ready dicts (tuples survive the round trip)."""

from __future__ import annotations

import dataclasses
from typing import Any, TypeVar

T = TypeVar("T")


def _tuplify(value: Any) -> Any:
    if isinstance(value, list):
        return tuple(_tuplify(v) for v in value)
    return value


def config_to_dict(config: Any) -> dict[str, Any]:
    """A dataclass config as a plain dict."""
    return dataclasses.asdict(config)


def config_from_dict(cls: type[T], data: dict[str, Any]) -> T:
    """Rebuild a flat dataclass ``cls`` from ``data``; unknown keys raise ``ValueError``; lists become tuples."""
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - set(fields))
    if unknown:
        raise ValueError(f"{cls.__name__}: unknown config keys {unknown}")
    return cls(**{name: _tuplify(value) for name, value in data.items()})
