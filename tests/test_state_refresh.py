"""The state model's online refresh: ring buffer, batch mix, the fit to the policy's transitions, bad config."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from fog_envs.wm.state_model import StateModel, StateModelConfig
from fog_envs.wm.state_model_train import StateTransitions
from fog_envs.wm.state_refresh import StateRefreshConfig, StateRefresher

S, A = 6, 2


def _play(n: int = 64) -> StateTransitions:
    """Play transitions where nothing moves (the tag in reward: −1, to tell them from the policy's)."""
    rng = np.random.default_rng(0)
    s = rng.uniform(0, 1, (n, S)).astype(np.float32)
    return StateTransitions(s, s, rng.uniform(-1, 1, (n, A)).astype(np.float32), -np.ones(n, np.float32), s)


def _model() -> StateModel:
    torch.manual_seed(0)
    return StateModel(StateModelConfig(state_dim=S, action_dim=A, hidden=32, layers=2, reward_hidden=16))


def _policy_batch(n: int, start: int) -> tuple[torch.Tensor, ...]:
    """Transitions whose first state coordinate counts rows (start, start+1, ...) and whose reward is +1; the
    next state is pushed along the action (a response the play data never shows)."""
    s = torch.rand(n, S)
    s[:, 0] = torch.arange(start, start + n, dtype=torch.float32)
    a = torch.rand(n, A) * 2 - 1
    nxt = s.clone()
    nxt[:, 2:4] += 0.05 * a
    return s.clone(), s, a, torch.ones(n), nxt


def test_buffer_is_a_ring_and_batches_mix_in_the_stated_fraction():
    cfg = StateRefreshConfig(capacity=10, batch=8, policy_fraction=0.25)
    r = StateRefresher(_model(), _play(), (2, 3, 4, 5), cfg)
    b = r.batch()  # empty buffer: all play rows
    assert b["reward"].tolist() == [-1.0] * 8
    r.record(*_policy_batch(7, 0))
    r.record(*_policy_batch(7, 7))  # 14 rows into 10 slots: rows 4..13 survive
    assert r.size == 10 and r.cursor == 4
    assert sorted(r.buffer["state"][:, 0].tolist()) == list(range(4, 14))
    b = r.batch()
    assert int((b["reward"] == 1).sum()) == 2 and int((b["reward"] == -1).sum()) == 6  # round(0.25 · 8) = 2
    assert set(b["state"][b["reward"] == 1, 0].tolist()) <= set(range(4, 14))
    assert all(v.shape[0] == 8 for v in b.values())


def test_refresh_fits_the_policys_transitions_and_leaves_the_model_frozen():
    model = _model().eval().requires_grad_(False)
    s_prev, s, a, r, nxt = _policy_batch(256, 0)
    model.fit_scale(torch.cat([nxt - s, torch.zeros(1, S) + 1e-3]))
    refresher = StateRefresher(model, _play(), (2, 3, 4, 5), StateRefreshConfig(batch=128, lr=3e-3, still_jacobian=0.0))
    refresher.record(s_prev, s, a, r, nxt)

    def error() -> float:
        with torch.no_grad():
            return float((model.step(s, s_prev, a) - nxt).abs().mean())

    before = error()
    metrics = refresher.refresh(60)
    assert error() < 0.5 * before
    assert set(metrics) >= {"refresh/dynamics_mse", "refresh/reward_mse"}
    assert not model.training and not any(p.requires_grad for p in model.parameters())
    assert refresher.refresh(0) == {}


@pytest.mark.parametrize("kwargs, match", [({"capacity": 0}, "capacity and batch"),
                                           ({"batch": 0}, "capacity and batch"),
                                           ({"policy_fraction": 1.5}, "policy_fraction")])
def test_bad_refresh_config_is_named(kwargs, match):
    with pytest.raises(ValueError, match=match):
        StateRefreshConfig(**kwargs)
