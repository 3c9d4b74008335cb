"""The deployment filter that fuses readings with the state model's prediction (fog_envs.learned.state_filter)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from fog_envs.learned.state_filter import StateFilterConfig, filter_sequence, fuse


def test_config_rejects_bad_gains_and_broadcasts_one():
    with pytest.raises(ValueError, match="must not be empty"):
        StateFilterConfig(())
    with pytest.raises(ValueError, match=r"\(0, 1\]"):
        StateFilterConfig((0.5, 0.0))
    with pytest.raises(ValueError, match=r"\(0, 1\]"):
        StateFilterConfig((1.5,))
    with pytest.raises(ValueError, match="3 gains for a 6-column state"):
        StateFilterConfig((0.5, 0.5, 1.0)).vector(6)
    assert StateFilterConfig((0.25,)).vector(3).tolist() == [0.25, 0.25, 0.25]
    assert StateFilterConfig((0.5, 1.0)).vector(2).tolist() == [0.5, 1.0]


def test_fuse_by_hand():
    p, r = torch.tensor([[0.0, 2.0]]), torch.tensor([[4.0, 0.0]])
    np.testing.assert_allclose(fuse(p, r, torch.tensor([0.25, 1.0])).numpy(), [[1.0, 0.0]])


def _drift(s, s_prev, a):
    """A linear state model: the state moves by the action (its previous state unused)."""
    return s + a


def test_filter_sequence_by_hand_and_gain_one_is_the_reading():
    readings = torch.tensor([[[0.0]], [[2.0]], [[2.0]]])  # (T, B, S)
    actions = torch.ones(3, 1, 1)
    # K = 1/2: s0 = 0; p1 = 1, s1 = 1 + (2 − 1)/2 = 1.5; p2 = 2.5, s2 = 2.5 + (2 − 2.5)/2 = 2.25
    out = filter_sequence(readings, actions, torch.tensor([0.5]), _drift)
    np.testing.assert_allclose(out[:, 0, 0].numpy(), [0.0, 1.5, 2.25])
    np.testing.assert_array_equal(filter_sequence(readings, actions, torch.tensor([1.0]), _drift).numpy(),
                                  readings.numpy())


def test_filter_with_an_exact_model_shrinks_the_reading_noise():
    gen = torch.Generator().manual_seed(0)
    t, b = 200, 64
    actions = torch.randn(t, b, 2, generator=gen)
    truth = torch.cumsum(torch.cat([torch.zeros(1, b, 2), actions[:-1]]), 0)
    readings = truth + torch.randn(t, b, 2, generator=gen)
    raw = (readings - truth)[50:].norm(dim=-1).median()
    filtered = (filter_sequence(readings, actions, torch.tensor([0.3, 0.3]), _drift) - truth)[50:].norm(dim=-1)
    # steady state of an α filter with an exact model: variance K / (2 − K) of the reading's
    assert filtered.median() < 0.5 * raw


def test_state_observer_fuses_the_reading_with_the_prediction(stand_in_local):
    from fog_envs.learned.state_local import StateObserver

    frame = np.zeros((8, 8, 3), dtype=np.uint8)
    plain = StateObserver(stand_in_local([1.0, 1.0]))  # type: ignore[arg-type]
    fused = StateObserver(stand_in_local([1.0, 1.0]),  # type: ignore[arg-type]
                          state_filter=StateFilterConfig((0.5, 1.0)))
    for obs in (plain, fused):
        np.testing.assert_array_equal(obs.reset(frame).numpy(), [1.0, 1.0, 1.0, 1.0])
    np.testing.assert_array_equal(plain.update(np.array([2.0, 2.0]), frame).numpy(), [1.0, 1.0, 1.0, 1.0])
    # prediction (3, 3), reading (1, 1): column 0 halfway, column 1 the reading
    np.testing.assert_allclose(fused.update(np.array([2.0, 2.0]), frame).numpy(), [2.0, 1.0, 1.0, 1.0])


def test_filter_needs_the_state_local_model(debug_bundle):
    from fog_envs.learned.factory import make_backend

    backend = make_backend("pusht", 1, world_model=str(debug_bundle))
    with pytest.raises(ValueError, match="state_filter needs local_model='state'"):
        backend.make_observer(state_filter=StateFilterConfig((0.5,)))
