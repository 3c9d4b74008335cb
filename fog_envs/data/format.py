"""The fog play-dataset format (HDF5, version 1): writing, validation, loading and fingerprinting.

One file holds flat arrays over all N rows of all E episodes, plus the episode boundaries:

=================  ============  =========  ==================================================
name               shape         dtype      meaning
=================  ============  =========  ==================================================
``frames``         (N, H, W, 3)  uint8      observation o_t (RGB, HWC); chunked (64, H, W, 3), compressed
``actions``        (N, A)        float32    action a_t taken after seeing o_t
``rewards``        (N,)          float32    reward the env returned for a_t
``terminated``     (N,)          bool       ``terminated`` the env returned for a_t
``truncated``      (N,)          bool       ``truncated`` the env returned for a_t
``state``          (N, S)        float64    true physical state at o_t (``info["state"]`` with o_t)
``is_success``     (N,)          bool       ``info["is_success"]`` the env returned for a_t
``episode_ends``   (E,)          int64      exclusive end row of each episode
=================  ============  =========  ==================================================

Row convention: row t holds the observation o_t, the action a_t taken after seeing it, and the reward /
terminated / truncated / is_success that ``env.step(a_t)`` returned; ``state`` is the true state at o_t.
Episode e spans rows ``[episode_ends[e-1], episode_ends[e])`` (with ``episode_ends[-1] == 0``). The
observation returned by an episode's last step is not stored (there is no action for it), so the last row
of an episode is the one whose ``terminated`` or ``truncated`` is set (if the episode ended normally).

File attributes (:data:`REQUIRED_ATTRS`): ``format_name`` (``"fog-play-dataset"``), ``format_version`` (1),
``env_id``, ``env_version`` (``fog_envs.__version__``), ``collector_policy``, ``seed``, ``control_hz``,
``reward_definition``, ``num_episodes``, ``num_frames``, ``created_by``. Writers may add more attributes.

Files are written atomically (``path + ".tmp"``, flushed, then ``os.replace``). Anything that is not a
valid dataset (missing, corrupt, truncated, foreign, a newer version, inconsistent) raises
:class:`DatasetError` naming the problem.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import h5py
import numpy as np

import fog_envs

FORMAT_NAME = "fog-play-dataset"
FORMAT_VERSION = 1
FRAME_CHUNK = 64  #: rows per ``frames`` chunk
ROW_CHUNK = 4096  #: rows per chunk of the small per-row arrays
GZIP_LEVEL = 4
READ_BLOCK = 4096  #: rows read at a time when streaming a whole array

Compression = Literal["gzip", "lzf", "none"]

#: Per-row arrays: name -> (storage dtype, ndim).
ROW_ARRAYS: dict[str, tuple[np.dtype, int]] = {
    "frames": (np.dtype(np.uint8), 4),
    "actions": (np.dtype(np.float32), 2),
    "rewards": (np.dtype(np.float32), 1),
    "terminated": (np.dtype(np.bool_), 1),
    "truncated": (np.dtype(np.bool_), 1),
    "state": (np.dtype(np.float64), 2),
    "is_success": (np.dtype(np.bool_), 1),
}
ARRAY_NAMES: tuple[str, ...] = (*ROW_ARRAYS, "episode_ends")
REQUIRED_ATTRS: tuple[str, ...] = (
    "format_name", "format_version", "env_id", "env_version", "collector_policy", "seed", "control_hz",
    "reward_definition", "num_episodes", "num_frames", "created_by",
)


class DatasetError(ValueError):
    """A file is not a valid fog play dataset (missing, corrupt, foreign, unsupported or inconsistent)."""


@dataclass(frozen=True)
class DatasetMeta:
    """The descriptive attributes of a dataset (counts and format fields are added by the writer)."""

    env_id: str
    collector_policy: str
    seed: int
    control_hz: float
    reward_definition: str
    env_version: str = fog_envs.__version__
    created_by: str = f"fog_envs.data {fog_envs.__version__}"
    extra: Mapping[str, Any] = field(default_factory=dict)
    """further attributes to store (str, int, float or bool values)"""


@dataclass(frozen=True)
class DatasetInfo:
    """What validation found: the attributes, the counts and the per-row shapes."""

    path: Path
    attrs: dict[str, Any]
    num_frames: int
    num_episodes: int
    frame_shape: tuple[int, int, int]
    action_dim: int
    state_dim: int


# ---- writing ---------------------------------------------------------------------------------------


def _filter_kwargs(compression: Compression) -> dict[str, Any]:
    if compression == "gzip":
        return {"compression": "gzip", "compression_opts": GZIP_LEVEL}
    if compression == "lzf":
        return {"compression": "lzf"}
    if compression == "none":
        return {}
    raise ValueError(f"compression must be 'gzip', 'lzf' or 'none', got {compression!r}")


def _episode_arrays(episode: Mapping[str, Any]) -> dict[str, np.ndarray]:
    """Check one episode dict and cast its arrays to the storage dtypes."""
    missing = [k for k in ROW_ARRAYS if k not in episode]
    if missing:
        raise ValueError(f"episode is missing arrays {missing}; it needs {list(ROW_ARRAYS)}")
    out = {k: np.asarray(episode[k]).astype(dtype, copy=False) for k, (dtype, _) in ROW_ARRAYS.items()}
    length = len(out["frames"])
    for name, (_, ndim) in ROW_ARRAYS.items():
        arr = out[name]
        if arr.ndim != ndim:
            raise ValueError(f"episode array {name!r} must have {ndim} dimensions, got shape {arr.shape}")
        if len(arr) != length:
            raise ValueError(f"episode array {name!r} has {len(arr)} rows, frames has {length}")
    if length == 0:
        raise ValueError("an episode must have at least one row")
    if out["frames"].shape[-1] != 3:
        raise ValueError(f"frames must be (T, H, W, 3) RGB, got shape {out['frames'].shape}")
    return out


class DatasetWriter:
    """Append episodes to a new dataset file; :meth:`close` publishes it atomically at ``path``.

    Use as a context manager: on an exception the temporary file is deleted and ``path`` is untouched.
    Memory use is one episode at a time, so shards can be merged into a large file.
    """

    def __init__(self, path: str | os.PathLike, meta: DatasetMeta, compression: Compression = "gzip") -> None:
        self.path = Path(path)
        self.tmp_path = Path(f"{self.path}.tmp")
        self.meta = meta
        self._filters = _filter_kwargs(compression)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._file: h5py.File | None = h5py.File(self.tmp_path, "w")
        self._ends: list[int] = []
        self._rows = 0

    def _create(self, arrays: Mapping[str, np.ndarray]) -> None:
        assert self._file is not None
        for name, (dtype, _) in ROW_ARRAYS.items():
            row_shape = arrays[name].shape[1:]
            chunk_rows = FRAME_CHUNK if name == "frames" else ROW_CHUNK
            self._file.create_dataset(
                name, shape=(0, *row_shape), maxshape=(None, *row_shape), dtype=dtype,
                chunks=(chunk_rows, *row_shape), **self._filters,
            )

    def append(self, episode: Mapping[str, Any]) -> None:
        """Add one episode (a dict of the :data:`ROW_ARRAYS`, all with the same number of rows)."""
        if self._file is None:
            raise ValueError(f"dataset writer for {self.path} is already closed")
        arrays = _episode_arrays(episode)
        if not self._ends:
            self._create(arrays)
        length = len(arrays["frames"])
        for name, arr in arrays.items():
            ds = self._file[name]
            if ds.shape[1:] != arr.shape[1:]:
                raise ValueError(f"episode array {name!r} has rows of shape {arr.shape[1:]}, "
                                 f"earlier episodes have {ds.shape[1:]}")
            ds.resize(self._rows + length, axis=0)
            ds[self._rows:] = arr
        self._rows += length
        self._ends.append(self._rows)

    def close(self) -> Path:
        """Write boundaries and attributes, flush, and move the file into place; returns the path."""
        if self._file is None:
            return self.path
        if not self._ends:
            self.abort()
            raise ValueError(f"cannot write {self.path}: no episodes were appended")
        f = self._file
        f.create_dataset("episode_ends", data=np.asarray(self._ends, dtype=np.int64))
        attrs = {
            "format_name": FORMAT_NAME, "format_version": FORMAT_VERSION,
            "env_id": self.meta.env_id, "env_version": self.meta.env_version,
            "collector_policy": self.meta.collector_policy, "seed": int(self.meta.seed),
            "control_hz": float(self.meta.control_hz), "reward_definition": self.meta.reward_definition,
            "num_episodes": len(self._ends), "num_frames": self._rows, "created_by": self.meta.created_by,
        }
        clash = set(self.meta.extra) & set(attrs)
        if clash:
            self.abort()
            raise ValueError(f"extra attributes {sorted(clash)} would overwrite format attributes")
        for key, value in {**attrs, **self.meta.extra}.items():
            f.attrs[key] = value
        f.flush()
        f.close()
        self._file = None
        with open(self.tmp_path, "rb+") as fh:
            os.fsync(fh.fileno())
        os.replace(self.tmp_path, self.path)
        return self.path

    def abort(self) -> None:
        """Discard the temporary file."""
        if self._file is not None:
            self._file.close()
            self._file = None
        self.tmp_path.unlink(missing_ok=True)

    def __enter__(self) -> DatasetWriter:
        return self

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        if exc_type is None:
            self.close()
        else:
            self.abort()


def write_dataset(path: str | os.PathLike, episodes: Iterable[Mapping[str, Any]], meta: DatasetMeta,
                  compression: Compression = "gzip") -> Path:
    """Write ``episodes`` (dicts of per-row arrays) to ``path`` atomically; returns the path."""
    with DatasetWriter(path, meta, compression) as writer:
        for episode in episodes:
            writer.append(episode)
    return writer.path


# ---- validation and reading -------------------------------------------------------------------------


def _attr(value: Any) -> Any:
    """An HDF5 attribute as a plain Python value."""
    if isinstance(value, bytes):
        return value.decode()
    if isinstance(value, np.generic):
        return value.item()
    return value


def _validate(f: h5py.File, path: Path) -> DatasetInfo:
    """Check attributes, array presence, dtypes and lengths of an open file."""
    attrs = {k: _attr(v) for k, v in f.attrs.items()}
    if "format_name" not in attrs:
        raise DatasetError(
            f"{path} is not a fog play dataset: the attribute 'format_name' is missing "
            f"(found attributes {sorted(attrs)}, arrays {sorted(f.keys())})")
    if attrs["format_name"] != FORMAT_NAME:
        raise DatasetError(f"{path} is not a fog play dataset: format_name is {attrs['format_name']!r}, "
                           f"expected {FORMAT_NAME!r}")
    version = attrs.get("format_version")
    if version != FORMAT_VERSION:
        raise DatasetError(f"{path}: unsupported format_version {version!r} "
                           f"(this fog_envs {fog_envs.__version__} reads version {FORMAT_VERSION})")
    missing_attrs = [k for k in REQUIRED_ATTRS if k not in attrs]
    if missing_attrs:
        raise DatasetError(f"{path}: fog play dataset is missing the attributes {missing_attrs}")
    missing_arrays = [k for k in ARRAY_NAMES if k not in f]
    if missing_arrays:
        raise DatasetError(f"{path}: fog play dataset is missing the arrays {missing_arrays}")
    for name, (dtype, ndim) in {**ROW_ARRAYS, "episode_ends": (np.dtype(np.int64), 1)}.items():
        ds = f[name]
        if not isinstance(ds, h5py.Dataset):
            raise DatasetError(f"{path}: {name!r} is not an array")
        if ds.ndim != ndim or ds.dtype.kind != dtype.kind or (name == "frames" and ds.dtype != dtype):
            raise DatasetError(f"{path}: array {name!r} has shape {ds.shape} and dtype {ds.dtype}, "
                               f"expected {ndim} dimensions of {dtype}")
    n = len(f["frames"])
    if f["frames"].shape[-1] != 3:
        raise DatasetError(f"{path}: frames must be (N, H, W, 3), got {f['frames'].shape}")
    lengths = {name: len(f[name]) for name in ROW_ARRAYS}
    if len(set(lengths.values())) != 1:
        raise DatasetError(f"{path}: inconsistent lengths of the per-row arrays: {lengths}")
    ends = f["episode_ends"][()]
    if len(ends) == 0 or ends[0] <= 0 or np.any(np.diff(ends) <= 0) or ends[-1] != n:
        preview = ends if len(ends) <= 8 else f"[{ends[0]}, {ends[1]}, ..., {ends[-1]}] ({len(ends)} entries)"
        raise DatasetError(f"{path}: episode_ends {preview} must be positive, strictly increasing and end "
                           f"at the number of rows N={n}")
    if attrs["num_frames"] != n or attrs["num_episodes"] != len(ends):
        raise DatasetError(f"{path}: attributes say {attrs['num_frames']} frames in {attrs['num_episodes']} "
                           f"episodes, the arrays hold {n} frames in {len(ends)} episodes")
    return DatasetInfo(path=path, attrs=attrs, num_frames=n, num_episodes=len(ends),
                       frame_shape=tuple(f["frames"].shape[1:]), action_dim=int(f["actions"].shape[1]),
                       state_dim=int(f["state"].shape[1]))


def open_dataset(path: str | os.PathLike, rdcc_nbytes: int = 64 * 2**20) -> h5py.File:
    """Open and validate a dataset read-only; returns the ``h5py.File`` (use it as a context manager).

    Raises :class:`DatasetError` for a missing, unreadable, foreign, unsupported or inconsistent file.
    """
    path = Path(path)
    if not path.exists():
        raise DatasetError(f"no such dataset file: {path}")
    if path.is_dir():
        raise DatasetError(f"{path} is a directory, not a dataset file")
    try:
        f = h5py.File(path, "r", rdcc_nbytes=rdcc_nbytes)
    except OSError as exc:
        raise DatasetError(f"{path} is not a readable HDF5 file (corrupt or truncated?): {exc}") from exc
    try:
        _validate(f, path)
    except DatasetError:
        f.close()
        raise
    except (OSError, KeyError, RuntimeError) as exc:
        f.close()
        raise DatasetError(f"{path} is not a readable HDF5 file (corrupt or truncated?): {exc}") from exc
    return f


def dataset_info(path: str | os.PathLike) -> DatasetInfo:
    """Validate a dataset and return its attributes and sizes (cheap: reads no frames)."""
    with open_dataset(path) as f:
        return _validate(f, Path(path))


@contextmanager
def _reading(path: Path, name: str) -> Iterator[None]:
    """Turn a low-level read failure into a :class:`DatasetError`."""
    try:
        yield
    except (OSError, RuntimeError, KeyError) as exc:
        raise DatasetError(f"{path} is corrupt: reading {name!r} failed ({exc})") from exc


def load_arrays(path: str | os.PathLike, names: Iterable[str] = ARRAY_NAMES) -> dict[str, np.ndarray]:
    """Read whole arrays into memory (validated first; read errors become :class:`DatasetError`)."""
    path = Path(path)
    names = tuple(names)
    unknown = [n for n in names if n not in ARRAY_NAMES]
    if unknown:
        raise ValueError(f"unknown dataset arrays {unknown}; known: {list(ARRAY_NAMES)}")
    out = {}
    with open_dataset(path) as f:
        for name in names:
            with _reading(path, name):
                out[name] = f[name][()]
    return out


def iter_blocks(ds: h5py.Dataset, path: Path, block: int = READ_BLOCK) -> Iterator[np.ndarray]:
    """Stream a dataset in blocks of rows (read errors become :class:`DatasetError`)."""
    for start in range(0, len(ds), block):
        with _reading(path, ds.name.lstrip("/")):
            chunk = ds[start:start + block]
        yield chunk


def check_dataset(path: str | os.PathLike) -> DatasetInfo:
    """Full validation: :func:`dataset_info` plus reading every array once (finds corrupt chunks)."""
    path = Path(path)
    with open_dataset(path) as f:
        info = _validate(f, path)
        for name in ARRAY_NAMES:
            for _ in iter_blocks(f[name], path):
                pass
    return info


def dataset_fingerprint(path: str | os.PathLike) -> str:
    """SHA-256 (hex) over the content of every array: names, dtypes, shapes and values, in a fixed order.

    Independent of compression, chunking and attributes, so two collections with the same episodes have the
    same fingerprint. Streams the arrays (about a second per 100k frames plus decompression).
    """
    path = Path(path)
    digest = hashlib.sha256()
    with open_dataset(path) as f:
        for name in ARRAY_NAMES:
            ds = f[name]
            digest.update(f"{name}|{ds.dtype.newbyteorder('<').str}|{ds.shape}\n".encode())
            for block in iter_blocks(ds, path):
                digest.update(np.ascontiguousarray(block, dtype=ds.dtype.newbyteorder("<")).data)
    return digest.hexdigest()
