"""Test-session setup: headless rendering, two threads, quiet pygame; the ``one_thread`` and ``stand_in_local``
fixtures and a tiny Push-T play dataset with a debug world model trained on it (shared by the world-model and
local-model tests)."""

import os
from pathlib import Path

os.environ.setdefault("MUJOCO_GL", "egl")
os.environ.setdefault("SDL_VIDEODRIVER", "dummy")
os.environ.setdefault("SDL_AUDIODRIVER", "dummy")
os.environ.setdefault("PYGAME_HIDE_SUPPORT_PROMPT", "1")

import pytest  # noqa: E402
import torch  # noqa: E402

torch.set_num_threads(2)


class StandInLocal:
    """A stand-in for the state local model of ``StateObserver`` tests: the probe reads every frame as
    ``reading`` (a list of ``sdim`` values); the state model predicts ``s + a``."""

    def __init__(self, reading: list[float]) -> None:
        self.reading = torch.tensor([reading])
        self.sdim = len(reading)

    def read_frames(self, frames):
        return self.reading.clone()

    def start(self, s):
        return torch.cat([s, s], -1)

    def advance(self, x, s):
        return torch.cat([s, x[:, :self.sdim]], -1)

    def predict(self, x, action):
        return x[:, :self.sdim] + torch.as_tensor(action, dtype=torch.float32).reshape(1, -1)


@pytest.fixture
def stand_in_local():
    """The :class:`StandInLocal` class (a factory: ``stand_in_local(reading)``)."""
    return StandInLocal


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
