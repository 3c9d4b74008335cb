"""Play-data collection: run the scripted play policy on a reference system in parallel and write a dataset.

Episode ``i`` (0-based) is played with ``env.reset(seed=seed + i)`` and the policy generator
``np.random.default_rng([seed, i])`` on a fresh env, so every episode is reproducible on its own and
independent of which worker ran it. Each finished episode is written atomically as its own shard
``<out>.parts/episode_000123.h5`` (a valid one-episode dataset); when all shards exist they are merged, in
episode order, into ``<out>`` (atomically) and the parts folder is removed.

Resume: rerunning the same collection after a kill keeps the shards already written (stray ``.tmp`` files
and unreadable shards are deleted and redone), so the result equals an uninterrupted run. If ``<out>``
already holds this collection, nothing is done; if it (or the parts folder) holds a different collection,
:class:`CollectMismatchError` is raised rather than mixing data.
"""

from __future__ import annotations

import functools
import importlib
import os
import shutil
import sys
import time
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from dataclasses import dataclass
from multiprocessing import get_context
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
from tqdm.auto import tqdm

import fog_envs
from fog_envs.data.format import (
    ROW_ARRAYS, Compression, DatasetError, DatasetMeta, DatasetWriter, dataset_info, load_arrays, write_dataset,
)
from fog_envs.data.motion import ObjectMotion, moved_fraction, object_motion
from fog_envs.data.rollout import PolicyFactory, policy_name, run_episode

SHARD_PATTERN = "episode_{:06d}.h5"
#: Modules holding the ``REWARD_DEFINITION`` string of each reference system.
REWARD_MODULES = {"RealPushT-v0": "fog_envs.real.pusht_reward", "RealPushCube-v0": "fog_envs.real.cube_reward"}
EPISODE_SEEDING = "env.reset(seed=seed+i); policy rng numpy.random.default_rng([seed, i]); fresh env per episode"
_THREAD_VARS = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS")


class CollectMismatchError(ValueError):
    """An existing output (dataset or parts folder) was produced by a different collection."""


@dataclass(frozen=True)
class CollectConfig:
    """One play-data collection."""

    env_id: str = "RealPushT-v0"
    """reference system to collect on (a Gymnasium id; "module:Id" also works)"""
    out: Path = Path("datasets/pusht_play.h5")
    """output dataset; shards go to OUT.parts/ until the merge"""
    num_episodes: int = 400
    seed: int = 0
    """episode i uses env seed SEED+i and policy rng default_rng([SEED, i])"""
    workers: int = 2
    """worker processes (1: run in this process)"""
    max_episode_steps: int | None = None
    """override the env's registered episode length"""
    compression: Compression = "gzip"
    reward_definition: str | None = None
    """reward description stored in the file (default: the env's REWARD_DEFINITION)"""
    random_action_prob: float = 0.0
    """per-step chance that the play policy's action is replaced by a uniformly random one
    (``fog_envs.play.random_mix``; recorded in the dataset's ``collector_policy``)"""
    nudge_prob: float = 0.0
    """RealPushT-v0 only: per planned push, the chance it is a nudge, a short slow push from contact
    (``fog_envs.play.pusht.PushTPlayConfig.p_nudge``): play data for the last pixels of a push"""
    wall_prob: float = 0.0
    """RealPushCube-v0 only: per segment, the chance it is wall play, the cube pushed into a wall and held
    there or the robot driven into one (``fog_envs.play.cube.PushCubePlayConfig.p_wall``)"""
    drive_prob: float = 0.0
    """RealPushCube-v0 only: per segment, the chance it is a drive, one command from the whole action box held
    for a few steps (``fog_envs.play.cube.PushCubePlayConfig.p_drive``): full reverse and full turns"""
    wall_start_band_m: float | None = None
    """RealPushCube-v0 only: start every episode with the cube within this many metres of its reset limit, next
    to a wall (the env's ``wall_start_band_m``: its resets kept only there); recorded as the dataset's ``start``"""

    def __post_init__(self) -> None:
        if self.num_episodes < 1:
            raise ValueError(f"num_episodes must be >= 1, got {self.num_episodes}")
        if self.workers < 1:
            raise ValueError(f"workers must be >= 1, got {self.workers}")
        if self.seed < 0:
            raise ValueError(f"seed must be >= 0 (it seeds numpy generators), got {self.seed}")
        if self.max_episode_steps is not None and self.max_episode_steps < 1:
            raise ValueError(f"max_episode_steps must be >= 1 or None, got {self.max_episode_steps}")
        if self.compression not in ("gzip", "lzf", "none"):
            raise ValueError(f"compression must be 'gzip', 'lzf' or 'none', got {self.compression!r}")
        if not 0.0 <= self.random_action_prob <= 1.0:
            raise ValueError(f"random_action_prob must be in [0, 1], got {self.random_action_prob}")
        if not 0.0 <= self.nudge_prob <= 1.0:
            raise ValueError(f"nudge_prob must be in [0, 1], got {self.nudge_prob}")
        if not 0.0 <= self.wall_prob <= 1.0:
            raise ValueError(f"wall_prob must be in [0, 1], got {self.wall_prob}")
        if not 0.0 <= self.drive_prob <= 1.0:
            raise ValueError(f"drive_prob must be in [0, 1], got {self.drive_prob}")
        if self.wall_start_band_m is not None:
            if not self.wall_start_band_m > 0:
                raise ValueError(f"wall_start_band_m must be > 0 or None, got {self.wall_start_band_m}")
            if self.env_id.split(":")[-1] != "RealPushCube-v0":
                raise ValueError(f"wall_start_band_m is for RealPushCube-v0, not {self.env_id!r}")

    @property
    def start(self) -> str:
        """How episodes start: ``reset`` (the env's own resets) or ``near_wall:B`` (see ``wall_start_band_m``)."""
        return "reset" if self.wall_start_band_m is None else f"near_wall:{self.wall_start_band_m:g}"

    @property
    def env_kwargs(self) -> dict[str, Any]:
        """The ``gym.make`` keywords of :attr:`start` (none for the env's own resets)."""
        return {} if self.wall_start_band_m is None else {"wall_start_band_m": self.wall_start_band_m}

    @property
    def parts_dir(self) -> Path:
        """Where the per-episode shards live until the merge."""
        return Path(f"{self.out}.parts")


@dataclass(frozen=True)
class CollectReport:
    """What a :func:`collect` call produced."""

    path: Path
    episodes: int  #: episodes in the dataset (or shards present, if incomplete)
    frames: int  #: frames in the dataset (0 if incomplete)
    new_episodes: int  #: episodes played in this call
    new_frames: int
    wall_s: float
    frames_per_s: float  #: new frames per second of this call
    moved_fraction: float | None  #: fraction of steps in which the object moved (None: unknown env)
    success_fraction: float  #: fraction of episodes with ``is_success`` at some step
    complete: bool  #: the merged dataset exists
    already_existed: bool  #: the dataset was already complete; nothing was done


@dataclass(frozen=True)
class _Identity:
    """The fields that make two collections (and their shards) the same."""

    env_id: str
    seed: int
    max_episode_steps: int
    collector_policy: str
    start: str = "reset"
    """``reset`` or ``near_wall:B`` (:attr:`CollectConfig.start`); files written before it existed hold resets"""

    def differences(self, attrs: dict[str, Any]) -> list[str]:
        have = {"start": "reset", **attrs}
        return [f"{k}: {have.get(k)!r} (existing) vs {v!r} (requested)"
                for k, v in vars(self).items() if have.get(k) != v]

    def start_attrs(self) -> dict[str, str]:
        """The file attribute naming the start (none for resets, so those files stay as they were written)."""
        return {} if self.start == "reset" else {"start": self.start}



@dataclass(frozen=True)
class _EpisodeTask:
    """Everything a worker needs to play and store one episode (picklable)."""

    index: int
    identity: _Identity
    shard: Path
    policy_factory: PolicyFactory
    compression: Compression
    reward_definition: str | None
    env_kwargs: dict[str, Any]
    """``gym.make`` keywords of the collection's start (:attr:`CollectConfig.env_kwargs`)"""


def default_reward_definition(env_id: str, env: gym.Env) -> str:
    """The reward description of a reference system, or the env's ``reward_definition`` attribute."""
    module = REWARD_MODULES.get(env_id.split(":")[-1])
    if module is not None:
        return str(importlib.import_module(module).REWARD_DEFINITION)
    return str(getattr(env.unwrapped, "reward_definition", "unspecified"))


def _play_and_store(task: _EpisodeTask) -> tuple[int, int]:
    """Play episode ``task.index`` and write its shard atomically; returns (index, frames)."""
    ident = task.identity
    env = gym.make(ident.env_id, max_episode_steps=ident.max_episode_steps, **task.env_kwargs)
    try:
        policy = task.policy_factory(ident.env_id)
        rng = np.random.default_rng([ident.seed, task.index])
        episode = run_episode(env, policy, seed=ident.seed + task.index, rng=rng)
        meta = DatasetMeta(
            env_id=ident.env_id, collector_policy=policy_name(policy), seed=ident.seed,
            control_hz=float(env.metadata.get("render_fps") or 0.0),
            reward_definition=task.reward_definition or default_reward_definition(ident.env_id, env),
            extra={"max_episode_steps": ident.max_episode_steps, "episode_index": task.index, **ident.start_attrs()},
        )
    finally:
        env.close()
    write_dataset(task.shard, [episode], meta, compression=task.compression)
    return task.index, len(episode["frames"])


def _init_worker() -> None:
    """Worker setup: one compute thread, and fog_envs imported (registers the env ids)."""
    for var in _THREAD_VARS:
        os.environ[var] = "1"
    if "torch" in sys.modules:
        sys.modules["torch"].set_num_threads(1)
    import fog_envs  # noqa: F401


def _identity(config: CollectConfig, policy_factory: PolicyFactory) -> _Identity:
    try:
        spec = gym.spec(config.env_id)
    except (gym.error.Error, ModuleNotFoundError) as exc:
        raise ValueError(f"unknown env id {config.env_id!r}: {exc}") from exc
    max_steps = config.max_episode_steps or spec.max_episode_steps
    if max_steps is None:
        raise ValueError(f"{config.env_id} has no registered episode length; set max_episode_steps")
    return _Identity(config.env_id, config.seed, int(max_steps), policy_name(policy_factory(config.env_id)),
                     config.start)


def _check_existing(config: CollectConfig, ident: _Identity) -> bool:
    """True if ``config.out`` already holds this collection; raises if it holds another one."""
    if not config.out.exists():
        return False
    try:
        attrs = dataset_info(config.out).attrs
    except DatasetError as exc:
        raise DatasetError(f"{exc}; delete {config.out} to collect it again") from exc
    diffs = ident.differences(attrs)
    if attrs.get("num_episodes") != config.num_episodes:
        diffs.append(f"num_episodes: {attrs.get('num_episodes')!r} (existing) vs {config.num_episodes!r} (requested)")
    if diffs:
        raise CollectMismatchError(f"{config.out} already exists with a different collection config "
                                   f"({'; '.join(diffs)}); delete it or choose another --out")
    return True


def _scan_shards(config: CollectConfig, ident: _Identity) -> set[int]:
    """Indices of the valid shards of this collection already present; deletes stray/unreadable ones."""
    parts = config.parts_dir
    parts.mkdir(parents=True, exist_ok=True)
    for tmp in parts.glob("*.tmp"):
        tmp.unlink()
    done = set()
    for i in range(config.num_episodes):
        shard = parts / SHARD_PATTERN.format(i)
        if not shard.exists():
            continue
        try:
            attrs = dataset_info(shard).attrs
        except DatasetError:
            shard.unlink()  # unreadable: play it again
            continue
        diffs = ident.differences(attrs)
        if attrs.get("episode_index") != i:
            diffs.append(f"episode_index: {attrs.get('episode_index')!r} vs {i}")
        if attrs.get("env_version") != fog_envs.__version__:
            diffs.append(f"env_version: {attrs.get('env_version')!r} (existing) vs {fog_envs.__version__!r} (installed)")
        if diffs:
            raise CollectMismatchError(f"{parts} holds shards of a different collection ({'; '.join(diffs)}); "
                                       f"delete the folder or choose another --out")
        done.add(i)
    return done


def _run_tasks(tasks: list[_EpisodeTask], workers: int, bar: tqdm, t0: float) -> int:
    """Run the tasks (in-process for one worker, else in a spawn process pool); returns frames played."""
    new_frames = 0

    def finished(frames: int) -> None:
        nonlocal new_frames
        new_frames += frames
        bar.update(1)
        bar.set_postfix(frames=new_frames, fps=f"{new_frames / max(time.perf_counter() - t0, 1e-9):.0f}")

    if workers == 1 or len(tasks) <= 1:
        for task in tasks:
            finished(_play_and_store(task)[1])
        return new_frames
    with ProcessPoolExecutor(max_workers=min(workers, len(tasks)), mp_context=get_context("spawn"),
                             initializer=_init_worker) as pool:
        pending: set[Future] = {pool.submit(_play_and_store, task) for task in tasks}
        try:
            while pending:
                done, pending = wait(pending, return_when=FIRST_COMPLETED)
                for fut in done:
                    finished(fut.result()[1])
        except BaseException:
            pool.shutdown(wait=True, cancel_futures=True)
            raise
    return new_frames


def _merge(config: CollectConfig, ident: _Identity) -> None:
    """Merge the shards, in episode order, into ``config.out`` (atomically) and remove the parts folder."""
    shards = [config.parts_dir / SHARD_PATTERN.format(i) for i in range(config.num_episodes)]
    first = dataset_info(shards[0]).attrs
    meta = DatasetMeta(
        env_id=ident.env_id, collector_policy=ident.collector_policy, seed=ident.seed,
        control_hz=first["control_hz"], reward_definition=first["reward_definition"],
        extra={"max_episode_steps": ident.max_episode_steps, "episode_seeding": EPISODE_SEEDING,
               **ident.start_attrs()},
    )
    with DatasetWriter(config.out, meta, compression=config.compression) as writer:
        for shard in shards:
            attrs = dataset_info(shard).attrs
            if (attrs["control_hz"], attrs["reward_definition"]) != (meta.control_hz, meta.reward_definition):
                raise CollectMismatchError(f"{shard}: control_hz / reward_definition differ from episode 0's")
            writer.append(load_arrays(shard, names=ROW_ARRAYS))
    shutil.rmtree(config.parts_dir)


def _summary(path: Path, env_id: str, motion: ObjectMotion | None) -> tuple[int, int, float | None, float]:
    """(episodes, frames, moved fraction, success fraction) of a finished dataset."""
    arrays = load_arrays(path, names=("state", "is_success", "episode_ends"))
    ends = arrays["episode_ends"]
    motion = motion or object_motion(env_id)
    moved = moved_fraction(arrays["state"], ends, motion) if motion is not None else None
    success = np.logical_or.reduceat(arrays["is_success"], np.concatenate([[0], ends[:-1]]))
    return len(ends), int(ends[-1]), moved, float(np.mean(success))


def collect(config: CollectConfig, progress: bool = False, policy_factory: PolicyFactory | None = None,
            motion: ObjectMotion | None = None, stop_after: int | None = None) -> CollectReport:
    """Collect (or resume, or find complete) the play dataset described by ``config``.

    ``policy_factory(env_id)`` builds the play policy (default :func:`fog_envs.play.make_play_policy`; it
    must be picklable when ``workers > 1``). ``motion`` overrides the object-motion definition used for
    ``moved_fraction`` (default: looked up by env id). ``stop_after`` plays at most that many new episodes in
    this call and then returns without merging, as if killed (for tests).
    """
    if policy_factory is None:
        from fog_envs.play import make_play_policy

        policy_factory = functools.partial(make_play_policy, random_action_prob=config.random_action_prob,
                                           nudge_prob=config.nudge_prob, wall_prob=config.wall_prob,
                                           drive_prob=config.drive_prob)
    t0 = time.perf_counter()
    ident = _identity(config, policy_factory)
    if _check_existing(config, ident):
        if config.parts_dir.exists():  # killed between the merge's rename and the clean-up
            shutil.rmtree(config.parts_dir)
        episodes, frames, moved, success = _summary(config.out, config.env_id, motion)
        return CollectReport(config.out, episodes, frames, 0, 0, 0.0, 0.0, moved, success,
                             complete=True, already_existed=True)
    done = _scan_shards(config, ident)
    todo = [i for i in range(config.num_episodes) if i not in done]
    if stop_after is not None:
        todo = todo[:stop_after]
    tasks = [_EpisodeTask(i, ident, config.parts_dir / SHARD_PATTERN.format(i), policy_factory,
                          config.compression, config.reward_definition, config.env_kwargs) for i in todo]
    with tqdm(total=config.num_episodes, initial=len(done), unit="ep", disable=not progress,
              desc=f"collect {config.env_id}") as bar:
        new_frames = _run_tasks(tasks, config.workers, bar, t0)
    present = len(done) + len(todo)
    complete = present == config.num_episodes
    if complete:
        _merge(config, ident)
    wall = time.perf_counter() - t0
    fps = new_frames / wall if wall > 0 else 0.0
    if not complete:
        return CollectReport(config.out, present, 0, len(todo), new_frames, wall, fps, None, float("nan"),
                             complete=False, already_existed=False)
    episodes, frames, moved, success = _summary(config.out, config.env_id, motion)
    return CollectReport(config.out, episodes, frames, len(todo), new_frames, wall, fps, moved, success,
                         complete=True, already_existed=False)
