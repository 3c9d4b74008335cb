"""Test-session setup: headless rendering, two threads, quiet pygame; the ``one_thread`` fixture and a tiny
Push-T play dataset with a debug world model trained on it (shared by the world-model and local-model tests)."""

import os
from pathlib import Path

os.environ.setdefault("MUJOCO_GL", "egl")
os.environ.setdefault("SDL_VIDEODRIVER", "dummy")
os.environ.setdefault("SDL_AUDIODRIVER", "dummy")
os.environ.setdefault("PYGAME_HIDE_SUPPORT_PROMPT", "1")

import pytest  # noqa: E402
import torch  # noqa: E402

torch.set_num_threads(2)


@pytest.fixture
def one_thread():
    """Tiny networks: one thread is as fast, and immune to a busy machine's oversubscription."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="session")
def tiny_dataset(tmp_path_factory) -> Path:
    from fog_envs.data.collect import CollectConfig, collect

    path = tmp_path_factory.mktemp("data") / "pusht_tiny.h5"
    collect(CollectConfig(env_id="RealPushT-v0", out=path, num_episodes=3, seed=0, workers=1, max_episode_steps=24))
    return path


@pytest.fixture(scope="session")
def debug_bundle(tiny_dataset, tmp_path_factory) -> Path:
    from fog_envs.wm.train import WMTrainConfig, train_world_model

    out = tmp_path_factory.mktemp("wm") / "run"
    return train_world_model(WMTrainConfig(task="pusht", data=str(tiny_dataset), out=str(out), preset="debug",
                                           threads=2), progress_bar=False)
