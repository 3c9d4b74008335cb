"""Foundation speed: reference systems with pixels, play-data collection, dataset reader.

    python benchmarks/bench_foundation.py [--steps 1000] [--dataset datasets/pusht_play.h5]

Prints a table and writes ``benchmarks/results/foundation.json`` (atomically). All rows are measured in
the same run on the same machine; other processes sharing the cores slow every row alike.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

import gymnasium as gym
import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import fog_envs  # noqa: E402,F401
from fog_envs.data.collect import CollectConfig, collect  # noqa: E402
from fog_envs.data.reader import WindowSampler  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results" / "foundation.json"


def env_steps_per_s(env_id: str, steps: int, **kwargs) -> float:
    env = gym.make(env_id, **kwargs)
    env.reset(seed=0)
    rng = np.random.default_rng(0)
    actions = rng.uniform(-1, 1, size=(steps,) + env.action_space.shape).astype(np.float32)
    t0 = time.perf_counter()
    for a in actions:
        _, _, term, trunc, _ = env.step(a)
        if term or trunc:
            env.reset()
    rate = steps / (time.perf_counter() - t0)
    env.close()
    return rate


def collection_frames_per_s(env_id: str, workers: int, episodes: int, steps: int) -> tuple[float, float]:
    with tempfile.TemporaryDirectory() as tmp:
        cfg = CollectConfig(env_id=env_id, out=Path(tmp) / "d.h5", num_episodes=episodes, seed=0,
                            workers=workers, max_episode_steps=steps)
        report = collect(cfg)
        return report.frames_per_s, report.moved_fraction


def reader_windows_per_s(path: Path, window: int, batch: int, rounds: int) -> float:
    sampler = WindowSampler(path, window=window, seed=0)
    sampler.sample(batch)
    t0 = time.perf_counter()
    for _ in range(rounds):
        sampler.sample(batch)
    return rounds * batch / (time.perf_counter() - t0)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=1000)
    parser.add_argument("--dataset", type=Path, default=Path("datasets/pusht_play.h5"))
    args = parser.parse_args()
    torch.set_num_threads(2)
    rows: list[dict] = []
    for env_id in ("RealPushT-v0", "RealPushCube-v0"):
        rows.append({"what": f"{env_id} step, 64x64 pixels", "value": env_steps_per_s(env_id, args.steps),
                     "unit": "steps/s"})
    rows.append({"what": "RealPushT-v0 step, obs_type='state' (no drawing)",
                 "value": env_steps_per_s("RealPushT-v0", args.steps, obs_type="state"), "unit": "steps/s"})
    for env_id in ("RealPushT-v0", "RealPushCube-v0"):
        for workers in (1, 2):
            fps, moved = collection_frames_per_s(env_id, workers, episodes=4, steps=100)
            rows.append({"what": f"collect {env_id}, {workers} worker(s)", "value": fps, "unit": "frames/s",
                         "moved_fraction": moved})
    dataset = args.dataset
    tmp_dir = None
    if not dataset.exists():
        tmp_dir = tempfile.TemporaryDirectory()
        dataset = Path(tmp_dir.name) / "reader.h5"
        collect(CollectConfig(env_id="RealPushT-v0", out=dataset, num_episodes=8, seed=0, workers=2))
    for in_memory in (True,):
        rows.append({"what": f"reader windows L=8 B=64 ({dataset.name})",
                     "value": reader_windows_per_s(dataset, 8, 64, 300), "unit": "windows/s"})
    width = max(len(r["what"]) for r in rows)
    print(f"{'measurement':<{width}}  {'value':>10}  unit")
    for r in rows:
        print(f"{r['what']:<{width}}  {r['value']:>10.0f}  {r['unit']}")
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    out = {"machine": {"cpus": os.cpu_count(), "platform": platform.platform(), "torch": torch.__version__},
           "rows": rows, "time": time.strftime("%Y-%m-%d %H:%M:%S")}
    tmp = RESULTS.with_name(RESULTS.name + ".tmp")
    tmp.write_text(json.dumps(out, indent=2))
    os.replace(tmp, RESULTS)
    if tmp_dir is not None:
        tmp_dir.cleanup()


if __name__ == "__main__":
    main()
