"""Test-session setup: headless rendering, two threads, quiet pygame; the ``one_thread``, ``stand_in_local`` and
``penalised_step`` fixtures and a tiny Push-T play dataset with a debug world model trained on it (shared by the world-model and
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


def check_penalised_step(plain, penalised, seed: int = 3, atol: float | None = None):
    """Step two state-model worlds of four envs, ``plain`` and ``penalised`` (the same but for a reward penalty),
    from the same seeded starts under the same actions, and check that the penalised one moves alike and loses its
    backend's penalty in the reward's value and its action gradient (a nonzero one). Returns ``(x0, action, x_next,
    penalty)``, the penalty (4,) as the backend computes it, detached."""
    x0 = plain.diff.reset(seed=seed)
    torch.testing.assert_close(penalised.diff.reset(seed=seed), x0)  # the same starts: only the reward differs
    action = torch.tensor([[1.0, 0.0, 0.5], [-1.0, 0.3, -1.0], [0.2, 0.2, 0.0], [0.5, -0.5, 1.0]],
                          requires_grad=True)
    x_plain, r_plain, *_ = plain.diff.step(action)
    x_pen, r_pen, *_ = penalised.diff.step(action)
    torch.testing.assert_close(x_pen, x_plain)
    penalty = penalised.backend.penalty(x0, action)
    tol = {} if atol is None else {"atol": atol, "rtol": atol}
    torch.testing.assert_close(r_pen, r_plain - penalty, **tol)
    # the gradient of the reward in the action: the plain one less the penalty's
    g_pen, = torch.autograd.grad(r_pen.sum(), action, retain_graph=True)
    g_plain, = torch.autograd.grad(r_plain.sum(), action, retain_graph=True)
    g_penalty, = torch.autograd.grad(penalty.sum(), action)
    torch.testing.assert_close(g_pen, g_plain - g_penalty)
    assert g_penalty.abs().sum() > 0
    return x0, action.detach(), x_plain.detach(), penalty.detach()


@pytest.fixture
def penalised_step():
    """:func:`check_penalised_step` (a function of the plain and the penalised world)."""
    return check_penalised_step


def check_redrawn_starts(plain, redrawn, n: int = 64) -> tuple[torch.Tensor, torch.Tensor]:
    """Reset ``n`` envs of two state-model backends, ``plain`` and ``redrawn`` (the same but for a share of 0.5 of
    starts redrawn, ``goal_starts`` or ``reset_starts``), from the same seeded generators, and check that 16–48 of
    them moved, that the others are the plain starts exactly and that the moved ones are at rest (the previous
    reading is the current one). Returns ``(plain starts, moved starts)``, the latter's current reading only."""
    for backend in (plain, redrawn):
        backend.reset(torch.arange(n), [torch.Generator().manual_seed(i) for i in range(n)])
    x0, x1 = plain.state(), redrawn.state()
    moved = (x0 != x1).any(-1)
    assert 16 < int(moved.sum()) < 48
    torch.testing.assert_close(x1[~moved], x0[~moved])
    half = x1.shape[1] // 2
    s = x1[moved]
    torch.testing.assert_close(s[:, :half], s[:, half:])  # at rest: the previous reading is the current one
    return x0, s[:, :half]


@pytest.fixture
def redrawn_starts():
    """:func:`check_redrawn_starts` (a function of the plain and the redrawn backend)."""
    return check_redrawn_starts


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
