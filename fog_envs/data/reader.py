"""Random fixed-length windows of a play dataset, for world-model training.

A window of length L starting at row s covers rows ``s .. s+L-1`` of s's episode; it never continues into
the next episode. With ``pad=True`` (the default) every row is a valid start and the positions past the
episode's end are padding: ``mask`` is False there and every array is zero there. With ``pad=False`` only
starts whose whole window fits inside the episode are drawn (``mask`` is then all True).

Sampling is vectorised: one fancy-indexing gather per array and batch.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass, fields
from pathlib import Path
from typing import TYPE_CHECKING, Any

import h5py
import numpy as np

from fog_envs.data.format import ROW_ARRAYS, DatasetError, DatasetInfo, dataset_info, load_arrays, open_dataset

if TYPE_CHECKING:
    import torch


@dataclass(frozen=True)
class WindowBatch:
    """A batch of B windows of length L (padded positions are zero and have ``mask`` False)."""

    frames: np.ndarray  #: (B, L, H, W, 3) uint8
    actions: np.ndarray  #: (B, L, A) float32
    rewards: np.ndarray  #: (B, L) float32
    terminated: np.ndarray  #: (B, L) bool
    truncated: np.ndarray  #: (B, L) bool
    is_success: np.ndarray  #: (B, L) bool
    state: np.ndarray  #: (B, L, S) float64
    mask: np.ndarray  #: (B, L) bool, False past the end of the episode
    episode: np.ndarray  #: (B,) int64 episode index of each window
    start: np.ndarray  #: (B,) int64 first row of each window

    def to_torch(self, device: str | torch.device | None = None) -> dict[str, torch.Tensor]:
        """The batch as torch tensors (zero-copy on CPU), moved to ``device`` if given."""
        import torch

        out = {f.name: torch.from_numpy(getattr(self, f.name)) for f in fields(self)}
        if device is not None:
            out = {k: v.to(device, non_blocking=True) for k, v in out.items()}
        return out


class WindowSampler:
    """Sample windows of ``window`` rows from a dataset, seeded and reproducible.

    ``in_memory=True`` reads every array once (fast sampling; ~12 KiB per 64×64 frame); ``in_memory=False``
    keeps the file open and reads the rows of each batch from disk.
    """

    def __init__(self, path: str | os.PathLike, window: int, in_memory: bool = True, seed: int | None = None,
                 pad: bool = True) -> None:
        if int(window) < 1:
            raise ValueError(f"window must be >= 1, got {window}")
        self.path = Path(path)
        self.window = int(window)
        self.pad = pad
        self.info: DatasetInfo = dataset_info(self.path)
        self._file: h5py.File | None = None
        ends = load_arrays(self.path, names=("episode_ends",))["episode_ends"].astype(np.int64)
        if in_memory:
            self._arrays: dict[str, Any] = load_arrays(self.path, names=ROW_ARRAYS)
        else:
            self._file = open_dataset(self.path)
            self._arrays = {name: self._file[name] for name in ROW_ARRAYS}
        self.episode_ends = ends
        self.episode_starts = np.concatenate([[0], ends[:-1]]).astype(np.int64)
        lengths = ends - self.episode_starts
        self._row_episode = np.repeat(np.arange(len(ends), dtype=np.int64), lengths)
        if pad:
            self._valid_starts = np.arange(self.info.num_frames, dtype=np.int64)
        else:
            last_start = ends - self.window  # inclusive
            keep = last_start >= self.episode_starts
            self._valid_starts = np.concatenate(
                [np.arange(s, e + 1) for s, e in zip(self.episode_starts[keep], last_start[keep])] or [[]]
            ).astype(np.int64)
            if len(self._valid_starts) == 0:
                raise ValueError(f"{self.path}: no episode has {self.window} rows; use pad=True or a shorter window")
        self.rng = np.random.default_rng(seed)

    # ---- sizes -----------------------------------------------------------------------------------------
    @property
    def num_frames(self) -> int:
        return self.info.num_frames

    @property
    def num_episodes(self) -> int:
        return self.info.num_episodes

    @property
    def attrs(self) -> dict[str, Any]:
        return self.info.attrs

    def __len__(self) -> int:
        """Number of distinct windows that can be drawn."""
        return len(self._valid_starts)

    # ---- sampling --------------------------------------------------------------------------------------
    def sample(self, batch_size: int) -> WindowBatch:
        """``batch_size`` windows with uniformly random valid starts."""
        starts = self._valid_starts[self.rng.integers(0, len(self._valid_starts), size=int(batch_size))]
        return self.windows(starts)

    def sample_torch(self, batch_size: int, device: str | torch.device | None = None) -> dict[str, torch.Tensor]:
        """:meth:`sample` as a dict of torch tensors."""
        return self.sample(batch_size).to_torch(device)

    def windows(self, starts: np.ndarray) -> WindowBatch:
        """The windows starting at the given rows (any rows; padded past their episode's end)."""
        starts = np.asarray(starts, dtype=np.int64).reshape(-1)
        if len(starts) == 0:
            raise ValueError("need at least one window start")
        if starts.min() < 0 or starts.max() >= self.num_frames:
            raise IndexError(f"window starts must be rows in [0, {self.num_frames}), got {starts}")
        episode = self._row_episode[starts]
        last = self.episode_ends[episode] - 1
        rows = starts[:, None] + np.arange(self.window, dtype=np.int64)
        mask = rows <= last[:, None]
        rows = np.minimum(rows, last[:, None])
        out = self._gather(rows)
        if not mask.all():
            for arr in out.values():
                arr[~mask] = 0
        return WindowBatch(**out, mask=mask, episode=episode, start=starts)

    def _gather(self, rows: np.ndarray) -> dict[str, np.ndarray]:
        if self._file is None:
            return {name: arr[rows] for name, arr in self._arrays.items()}
        # Read the needed rows as a few contiguous runs (h5py point selections are slow), then gather.
        unique, inverse = np.unique(rows, return_inverse=True)
        inverse = inverse.reshape(rows.shape)
        breaks = np.flatnonzero(np.diff(unique) > 1) + 1
        run_starts = unique[np.concatenate([[0], breaks])]
        run_stops = unique[np.concatenate([breaks - 1, [len(unique) - 1]])] + 1
        out = {}
        for name, ds in self._arrays.items():
            try:
                block = np.concatenate([ds[a:b] for a, b in zip(run_starts, run_stops)])
            except (OSError, RuntimeError) as exc:
                raise DatasetError(f"{self.path} is corrupt: reading {name!r} failed ({exc})") from exc
            out[name] = block[inverse]
        return out

    # ---- episodes ----------------------------------------------------------------------------------------
    def episode(self, index: int) -> dict[str, np.ndarray]:
        """All rows of one episode as a dict of arrays (views when in memory)."""
        if not -self.num_episodes <= index < self.num_episodes:
            raise IndexError(f"episode {index} out of range ({self.num_episodes} episodes)")
        s, e = int(self.episode_starts[index]), int(self.episode_ends[index])
        return {name: arr[s:e] for name, arr in self._arrays.items()}

    def episodes(self) -> Iterator[dict[str, np.ndarray]]:
        """Iterate over the episodes in order."""
        for index in range(self.num_episodes):
            yield self.episode(index)

    # ---- lifetime --------------------------------------------------------------------------------------
    def close(self) -> None:
        """Close the file (only open with ``in_memory=False``)."""
        if self._file is not None:
            self._file.close()
            self._file = None

    def __enter__(self) -> WindowSampler:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()
