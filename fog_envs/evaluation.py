"""Zero-shot evaluation of a controller on a reference system (the same code for FoG and PPO).

A *controller* turns the real system's observations into actions; it may keep internal state (e.g. an
RSSM filter over real frames). The evaluation reports the success rate, the mean return and, for Push-T,
the mean over episodes of the maximum coverage (the standard Push-T score), and can write mp4 videos.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Callable, Protocol, Sequence

import gymnasium as gym
import numpy as np


class Controller(Protocol):
    """Acts on a real system; ``reset`` at each episode start, then ``act`` every step."""

    def reset(self, obs: np.ndarray, info: dict[str, Any]) -> None: ...

    def act(self, obs: np.ndarray, info: dict[str, Any]) -> np.ndarray: ...


class ZeroActionController:
    """The do-nothing baseline: zero actions (on both reference systems the agent / robot stays where it is)."""

    def __init__(self, action_dim: int) -> None:
        self.action = np.zeros(action_dim, np.float32)

    def reset(self, obs: np.ndarray, info: dict[str, Any]) -> None:
        pass

    def act(self, obs: np.ndarray, info: dict[str, Any]) -> np.ndarray:
        return self.action


@dataclass(frozen=True)
class EvalResult:
    """Figures of one evaluation."""

    env_id: str
    episodes: int
    seed: int
    success_rate: float
    mean_return: float
    std_return: float
    mean_max_coverage: float | None
    mean_episode_length: float
    wall_time_s: float
    returns: list[float]
    successes: list[bool]
    max_coverages: list[float] | None
    videos: list[str]
    episode_seeds: list[int] | None = None
    """each episode's reset seed when they were given one by one; None: episode i used ``seed + i``"""

    def to_json(self, path: str | os.PathLike) -> None:
        """Write the result as JSON atomically."""
        path = Path(path)
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_text(json.dumps(asdict(self), indent=2))
        os.replace(tmp, path)


def episode_gains(agent: np.ndarray, baseline: np.ndarray, threshold: float) -> dict[str, float]:
    """Per-episode comparison of two score arrays over the same episodes: the means, how many episodes
    ``agent`` beats ``baseline`` by more than ``threshold`` (and its mean gain there), how many it loses by more."""
    diff = np.asarray(agent, np.float64) - np.asarray(baseline, np.float64)
    better = diff > threshold
    return {"mean_agent": float(np.mean(agent)), "mean_baseline": float(np.mean(baseline)),
            "improved": int(better.sum()), "mean_gain_where_improved": float(diff[better].mean()) if better.any() else 0.0,
            "worse": int((diff < -threshold).sum()), "episodes": int(len(diff))}


def write_video(frames: list[np.ndarray], path: str | os.PathLike, fps: int) -> None:
    """Write uint8 RGB frames to an mp4 with moviepy (its bundled ffmpeg; no display needed)."""
    from moviepy import ImageSequenceClip

    ImageSequenceClip([np.asarray(f) for f in frames], fps=fps).write_videofile(str(path), logger=None,
                                                                                audio=False)


def evaluate(
    make_controller: Callable[[], Controller],
    env_id: str,
    episodes: int = 50,
    seed: int = 100_000,
    video_dir: str | os.PathLike | None = None,
    video_episodes: int = 3,
    env_kwargs: dict[str, Any] | None = None,
    progress: Callable[[int, int], None] | None = None,
    reset_options: Callable[[int], dict[str, Any]] | None = None,
    episode_seeds: Sequence[int] | None = None,
) -> EvalResult:
    """Run ``episodes`` seeded episodes (episode i uses ``seed + i``) of ``env_id`` with a fresh controller;
    ``reset_options(i)``, when given, are episode i's reset options (e.g. ``{"reset_to_state": ...}``).
    ``episode_seeds``: play exactly these seeded episodes instead (``episodes`` and ``seed`` are then ignored:
    ``episodes`` becomes their count, ``seed`` their first)."""
    if episode_seeds is not None:
        episode_seeds = [int(x) for x in episode_seeds]
        if not episode_seeds:
            raise ValueError("episode_seeds is empty: give at least one seed, or None for seed + i")
        episodes, seed = len(episode_seeds), episode_seeds[0]
    env = gym.make(env_id, render_mode="rgb_array", **(env_kwargs or {}))
    controller = make_controller()
    returns, successes, coverages, lengths, videos = [], [], [], [], []
    t0 = time.perf_counter()
    for ep in range(episodes):
        ep_seed = episode_seeds[ep] if episode_seeds is not None else seed + ep
        obs, info = env.reset(seed=ep_seed, options=reset_options(ep) if reset_options is not None else None)
        controller.reset(obs, info)
        record = video_dir is not None and ep < video_episodes
        frames = [env.render()] if record else []
        total, success, max_cov, steps = 0.0, bool(info.get("is_success", False)), info.get("coverage"), 0
        done = False
        while not done:
            obs, reward, terminated, truncated, info = env.step(controller.act(obs, info))
            total += float(reward)
            steps += 1
            success = success or bool(info.get("is_success", False))
            if "coverage" in info:
                max_cov = max(max_cov or 0.0, float(info["coverage"]))
            if record:
                frames.append(env.render())
            done = terminated or truncated
        returns.append(total)
        successes.append(success)
        lengths.append(steps)
        if max_cov is not None:
            coverages.append(float(max_cov))
        if record:
            Path(video_dir).mkdir(parents=True, exist_ok=True)
            path = Path(video_dir) / f"{env_id}-episode-{ep}.mp4"
            write_video(frames, path, env.metadata.get("render_fps", 10))
            videos.append(str(path))
        if progress is not None:
            progress(ep + 1, episodes)
    env.close()
    return EvalResult(
        env_id=env_id, episodes=episodes, seed=seed, success_rate=float(np.mean(successes)),
        mean_return=float(np.mean(returns)), std_return=float(np.std(returns)),
        mean_max_coverage=float(np.mean(coverages)) if coverages else None,
        mean_episode_length=float(np.mean(lengths)), wall_time_s=time.perf_counter() - t0,
        returns=returns, successes=successes, max_coverages=coverages or None, videos=videos,
        episode_seeds=episode_seeds,
    )
