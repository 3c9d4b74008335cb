"""The state-space local model: the model, its bundle, its training CLI, and ``local_model="state"`` envs."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch

import fog_envs  # noqa: F401
from fog_envs.learned.factory import make_backend
from fog_envs.wm.bundle import BundleError
from fog_envs.wm.model import WorldModel
from fog_envs.wm.state_model import StateModel, StateModelConfig
from fog_envs.wm.state_model_train import (StateModelTrainConfig, concat_transitions, load_episodes, load_transitions,
                                          open_loop_errors, rollout_mse, train_state_model, training_loss)
from fog_envs.wm.tasks import get_task


def _train_cfg(data: Path, out: Path, **kw) -> StateModelTrainConfig:
    return StateModelTrainConfig(task="pusht", data=str(data), out=str(out), steps=120, batch=64, hidden=32,
                                 layers=2, checkpoint_every=10, threads=1, progress=False, **kw)


@pytest.fixture(scope="module")
def state_bundle(tiny_dataset, tmp_path_factory) -> Path:
    return train_state_model(_train_cfg(tiny_dataset, tmp_path_factory.mktemp("state") / "run"))


def test_step_is_the_state_plus_a_scaled_change_and_the_scale_is_the_rms_change():
    model = StateModel(StateModelConfig(state_dim=3, action_dim=2, hidden=8, layers=1))
    model.fit_scale(torch.tensor([[3.0, 0.0, 1.0], [-4.0, 0.0, -1.0]]))
    torch.testing.assert_close(model.change_scale, torch.tensor([12.5 ** 0.5, 1e-3 * 12.5 ** 0.5, 1.0]))
    last = model.dynamics[-1]
    torch.nn.init.zeros_(last.weight)
    with torch.no_grad():
        last.bias.copy_(torch.tensor([1.0, 2.0, -1.0]))
    s, s_prev, a = torch.randn(4, 3), torch.randn(4, 3), torch.randn(4, 2)
    torch.testing.assert_close(model.step(s, s_prev, a), s + torch.tensor([1.0, 2.0, -1.0]) * model.change_scale)


def _rest_batch() -> dict[str, torch.Tensor]:
    """Three rows of a 3-D state whose dims 1, 2 are passive (scales 0.5, 2): row 0 rests (its passive change is
    0.01 scales), row 1's passive dim 1 moved before (0.2 scales), row 2's dim 2 moves after (0.1 scales); the
    active dim 0 moves in every row."""
    s_prev, s = torch.zeros(3, 3), torch.zeros(3, 3)
    s[:, 0] = 1.0
    s[1, 1] = 0.1
    nxt = s.clone()
    nxt[:, 0] = 2.0
    nxt[0, 1] = 0.005
    nxt[2, 2] = 0.2
    return {"prev_state": s_prev, "state": s, "next_state": nxt, "action": torch.tensor([[0.3, -0.2]] * 3),
            "reward": torch.zeros(3)}


def test_resting_rows_and_the_still_jacobian_penalty_by_hand():
    from fog_envs.wm.state_model_train import resting_rows, still_jacobian_penalty, training_loss

    torch.manual_seed(0)
    model = StateModel(StateModelConfig(state_dim=3, action_dim=2, hidden=8, layers=1))
    model.change_scale.copy_(torch.tensor([1.0, 0.5, 2.0]))
    batch, passive = _rest_batch(), (1, 2)
    assert resting_rows(model, batch, passive, 0.05).tolist() == [True, False, False]
    assert resting_rows(model, batch, passive, 0.25).tolist() == [True, True, True]
    # the squared Frobenius norm of d(predicted passive change)/d(input) at the one resting row
    inp = model.inputs(batch["state"][:1], batch["prev_state"][:1], batch["action"][:1])[0]
    jac = torch.autograd.functional.jacobian(lambda x: model.dynamics(x)[list(passive)], inp)
    assert jac.shape == (2, 8)
    penalty = still_jacobian_penalty(model, batch, passive, 0.05)
    assert penalty.item() == pytest.approx(jac.pow(2).sum().item(), rel=1e-5)
    loss, metrics = training_loss(model, batch, passive, 3.0, 0.05)
    assert loss.item() == pytest.approx(model.loss(batch)[0].item() + 3.0 * penalty.item(), rel=1e-5)
    assert metrics["state_model/still_jacobian"] == pytest.approx(penalty.item())
    # it is differentiable in the weights (it trains them), and absent without resting rows or weight
    assert torch.autograd.grad(penalty, model.dynamics[0].weight)[0].abs().sum() > 0
    assert still_jacobian_penalty(model, batch, passive, 0.001).item() == 0.0
    assert "state_model/still_jacobian" not in training_loss(model, batch, passive, 0.0, 0.05)[1]


def test_still_penalty_row_cap_takes_the_first_resting_rows():
    """``max_rows`` k: the penalty of the batch's first k resting rows alone (a row that moves is never counted)."""
    from fog_envs.wm.state_model_train import still_jacobian_penalty

    torch.manual_seed(0)
    model = StateModel(StateModelConfig(state_dim=3, action_dim=2, hidden=8, layers=1))
    model.change_scale.copy_(torch.tensor([1.0, 0.5, 2.0]))
    one = _rest_batch()
    batch = {k: torch.cat([v[2:], v[:1], v[:1] * 2, v[:1] * 3]) for k, v in one.items()}  # moving, then 3 resting
    rest = {k: v[1:3] for k, v in batch.items()}  # the first two resting rows
    capped = still_jacobian_penalty(model, batch, (1, 2), 0.05, max_rows=2)
    assert capped.item() == pytest.approx(still_jacobian_penalty(model, rest, (1, 2), 0.05).item(), rel=1e-6)
    assert still_jacobian_penalty(model, batch, (1, 2), 0.05, max_rows=9).item() == pytest.approx(
        still_jacobian_penalty(model, batch, (1, 2), 0.05).item(), rel=1e-6)


def test_input_noise_moves_the_inputs_not_the_targets():
    """The same draw ε moves s_t and s_{t−1} (their difference only by the 0.3·std drawn apart); the targets and
    every other entry stay; seeded draws repeat; the training loss reads the noisy inputs and the penalty the
    clean batch."""
    from fog_envs.wm.state_model_train import noisy_inputs, still_jacobian_penalty

    n = 20000
    batch = {"prev_state": torch.zeros(n, 3), "state": torch.ones(n, 3), "next_state": torch.full((n, 3), 2.0),
             "action": torch.zeros(n, 2), "reward": torch.zeros(n)}
    noisy = noisy_inputs(batch, 0.1, torch.Generator().manual_seed(0))
    moved = noisy["state"] - batch["state"]
    apart = (noisy["prev_state"] - batch["prev_state"]) - moved
    assert moved.std().item() == pytest.approx(0.1, rel=0.03)
    assert apart.std().item() == pytest.approx(0.03, rel=0.03)
    assert abs(float(torch.corrcoef(torch.stack([moved.flatten(), apart.flatten()]))[0, 1])) < 0.03
    for key in ("next_state", "action", "reward"):
        assert noisy[key] is batch[key]
    again = noisy_inputs(batch, 0.1, torch.Generator().manual_seed(0))
    torch.testing.assert_close(again["state"], noisy["state"])
    torch.testing.assert_close(noisy_inputs(batch, 0.0)["state"], batch["state"])

    torch.manual_seed(0)
    model = StateModel(StateModelConfig(state_dim=3, action_dim=2, hidden=8, layers=1))
    model.change_scale.copy_(torch.tensor([1.0, 0.5, 2.0]))
    small = _rest_batch()
    torch.manual_seed(3)
    loss, _ = training_loss(model, small, (1, 2), 2.0, 0.05, noise=0.05)
    torch.manual_seed(3)
    expected = model.loss(noisy_inputs(small, 0.05))[0] + 2.0 * still_jacobian_penalty(model, small, (1, 2), 0.05)
    assert loss.item() == pytest.approx(expected.item(), rel=1e-6)
    assert loss.item() != pytest.approx(training_loss(model, small, (1, 2), 2.0, 0.05)[0].item(), rel=1e-6)


def test_noisy_training_resumes_exactly(tiny_dataset, tmp_path):
    """With input noise and a capped penalty a killed run resumes to the uninterrupted run's weights (the noise
    draws are part of the restored random state), and the card records both settings."""
    from fog_envs.wm.trainer import StopRequested

    kw = dict(input_noise=0.004, still_rows=8)
    whole, card = StateModel.load(train_state_model(_train_cfg(tiny_dataset, tmp_path / "whole", **kw)))
    assert (card["train"]["input_noise"], card["train"]["still_rows"]) == (0.004, 8)
    with pytest.raises(StopRequested):
        train_state_model(_train_cfg(tiny_dataset, tmp_path / "killed", stop_after=45, **kw))
    resumed, _ = StateModel.load(train_state_model(_train_cfg(tiny_dataset, tmp_path / "killed", **kw)))
    for k, v in whole.state_dict().items():
        assert torch.equal(v, resumed.state_dict()[k]), k


def test_state_training_config_errors_name_the_field(tiny_dataset, tmp_path):
    with pytest.raises(ValueError, match="input_noise must be >= 0"):
        _train_cfg(tiny_dataset, tmp_path, input_noise=-0.1)
    with pytest.raises(ValueError, match="still_rows must be >= 1"):
        _train_cfg(tiny_dataset, tmp_path, still_rows=0)
    for bad in (dict(weight_decay=-1.0), dict(grad_clip=0.0), dict(final_lr_fraction=1.5)):
        with pytest.raises(ValueError, match="weight_decay must be >= 0, grad_clip > 0 and final_lr_fraction"):
            _train_cfg(tiny_dataset, tmp_path, **bad)


def test_still_jacobian_training_quiets_resting_objects(tiny_dataset, tmp_path, state_bundle):
    """Trained with the penalty (the default), a resting block responds less to the model's inputs than
    trained without it, on the same transitions; a negative weight is named."""
    from fog_envs.wm.state_model_train import still_jacobian_penalty

    spec = get_task("pusht")
    tr = load_transitions(tiny_dataset, spec)
    batch = tr.batch(np.arange(len(tr.state)))
    with_penalty, _ = StateModel.load(state_bundle)
    without, _ = StateModel.load(train_state_model(_train_cfg(tiny_dataset, tmp_path / "free", still_jacobian=0.0)))
    quiet = still_jacobian_penalty(with_penalty, batch, spec.passive_dims, 0.05).item()
    loud = still_jacobian_penalty(without, batch, spec.passive_dims, 0.05).item()
    assert quiet < 0.5 * loud
    with pytest.raises(ValueError, match="still_jacobian must be >= 0"):
        train_state_model(_train_cfg(tiny_dataset, tmp_path / "bad", still_jacobian=-1.0))


def test_transitions_are_the_dataset_rows_with_both_neighbours(tiny_dataset):
    from fog_envs.data.format import open_dataset

    spec = get_task("pusht")
    tr = load_transitions(tiny_dataset, spec)
    with open_dataset(tiny_dataset) as f:
        state, actions, rewards = spec.probe_targets(f["state"][()]), f["actions"][()], f["rewards"][()]
        ends = f["episode_ends"][()]
    assert len(tr.state) == len(state) - 2 * len(ends)  # each episode loses its first and last row
    t = 5  # row 5 of the first episode (24 steps)
    i = t - 1
    np.testing.assert_allclose(tr.prev_state[i], state[t - 1], rtol=1e-6)
    np.testing.assert_allclose(tr.state[i], state[t], rtol=1e-6)
    np.testing.assert_allclose(tr.next_state[i], state[t + 1], rtol=1e-6)
    assert tr.action[i].tolist() == actions[t].tolist() and tr.reward[i] == rewards[t]
    with pytest.raises(ValueError, match="needs RealPushCube-v0"):
        load_transitions(tiny_dataset, get_task("cube"))


def _still_model(state_dim: int = 6) -> StateModel:
    """A state model whose network outputs zero: every step predicts the state it was given."""
    torch.manual_seed(0)
    model = StateModel(StateModelConfig(state_dim=state_dim, hidden=8, layers=1))
    for p in model.dynamics.parameters():
        torch.nn.init.zeros_(p)
    model.change_scale.copy_(torch.linspace(0.5, 2.0, state_dim))
    return model


def test_rollout_transitions_carry_the_next_actions_and_states(tiny_dataset):
    from fog_envs.data.format import open_dataset

    spec = get_task("pusht")
    tr = load_transitions(tiny_dataset, spec, rollout=3)
    with open_dataset(tiny_dataset) as f:
        state, actions = spec.probe_targets(f["state"][()]), f["actions"][()]
        ends = f["episode_ends"][()]
    assert len(tr.state) == len(state) - 4 * len(ends)  # the first row and the last 3 of each episode
    assert tr.future_action.shape == (len(tr.state), 2, 2) and tr.future_state.shape == (len(tr.state), 2, 6)
    i, t = 4, 5  # row 5 of the first episode
    np.testing.assert_allclose(tr.state[i], state[t], rtol=1e-6)
    np.testing.assert_allclose(tr.future_action[i], actions[t + 1:t + 3], rtol=1e-6)
    np.testing.assert_allclose(tr.future_state[i], state[t + 2:t + 4], rtol=1e-6)
    assert load_transitions(tiny_dataset, spec).future_state is None  # one step: no rollout fields
    assert "future_state" not in load_transitions(tiny_dataset, spec).batch(np.arange(2))
    with pytest.raises(ValueError, match="rollout_steps must be >= 1"):
        StateModelTrainConfig(rollout_steps=0)


def test_rollout_loss_by_hand(tiny_dataset):
    """A model that predicts no change stays at s_t: step k's error is (s_t − s_{t+k}) in change scales; the first
    step's is the one-step loss's dynamics term, and the training loss swaps that term for the rollout's mean."""
    spec = get_task("pusht")
    model = _still_model()
    batch = load_transitions(tiny_dataset, spec, rollout=3).batch(np.arange(10))
    targets = torch.cat([batch["next_state"][:, None], batch["future_state"]], 1)
    want = ((batch["state"][:, None] - targets) / model.change_scale).pow(2).mean((0, 2))
    got = rollout_mse(model, batch)
    torch.testing.assert_close(got, want)
    one_step, metrics = model.loss(batch)
    assert metrics["state_model/dynamics_mse"] == pytest.approx(got[0].item(), rel=1e-5)
    loss, metrics = training_loss(model, batch, spec.passive_dims, 0.0, 0.05)
    assert loss.item() == pytest.approx((one_step - got[0] + got.mean()).item(), rel=1e-5)
    assert metrics["state_model/rollout_mse"] == pytest.approx(got.mean().item(), rel=1e-5)
    # the rollout is differentiable through the model's own predictions: step 3's error reaches the weights
    model2 = StateModel(StateModelConfig(hidden=8, layers=1))
    model2.change_scale.copy_(model.change_scale)
    rollout_mse(model2, batch)[2].backward()
    assert model2.dynamics[0].weight.grad.abs().sum() > 0


def test_open_loop_errors_of_a_still_model_are_copying_the_state(tiny_dataset):
    from fog_envs.wm.fidelity import FidelityConfig, _windows
    from fog_envs.wm.stages import PlayArrays

    spec = get_task("pusht")
    ep = load_episodes(tiny_dataset, spec)
    out = open_loop_errors(_still_model(), ep, spec, horizons=(1, 4), num_windows=8, context_len=4)
    assert out["windows"]["count"] == 8
    for h in (1, 4):
        for k in ("agent_px", "block_px", "block_deg"):
            assert out["model"][f"{h}_{k}_median"] == pytest.approx(out["copy"][f"{h}_{k}_median"], abs=1e-4)
        if f"{h}_passive_gain_median" in out["model"]:  # the block moved somewhere: the still model moves it not
            assert out["model"][f"{h}_passive_gain_median"] == 0.0 and out["model"][f"{h}_passive_cos_median"] == 0.0
    # the same windows as the world models' open-loop fidelity (same count, seed and context)
    starts = _windows(PlayArrays(frames=None, actions=ep.action, rewards=ep.reward, is_success=None, state=None,
                                 episode_ends=ep.episode_ends, aux=None, probe=ep.state), 4, 4,
                      FidelityConfig(num_windows=8))
    rows = starts + 3
    copy_h1 = np.median(spec.probe_errors(ep.state[rows], ep.state[rows + 1])["block_px"])
    assert out["copy"]["1_block_px_median"] == pytest.approx(copy_h1, rel=1e-6)
    # split by whether the block moved over the 4 steps: the copy is exact where it rested
    from fog_envs.wm.fidelity import RESPONSE_TOL

    dims = list(spec.passive_dims)
    moved = np.linalg.norm(ep.state[rows + 4][:, dims] - ep.state[rows][:, dims], axis=1) > RESPONSE_TOL
    assert 0 < moved.sum() < len(moved)  # the tiny data has both kinds of window
    assert out["windows"]["4_moved_fraction"] == pytest.approx(moved.mean())
    assert out["copy"]["4_block_px_rest_median"] == 0.0
    errors = spec.probe_errors(ep.state[rows], ep.state[rows + 4])["block_px"]
    assert out["copy"]["4_block_px_moved_median"] == pytest.approx(np.median(errors[moved]), rel=1e-6)
    assert out["model"]["4_block_px_moved_median"] == pytest.approx(np.median(errors[moved]), abs=1e-4)
    # started from readings 3 px to the right of every true state, the still model stays there, and the copy is
    # the same guess
    shifted = ep.state.copy()
    shifted[:, [0, 2]] += 3.0 / 512.0
    off = open_loop_errors(_still_model(), ep, spec, horizons=(1,), num_windows=8, context_len=4, readings=shifted)
    assert off["model"]["1_block_px_median"] == pytest.approx(off["copy"]["1_block_px_median"], abs=1e-4)
    by_hand = np.median(spec.probe_errors(shifted[rows], ep.state[rows + 1])["block_px"])
    assert off["model"]["1_block_px_median"] == pytest.approx(by_hand, rel=1e-4)
    assert by_hand != pytest.approx(copy_h1, abs=0.5)
    same = open_loop_errors(_still_model(), ep, spec, horizons=(1, 4), num_windows=8, context_len=4, readings=ep.state)
    assert same == out
    with pytest.raises(ValueError, match="readings must have the held-out states' shape"):
        open_loop_errors(_still_model(), ep, spec, readings=shifted[:5])
    with pytest.raises(ValueError, match="context_len must be >= 2"):
        open_loop_errors(_still_model(), ep, spec, context_len=1)
    with pytest.raises(ValueError, match="no held-out window of 104 frames"):
        open_loop_errors(_still_model(), ep, spec, horizons=(100,))


def test_rollout_training_lowers_the_rollout_error(tiny_dataset, tmp_path):
    spec = get_task("pusht")
    bundle = train_state_model(_train_cfg(tiny_dataset, tmp_path / "roll", rollout_steps=4))
    model, card = StateModel.load(bundle, task="pusht")
    assert card["train"]["rollout_steps"] == 4
    batch = load_transitions(tiny_dataset, spec, rollout=4).batch(np.arange(40))
    torch.manual_seed(0)
    fresh = StateModel(model.config)
    fresh.change_scale.copy_(model.change_scale)
    with torch.no_grad():
        assert rollout_mse(model, batch).mean() < 0.5 * rollout_mse(fresh, batch).mean()


def test_training_lowers_the_loss_resumes_exactly_and_writes_a_card(tiny_dataset, tmp_path, state_bundle):
    card = json.loads((state_bundle / "card.json").read_text())
    assert card["task"] == "pusht" and len(card["dataset_fingerprint"]) == 64 and card["steps"] == 120
    model, _ = StateModel.load(state_bundle, task="pusht")
    first = torch.load(state_bundle.parent / "checkpoints" / "state_model.pt", weights_only=False)
    assert first["step"] == 120
    # the loss at the trained weights is below the loss at initialisation on the same transitions
    tr = load_transitions(tiny_dataset, get_task("pusht"))
    batch = tr.batch(np.arange(len(tr.state)))
    torch.manual_seed(0)
    fresh = StateModel(model.config)
    fresh.change_scale.copy_(model.change_scale)
    with torch.no_grad():
        assert model.loss(batch)[0] < 0.5 * fresh.loss(batch)[0]
    # killed after 45 steps, then resumed: the same weights as the uninterrupted run
    from fog_envs.wm.trainer import StopRequested

    with pytest.raises(StopRequested):
        train_state_model(_train_cfg(tiny_dataset, tmp_path / "killed", stop_after=45))
    resumed, _ = StateModel.load(train_state_model(_train_cfg(tiny_dataset, tmp_path / "killed")))
    for k, v in model.state_dict().items():
        assert torch.equal(v, resumed.state_dict()[k]), k


def test_bundle_round_trip_and_errors(state_bundle, tmp_path):
    import shutil

    model, card = StateModel.load(state_bundle)
    x = torch.randn(5, 6)
    again, _ = StateModel.load(state_bundle, task="pusht")
    torch.testing.assert_close(again.step(x, x, torch.zeros(5, 2)), model.step(x, x, torch.zeros(5, 2)))
    with pytest.raises(BundleError, match="trained for task 'pusht', not 'cube'"):
        StateModel.load(state_bundle, task="cube")
    with pytest.raises(BundleError, match="no world-model bundle"):
        StateModel.load(tmp_path / "nowhere")
    broken = tmp_path / "broken"
    shutil.copytree(state_bundle, broken)
    (broken / "weights.safetensors").write_bytes(b"not safetensors")
    with pytest.raises(BundleError, match="corrupt"):
        StateModel.load(broken)
    (broken / "card.json").unlink()
    with pytest.raises(BundleError, match="card.json is missing"):
        StateModel.load(broken)


def test_world_model_bundle_is_not_a_state_model(debug_bundle):
    with pytest.raises(BundleError, match="not a fog-state-model config"):
        StateModel.load(debug_bundle)


def _state_backend(debug_bundle, state_bundle, forward_model="diffusion", n=2):
    return make_backend("pusht", n, world_model=str(debug_bundle), forward_model=forward_model,
                        local_model="state", state_model=str(state_bundle), bf16=False)


def test_local_state_is_two_probe_readings_and_the_local_step_is_the_state_model(debug_bundle, state_bundle,
                                                                                 one_thread):
    backend = _state_backend(debug_bundle, state_bundle)
    model, local = backend.model, backend.state_local
    gens = [torch.Generator().manual_seed(i) for i in range(2)]
    backend.reset(torch.arange(2), gens)
    decode = lambda z: model.autoencoder.output_to_frames(model.autoencoder.decode_float(z).float())  # noqa: E731
    with torch.no_grad():
        expected = torch.cat([model.probe(decode(backend.ctx[:, -1])), model.probe(decode(backend.ctx[:, -2]))], -1)
    assert backend.state_dim == 12
    torch.testing.assert_close(backend.state(), expected)
    x0 = backend.state()
    out = backend.global_step(torch.tensor([[0.5, -0.5], [0.0, 1.0]]), gens)
    with torch.no_grad():
        s1 = model.probe(decode(backend.ctx[:, -1]))
    torch.testing.assert_close(out.next_state, torch.cat([s1, x0[:, :6]], -1))
    a = torch.randn(2, 2)
    sm = local.state_model
    torch.testing.assert_close(backend.local_step(x0, a), torch.cat([sm.step(x0[:, :6], x0[:, 6:], a), x0[:, :6]], -1))
    from fog_envs.real.pusht_reward_torch import reward as task_reward

    assert local.reward_source == "task"  # Push-T has a differentiable reward formula
    torch.testing.assert_close(backend.local_reward(x0), task_reward(x0[:, :6]))
    from fog_envs.learned.state_local import StateLocalModel

    learned = StateLocalModel(model, sm, reward="model")
    torch.testing.assert_close(learned.reward(x0), sm.reward(x0[:, :6]))
    assert backend.refresh_local_model(4) == {}


def _one_differentiable_step(backend):
    """One step of a fresh :class:`DifferentiableEnv` over ``backend`` with fixed actions, ``(reward + state).sum()``
    back-propagated: ``(x0, x1, actions with their gradient, a fresh leaf copy of the actions)``."""
    from fog_envs.learned.diff import DifferentiableEnv

    diff = DifferentiableEnv(backend, 10)
    diff.reset(seed=0)
    x0 = diff.cut_graph()
    a = torch.tensor([[0.3, -0.2], [-0.7, 0.1]], requires_grad=True)
    x1, reward, *_ = diff.step(a)
    (reward.sum() + x1.sum()).backward()
    return x0, x1, a, a.detach().clone().requires_grad_(True)


def test_differentiable_step_takes_the_state_models_jacobian_at_the_global_state(debug_bundle, state_bundle,
                                                                                 one_thread):
    backend = _state_backend(debug_bundle, state_bundle)
    x0, x1, a, a_ref = _one_differentiable_step(backend)
    local = backend.state_local
    x1_local = local.step(x0, a_ref)
    x1_star = x1_local + (backend.state() - x1_local).detach()  # the global value, the local Jacobian
    (local.reward(x1_star).sum() + x1_star.sum()).backward()
    torch.testing.assert_close(a.grad, a_ref.grad)
    torch.testing.assert_close(x1.detach(), backend.state())  # values are the global model's


def test_state_forward_model_dreams_with_the_state_model_and_the_tasks_formulas(debug_bundle, state_bundle,
                                                                              one_thread):
    """forward_model='state': the next state is the state model's step, the reward the task's formula and the
    success/coverage its soft coverage, no frame is generated, and the differentiable step is plain BPTT through
    the state model (value and Jacobian from the same function)."""
    import gymnasium as gym

    from fog_envs.real.pusht_reward import SUCCESS_COVERAGE
    from fog_envs.real.pusht_reward_torch import reward as task_reward, soft_coverage

    backend = _state_backend(debug_bundle, state_bundle, forward_model="state")
    gens = [torch.Generator().manual_seed(i) for i in range(2)]
    backend.reset(torch.arange(2), gens)
    x0, ctx0 = backend.state(), backend.ctx.clone()
    a = torch.tensor([[0.5, -0.5], [0.0, 1.0]])
    out = backend.global_step(a, gens)
    with torch.no_grad():
        want = backend.state_local.step(x0, a)
    torch.testing.assert_close(out.next_state, want)
    torch.testing.assert_close(backend.state(), want)
    torch.testing.assert_close(out.reward, task_reward(want[:, :6]))
    torch.testing.assert_close(out.aux["coverage"], soft_coverage(want[:, :6]))
    assert out.is_success.tolist() == (soft_coverage(want[:, :6]) >= SUCCESS_COVERAGE).tolist()
    torch.testing.assert_close(backend.ctx[:, -1], ctx0[:, -1])  # no frame generated
    with pytest.raises(ValueError, match="generates no frames: use obs_type='latent'"):
        backend.render_obs("pixels")
    x0, x1, act, a_ref = _one_differentiable_step(backend)
    x1_ref = backend.state_local.step(x0, a_ref)
    (task_reward(x1_ref[:, :6]).sum() + x1_ref.sum()).backward()
    torch.testing.assert_close(act.grad, a_ref.grad)
    torch.testing.assert_close(x1.detach(), x1_ref.detach())
    env = gym.make_vec("WMPushT-v0", num_envs=2, vectorization_mode="vector_entry_point", obs_type="latent",
                       world_model=str(debug_bundle), forward_model="state", local_model="state",
                       state_model=str(state_bundle))
    obs, _ = env.reset(seed=0)
    assert obs.shape == (2, 12) and env.step(np.zeros((2, 2), np.float32))[1].shape == (2,)
    with pytest.raises(ValueError, match="generates no frames"):
        gym.make_vec("WMPushT-v0", num_envs=1, vectorization_mode="vector_entry_point", obs_type="pixels",
                     world_model=str(debug_bundle), forward_model="state", local_model="state",
                     state_model=str(state_bundle))
    with pytest.raises(ValueError, match="pass local_model='state'"):
        make_backend("pusht", 1, world_model=str(debug_bundle), forward_model="state")


def test_goal_starts_move_that_share_of_starts_near_the_goal_at_rest_and_leave_the_rest(debug_bundle, state_bundle,
                                                                                          redrawn_starts, one_thread):
    """``goal_starts=f``: each start is, with probability f, the task's near-goal state (at rest); the other
    starts are the real windows exactly as without the option; refused outside the state world."""
    from fog_agent.train import AgentTrainConfig, make_envs, resolve_sapo_config
    from fog_envs.real.pusht_reward import GOAL_POSE

    kw = {"world_model": str(debug_bundle), "forward_model": "state", "local_model": "state",
          "state_model": str(state_bundle), "bf16": False}
    _, s = redrawn_starts(make_backend("pusht", 64, **kw), make_backend("pusht", 64, goal_starts=0.5, **kw))
    d = (s[:, 2:4] * 512 - torch.tensor(GOAL_POSE[:2], dtype=torch.float32)).norm(dim=-1)
    assert d.max() <= 60.0 + 1e-3
    with pytest.raises(ValueError, match="needs forward_model='state'"):
        make_backend("pusht", 1, world_model=str(debug_bundle), local_model="state", state_model=str(state_bundle),
                     goal_starts=0.5)
    with pytest.raises(ValueError, match=r"fraction of episode starts in \[0, 1\], got 1.5"):
        make_backend("pusht", 1, world_model=str(debug_bundle), forward_model="state", local_model="state",
                     state_model=str(state_bundle), goal_starts=1.5)
    cfg = AgentTrainConfig(env_id="WMPushT-v0", preset="debug", world_model=str(debug_bundle), forward_model="state",
                           local_model="state", state_model=str(state_bundle), goal_starts=0.25)
    assert make_envs(cfg, resolve_sapo_config(cfg)).backend.goal_starts == 0.25


def test_state_guided_world_model_trains_steps_with_the_state_model_and_is_measured(tiny_dataset, debug_bundle,
                                                                                  state_bundle, tmp_path, one_thread):
    """--state-guidance: the denoiser (warm-started from an unguided one) is conditioned on the probe targets of
    the last context row and the target row; in the env the state model steps the local state and the frame is
    sampled from the states before and after; fidelity needs the state model too."""
    from fog_envs.learned.state_local import StateLocalModel
    from fog_envs.wm import stages
    from fog_envs.wm.edm import EDMConfig
    from fog_envs.wm.fidelity import FidelityConfig, hold_still, open_loop
    from fog_envs.wm.train import WMTrainConfig, load_play_arrays, train_world_model

    bundle = train_world_model(WMTrainConfig(task="pusht", data=str(tiny_dataset), out=str(tmp_path / "sg"),
                                             preset="debug", threads=1, init_from=str(debug_bundle),
                                             reuse=("autoencoder", "reward", "rssm", "probe"),
                                             warm_start=("denoiser",), state_guidance=True), progress_bar=False)
    model = WorldModel.load(bundle)
    assert model.state_guided and model.config.denoiser.state_dim == 6
    with pytest.raises(ValueError, match="self-forcing"):  # refused before any data is read
        train_world_model(WMTrainConfig(task="pusht", data=str(tiny_dataset), out=str(tmp_path / "sf"), preset="debug",
                                        init_from=str(debug_bundle), warm_start=("denoiser",), state_guidance=True,
                                        rollout_prob=0.5), progress_bar=False)
    assert model.config.denoiser.state_points == ((0, 1), (2, 3))
    # the training batches carry the true probe targets of the last context row and of the target row
    data = load_play_arrays(tiny_dataset, "pusht")
    data.latents = stages.encode_all(model.autoencoder, data.frames, torch.device("cpu"), False)
    L = model.context_len
    starts = stages.valid_window_starts(data.episode_ends, L + 1)
    batch = stages.denoiser_batch(data, L, np.random.default_rng(0), 4, starts, states=True)
    rng = np.random.default_rng(0)
    rows = rng.choice(starts, size=4)[:, None] + np.arange(L + 1)[None]
    np.testing.assert_array_equal(batch["states"].numpy(), data.probe[rows[:, -2:]])
    batch["generated"][:] = 1
    with pytest.raises(ValueError, match="self-forcing"):
        stages.make_denoiser_loss(EDMConfig(), L)(model.denoiser, batch)
    # the env: the state model steps, the denoiser draws the frame of the states before and after
    backend = make_backend("pusht", 2, world_model=str(bundle), local_model="state", state_model=str(state_bundle),
                           bf16=False)
    backend.reset(torch.arange(2), [torch.Generator().manual_seed(i) for i in range(2)])
    x0, ctx0, act0 = backend.state(), backend.ctx.clone(), backend.ctx_act.clone()
    a = torch.tensor([[0.5, -0.5], [0.0, 1.0]])
    out = backend.global_step(a, [torch.Generator().manual_seed(10 + i) for i in range(2)])
    local = backend.state_local
    with torch.no_grad():
        x1 = local.step(x0, a)
        gens = [torch.Generator().manual_seed(10 + i) for i in range(2)]
        noise = torch.stack([torch.randn(ctx0.shape[2:], generator=g) for g in gens])
        ctx_noise = torch.stack([torch.randn(ctx0.shape[1:], generator=g) for g in gens])
        act0[:, -1] = a
        z = model.next_latent_fixed(ctx0, act0, noise, ctx_noise, state=local.guide_states(x0, x1))
    torch.testing.assert_close(out.next_state, x1)
    torch.testing.assert_close(backend.ctx[:, -1], z)
    with pytest.raises(ValueError, match="state-guided: it needs local_model='state'"):
        make_backend("pusht", 1, world_model=str(bundle))
    # fidelity: measured with the state model as the guide, refused without it
    guide = StateLocalModel(model, StateModel.load(state_bundle)[0])
    fcfg = FidelityConfig(num_windows=4, horizons=(1, 2))
    res = open_loop(model, data, fcfg, guide)
    assert np.isfinite(res["diffusion"]["2"]["probe_block_px_median"])
    assert np.isfinite(hold_still(model, data, fcfg, guide)["diffusion"]["1"]["psnr_median"])
    with pytest.raises(ValueError, match="pass a state model"):
        open_loop(model, data, fcfg)


def test_silhouette_guided_renderer_trains_and_steps_in_the_env(tiny_dataset, debug_bundle, state_bundle, tmp_path,
                                                               one_thread):
    """--silhouette pusht --withhold-context: the bundle records both, its denoiser sees the drawn objects of the
    states before and after, and the env steps with it as with any state-guided bundle."""
    from fog_envs.wm.train import WMTrainConfig, train_world_model

    bundle = train_world_model(WMTrainConfig(task="pusht", data=str(tiny_dataset), out=str(tmp_path / "sil"),
                                             preset="debug", threads=1, init_from=str(debug_bundle),
                                             reuse=("autoencoder", "reward", "rssm", "probe"),
                                             warm_start=("denoiser",), state_guidance=True, withhold_context=True,
                                             silhouette="pusht"), progress_bar=False)
    model = WorldModel.load(bundle)
    assert (model.config.denoiser.silhouette, model.config.denoiser.withhold_context) == ("pusht", True)
    backend = make_backend("pusht", 2, world_model=str(bundle), local_model="state", state_model=str(state_bundle),
                           bf16=False)
    backend.reset(torch.arange(2), [torch.Generator().manual_seed(i) for i in range(2)])
    before = backend.ctx[:, -1].clone()
    out = backend.global_step(torch.tensor([[0.5, -0.5], [0.0, 1.0]]),
                              [torch.Generator().manual_seed(10 + i) for i in range(2)])
    assert torch.isfinite(out.next_state).all() and torch.isfinite(backend.ctx).all()
    assert not torch.allclose(backend.ctx[:, -1], before)


def test_cube_reward_in_torch_is_the_reference_reward_on_probe_targets():
    from fog_envs.real import cube_reward
    from fog_envs.real.cube_reward_torch import outcome, reward

    rng = np.random.default_rng(0)
    states = np.concatenate([rng.uniform(-1.5, 1.5, (64, 2)), rng.uniform(-3, 3, (64, 1)),
                             rng.uniform(-1.5, 1.5, (64, 2)), rng.uniform(-3, 3, (64, 1))], 1)
    states[:8, 3:5] = np.array([0.75, 0.75]) + rng.uniform(-0.2, 0.2, (8, 2))  # some inside the goal
    states[8:16, 0:2] = states[8:16, 3:5] + 0.2  # some touching the cube
    spec = get_task("cube")
    probe = torch.from_numpy(spec.probe_targets(states)).double()
    np.testing.assert_allclose(reward(probe).numpy(), cube_reward.reward_batch(states), rtol=1e-6, atol=1e-6)
    success, aux = outcome(probe)
    assert success.tolist() == [cube_reward.is_success(s) for s in states] and any(success.tolist())
    np.testing.assert_allclose(aux["cube_goal_distance"].numpy(), cube_reward.cube_goal_distance(states), rtol=1e-6)
    assert spec.state_reward is not None and spec.state_outcome is not None


def test_reference_forward_model_with_the_state_local_model_reads_real_frames(debug_bundle, state_bundle, one_thread):
    import gymnasium as gym

    backend = _state_backend(debug_bundle, state_bundle, forward_model="reference", n=1)
    backend.reset(torch.arange(1), [torch.Generator().manual_seed(0)])
    env = gym.make("RealPushT-v0")
    obs, _ = env.reset(seed=backend._seeds[0])
    probe = backend.model.probe
    with torch.no_grad():
        s0 = probe(torch.as_tensor(obs)[None])
        torch.testing.assert_close(backend.state(), torch.cat([s0, s0], -1))
        backend.global_step(torch.tensor([[1.0, 0.0]]), [torch.Generator()])
        s1 = probe(torch.as_tensor(env.step(np.array([1.0, 0.0], np.float32))[0])[None])
    torch.testing.assert_close(backend.state(), torch.cat([s1, s0], -1))
    observer = backend.make_observer()
    torch.testing.assert_close(observer.reset(obs), torch.cat([s0, s0], -1)[0])


def test_local_model_errors_name_the_problem(debug_bundle, state_bundle):
    with pytest.raises(ValueError, match="unknown local_model 'mlp'"):
        make_backend("pusht", 1, world_model=str(debug_bundle), local_model="mlp")
    with pytest.raises(ValueError, match="state_model= is the model of local_model='state'"):
        make_backend("pusht", 1, world_model=str(debug_bundle), state_model=str(state_bundle))
    with pytest.raises(ValueError, match="forward_model='rssm' dreams with the RSSM"):
        _state_backend(debug_bundle, state_bundle, forward_model="rssm")
    with pytest.raises(ValueError, match="toy env"):
        make_backend("toy", 1, local_model="state")
    import gymnasium as gym

    with pytest.raises(ValueError, match="does not combine with local_model='state'"):
        gym.make_vec("WMPushT-v0", num_envs=1, vectorization_mode="vector_entry_point", world_model=str(debug_bundle),
                     local_model="state", state_model=str(state_bundle), gradient_model="diffusion")
    with pytest.raises(BundleError, match="not a fog-state-model config"):
        make_backend("pusht", 1, world_model=str(debug_bundle), local_model="state", state_model=str(debug_bundle))
    from fog_envs.learned.state_local import StateLocalModel

    with pytest.raises(ValueError, match="does not fit task 'pusht'"):
        StateLocalModel(WorldModel.load(debug_bundle), StateModel(StateModelConfig(state_dim=5)))
    with pytest.raises(ValueError, match="unknown reward 'exact'"):
        StateLocalModel(WorldModel.load(debug_bundle), StateModel(StateModelConfig()), reward="exact")


def test_gradient_against_the_truth_with_perfect_state_readings_is_the_state_models_chain(
        tiny_dataset, debug_bundle, state_bundle, one_thread):
    """``true_cos_state_on_true_states``: the state model's gradient along the true rollout, straight through
    at the true states (values true, Jacobians the model's), against central differences through RealPushT."""
    from fog_envs.learned.state_local import StateLocalModel
    from fog_envs.wm.fidelity import FidelityConfig, _gradient_problem, _reference_differences, reference_gradient_cosine
    from fog_envs.wm.train import load_play_arrays

    model = WorldModel.load(debug_bundle)
    data = load_play_arrays(tiny_dataset, "pusht")
    local = StateLocalModel(model, StateModel.load(state_bundle)[0])
    cfg = FidelityConfig(grad_windows=3, grad_horizon=2)
    result = reference_gradient_cosine(model, data, cfg, local)
    p = _gradient_problem(model, data, cfg)
    true_fd, _, states = _reference_differences(model, data, p, cfg)
    acts = p.future.clone().requires_grad_(True)
    x, total = local.start(states[:, 0]), 0.0
    for k in range(2):
        pred = local.step(x, acts[:, k])
        x = pred + (local.advance(x, states[:, k + 1]) - pred).detach()
        total = total + local.reward(x).sum()
    (grad,) = torch.autograd.grad(total, acts)
    cos = torch.nn.functional.cosine_similarity(grad.reshape(3, -1), true_fd, dim=1)
    assert result["true_cos_state_on_true_states_mean"] == pytest.approx(float(cos.mean()), abs=1e-5)
    moved = (states[:, :, 2:] - states[:, :1, 2:]).abs().amax(dim=(1, 2)) > 2e-3  # block pose dims
    assert result["windows_object_moved"] == int(moved.sum())
    for name, rows in (("moving", moved), ("resting", ~moved)):  # the split: the same cosines, by window
        key = f"true_cos_state_on_true_states_{name}_mean"
        if rows.any():
            assert result[key] == pytest.approx(float(cos[rows].mean()), abs=1e-5)
        else:
            assert key not in result
    assert "true_cos_state_on_true_states_mean" not in reference_gradient_cosine(model, data, cfg)  # RSSM: no such row


def test_object_moved_flags_windows_where_a_passive_dimension_leaves_its_start():
    from fog_envs.wm.fidelity import OBJECT_MOVED_TOL, object_moved

    states = torch.zeros(3, 4, 6)
    states[1, 2, 3] = 2 * OBJECT_MOVED_TOL  # the block's y moves in window 1
    states[2, :, 0] = 1.0  # only the agent moves in window 2
    states[2, 3, 4] = 0.5 * OBJECT_MOVED_TOL  # and the block's angle jitters below the tolerance
    assert object_moved(states, (2, 3, 4, 5)).tolist() == [False, True, False]
    assert not object_moved(states, ()).any()


def test_agent_trains_with_the_state_local_model_and_fog_eval_rebuilds_it(debug_bundle, state_bundle, tmp_path):
    """``fog-train --local-model state``: the agent sees 2 × probe targets; the checkpoint remembers the local
    model, so ``fog-eval`` filters the real frames with the same probe and state model."""
    from dataclasses import asdict, replace

    from fog_agent.evaluate import EvalConfig, learned_env_for, load_agent, load_companions, run_evaluation
    from fog_agent.planner import PlannerConfig
    from fog_agent.train import AgentTrainConfig, train_agent
    from fog_envs.learned.state_local import StateObserver

    run = tmp_path / "agent"
    train_agent(AgentTrainConfig(env_id="WMPushT-v0", preset="debug", run_dir=str(run), world_model=str(debug_bundle),
                                 local_model="state", state_model=str(state_bundle), eval_env_id=None),
                progress=False)
    agent, ckpt = load_agent(run / "checkpoints" / "latest.pt")
    assert ckpt["obs_dim"] == 12 and ckpt["local_model"] == "state" and ckpt["state_model"] == str(state_bundle)
    assert isinstance(learned_env_for(ckpt).make_observer(), StateObserver)
    result = run_evaluation(EvalConfig(run_dir=str(run), episodes=1, video_episodes=0))
    assert result["env_id"] == "RealPushT-v0" and result["episodes"] == 1
    # --episode-seeds: exactly those resets (here the default's first), recorded in the JSON
    seeded = run_evaluation(EvalConfig(run_dir=str(run), episode_seeds=(100_000,), video_episodes=0, tag="seeds"))
    assert seeded["episode_seeds"] == [100_000] and seeded["returns"] == result["returns"]
    # --plan: the planner chooses the actions in a (here: the same) state model; its own JSON says so
    tiny = PlannerConfig(horizon=2, samples=4, policy_samples=1, iterations=1, elites=2)
    planned = run_evaluation(EvalConfig(run_dir=str(run), episodes=1, video_episodes=0, plan=True, planner=tiny,
                                        plan_state_model=str(state_bundle)))
    saved = json.loads((run / "eval_RealPushT-v0_plan.json").read_text())
    assert saved["planner"] == {**asdict(tiny), "state_model": str(state_bundle), "companions": []}
    assert planned["episodes"] == 1
    # --companions: other agents' critics and policies join the planner (here the agent's own checkpoint again);
    # one trained on another local state is refused by name
    latest = str(run / "checkpoints" / "latest.pt")
    ens = run_evaluation(EvalConfig(run_dir=str(run), episodes=1, video_episodes=0, plan=True, planner=tiny,
                                    companions=(latest,), tag="ens"))
    assert ens["planner"]["companions"] == [latest] and ens["episodes"] == 1
    with pytest.raises(ValueError, match="trained with another state_model"):
        load_companions({**ckpt, "state_model": "pusht_state_block"}, (str(run),))
    # without --plan the agents act with their mean tanh(μ): the agent and itself again act as the agent alone
    mean = run_evaluation(EvalConfig(run_dir=str(run), episodes=1, video_episodes=0, companions=(latest,),
                                     tag="mean"))
    assert mean["companions"] == [latest] and mean["returns"] == result["returns"]
    with pytest.raises(ValueError, match="--companions and --stochastic"):
        EvalConfig(companions=(latest,), stochastic=True)
    # --world-model: deploy with another bundle of the task (here the same one); --tag names the output
    other = run_evaluation(EvalConfig(run_dir=str(run), episodes=1, video_episodes=0, world_model=str(debug_bundle),
                                      tag="other_probe"))
    assert other["world_model"] == str(debug_bundle) and (run / "eval_RealPushT-v0_other_probe.json").is_file()
    # --readers: the shipped readers refine the probe's readings in turn; the JSON names them
    readers = ("pusht_local_reader", "pusht_goal_reader")
    fine = run_evaluation(EvalConfig(run_dir=str(run), episodes=1, video_episodes=0, readers=readers, tag="readers"))
    assert fine["readers"] == list(readers) and fine["episodes"] == 1
    # --filter-gains: the readings fused with the state model's prediction; the JSON names the gains
    fused = run_evaluation(EvalConfig(run_dir=str(run), episodes=1, video_episodes=0, filter_gains=(0.5,), tag="f"))
    assert fused["filter_gains"] == [0.5] and fused["episodes"] == 1
    # --odometry: the pusher dead-reckoned from the actions; the JSON names the bundle
    odo = run_evaluation(EvalConfig(run_dir=str(run), episodes=1, video_episodes=0, readers=readers,
                                    odometry="pusht_odometry", tag="odo"))
    assert odo["odometry"] == "pusht_odometry" and odo["episodes"] == 1
    # --deployment pusht: all of the above as the best Push-T deployment sets them; a planner budget given wins
    # (4 elites: the deployment keeps 4 of them between steps)
    best = run_evaluation(EvalConfig(run_dir=str(run), episodes=1, video_episodes=0, deployment="pusht",
                                     planner=replace(tiny, elites=4), tag="best"))
    assert best["deployment"] == "pusht" and best["readers"] == ["pusht_agent_finder", *readers]
    assert best["odometry"] == "pusht_odometry" and best["planner"]["value_disagreement"] == 1.5
    assert best["planner"]["state_model"] == "pusht_state_block" and best["planner"]["samples"] == tiny.samples
    assert best["planner"]["finish_reward"] == 0.9 and (run / "eval_RealPushT-v0_plan_best.json").is_file()
    # benchmarks/bench_pusher_odometry.py: the readers' and the odometry's pusher errors on the same frames
    from benchmarks.bench_pusher_odometry import measure as measure_odometry

    pusher = measure_odometry(str(run), 1, 0, 20, "pusht_odometry", ("pusht_local_reader",),
                              ("median:0", "mean:5"))["pusher_px"]
    assert set(pusher) == {"readers", "median:0", "mean:5"} and pusher["mean:5"]["all"]["frames"] == 20
    # benchmarks/bench_policy_fixed_points.py: the policy alone, its actions sampled, the pusher dead-reckoned
    from benchmarks.bench_policy_fixed_points import deploy
    from fog_envs.wm.pusher_odometry import PusherOdometry

    row = deploy(agent, learned_env_for(ckpt), PusherOdometry.load("pusht_odometry")[0], True, 1, 0)
    assert 0.0 <= row["mean_max_coverage"] <= 1.0 and row["parked"] == len(row["parked_episodes"]) <= 1
    # benchmarks/deploy_readings.py plans in another state model too, and only when planning
    from benchmarks.deploy_readings import measure
    from fog_envs.learned.state_filter import StateFilterConfig

    row = measure(str(run), 1, 0, tiny, readings=("true", "probe"), plan_state_model=str(state_bundle),
                  state_filter=StateFilterConfig((0.5,)))
    assert {"agent_px", "block_px", "block_deg"} <= set(row["probe"]["probe_error_median"]) and "true" in row
    with pytest.raises(ValueError, match="--plan-state-model needs --plan"):
        measure(str(run), 1, 0, None, readings=("true",), plan_state_model=str(state_bundle))


def test_cli_trains_and_writes_a_bundle_with_heldout_errors(tiny_dataset, tmp_path, capsys):
    from fog_envs.wm.state_cli import main

    out = tmp_path / "cli"
    assert main(["--task", "pusht", "--data", str(tiny_dataset), "--heldout", str(tiny_dataset), "--out", str(out),
                 "--steps", "3", "--batch", "16", "--hidden", "8", "--layers", "1", "--no-progress"]) == 0
    assert "state model written to" in capsys.readouterr().out
    card = json.loads((out / "bundle" / "card.json").read_text())
    assert card["heldout"]["transitions"] == len(load_transitions(tiny_dataset, get_task("pusht")).state)
    assert {"model_agent_px_median", "copy_agent_px_median", "reward_abs_err_mean"} <= set(card["heldout"])
    assert {"16_block_px_median", "4_agent_px_median"} <= set(card["heldout"]["open_loop"]["model"])


def test_extra_datasets_are_trained_on_and_named_in_the_card(tiny_dataset, tmp_path):
    from dataclasses import replace

    from fog_envs.data.format import dataset_fingerprint

    spec = get_task("pusht")
    one = load_transitions(tiny_dataset, spec, rollout=4)
    both = concat_transitions([one, load_transitions(tiny_dataset, spec, rollout=4)])
    assert len(both.state) == 2 * len(one.state)  # each file's windows stay inside that file
    np.testing.assert_array_equal(both.future_state[len(one.state):], one.future_state)
    with pytest.raises(ValueError, match="different rollout lengths"):
        concat_transitions([one, load_transitions(tiny_dataset, spec)])
    cfg = replace(_train_cfg(tiny_dataset, tmp_path / "extra"), steps=2, extra_data=(str(tiny_dataset),))
    card = json.loads((train_state_model(cfg) / "card.json").read_text())
    assert card["transitions"] == 2 * len(load_transitions(tiny_dataset, spec).state)
    assert card["extra_datasets"] == [{"dataset": str(tiny_dataset),
                                       "dataset_fingerprint": dataset_fingerprint(tiny_dataset)}]


def _pusht_state(agent, block, angle) -> torch.Tensor:
    """A probe-target state from px and radians."""
    return torch.tensor([agent[0] / 512, agent[1] / 512, block[0] / 512, block[1] / 512, math.cos(angle),
                         math.sin(angle)], dtype=torch.float32)


def test_block_frame_step_moves_by_hand():
    """Block frame: with a constant network output the agent and the block move by that output turned into
    the table's frame (times their scales) and the block turns by its output times the turn scale."""
    model = StateModel(StateModelConfig(hidden=8, layers=1, frame="block"))
    model.change_scale.copy_(torch.tensor([0.02, 0.02, 0.004, 0.004, 0.03, 0.04]))  # turn scale 0.05 rad
    last = model.dynamics[-1]
    torch.nn.init.zeros_(last.weight)
    with torch.no_grad():
        last.bias.copy_(torch.tensor([1.0, 0.0, 0.0, 2.0, 3.0]))
    angle = math.pi / 2  # the block's x axis is the table's y axis
    s = _pusht_state((100, 200), (256, 300), angle)
    nxt = model.step(s[None], s[None], torch.zeros(1, 2))[0]
    expected = torch.tensor([100 / 512, 200 / 512 + 0.02, 256 / 512 - 2 * 0.004, 300 / 512,
                             math.cos(angle + 0.15), math.sin(angle + 0.15)])
    torch.testing.assert_close(nxt, expected, atol=1e-6, rtol=0)


def test_block_frame_inputs_are_the_scene_seen_from_the_block():
    """The same agent offset, moves and action seen from the block give the same frame inputs however the
    block is placed and turned (the trailing absolute state aside)."""
    model = StateModel(StateModelConfig(hidden=8, layers=1, frame="block"))
    model.change_scale.copy_(torch.full((6,), 0.01))
    rows = []
    for block, angle in (((256, 256), 0.3), ((100, 400), 2.0)):
        rot = torch.tensor([[math.cos(angle), -math.sin(angle)], [math.sin(angle), math.cos(angle)]])
        offset, agent_move, action = rot @ torch.tensor([40.0, -10.0]), rot @ torch.tensor([3.0, 1.0]), rot @ torch.tensor([0.5, 0.1])
        agent = torch.tensor(block) + offset
        s = _pusht_state(agent.tolist(), block, angle)
        prev = _pusht_state((agent - agent_move).tolist(), block, angle - 0.02)
        rows.append(model.inputs(s[None], prev[None], action[None])[0])
    torch.testing.assert_close(rows[0][:9], rows[1][:9], atol=1e-5, rtol=0)
    assert rows[0][0] == pytest.approx(40 / 100) and rows[0][6] == pytest.approx(0.02 / (0.01 * 2 ** 0.5), rel=1e-4)


def test_block_frame_config_errors_and_round_trip(tmp_path):
    with pytest.raises(ValueError, match="frame='block' needs Push-T's layout"):
        StateModelConfig(state_dim=8, action_dim=3, frame="block")
    with pytest.raises(ValueError, match="frame must be 'world' or 'block', got 'agent'"):
        StateModelConfig(frame="agent")
    torch.manual_seed(0)
    model = StateModel(StateModelConfig(hidden=16, layers=2, frame="block"))
    path = model.save(tmp_path / "b", "pusht", {"note": "test"})
    again, _ = StateModel.load(path, task="pusht")
    assert again.config.frame == "block"
    s, prev, a = torch.rand(4, 6), torch.rand(4, 6), torch.rand(4, 2)
    torch.testing.assert_close(again.step(s, prev, a), model.step(s, prev, a))


def test_block_frame_still_penalty_is_on_the_blocks_outputs():
    """The resting-object penalty of a block-frame model: zero when only the agent's outputs respond to the
    inputs, positive when the block's do."""
    from fog_envs.wm.state_model_train import still_jacobian_penalty

    model = StateModel(StateModelConfig(hidden=8, layers=1, frame="block"))
    s = torch.stack([_pusht_state((100, 100), (300, 300), 0.5)] * 3)
    batch = {"prev_state": s, "state": s, "next_state": s, "action": torch.rand(3, 2), "reward": torch.zeros(3)}
    last = model.dynamics[-1]
    with torch.no_grad():
        last.weight[2:].zero_()
    assert float(still_jacobian_penalty(model, batch, (2, 3, 4, 5), 0.05).detach()) == 0.0
    with torch.no_grad():
        last.weight[3, 0] = 1.0
    assert float(still_jacobian_penalty(model, batch, (2, 3, 4, 5), 0.05).detach()) > 0.0


def test_velocity_scale_multiplies_the_change_inputs_and_old_bundles_load_with_one(tmp_path):
    """``velocity_scale`` v: the world-frame inputs are ``[s, v (s − s_prev) / change_scale, a]``, the block-frame
    moves and turn are v times those of v = 1 and nothing else changes; a bundle written without the key (before
    it existed) loads with v = 1; v <= 0 is refused by name."""
    with pytest.raises(ValueError, match="velocity_scale must be > 0, got 0.0"):
        StateModelConfig(velocity_scale=0.0)
    s, prev, a = torch.rand(4, 6), torch.rand(4, 6), torch.rand(4, 2)
    scale = torch.tensor([0.01, 0.02, 0.003, 0.004, 0.05, 0.06])
    models = {}
    for frame in ("world", "block"):
        for v in (1.0, 0.1):
            m = StateModel(StateModelConfig(hidden=8, layers=1, frame=frame, velocity_scale=v))
            m.change_scale.copy_(scale)
            models[frame, v] = m
    world = models["world", 0.1].inputs(s, prev, a)
    torch.testing.assert_close(world, torch.cat([s, 0.1 * (s - prev) / scale, a], -1))
    one, tenth = models["block", 1.0].inputs(s, prev, a), models["block", 0.1].inputs(s, prev, a)
    torch.testing.assert_close(tenth[:, 2:7], 0.1 * one[:, 2:7])
    torch.testing.assert_close(tenth[:, [0, 1] + list(range(7, 15))], one[:, [0, 1] + list(range(7, 15))])
    path = models["world", 0.1].save(tmp_path / "v", "pusht", {"note": "test"})
    assert StateModel.load(path)[0].config.velocity_scale == 0.1
    header = json.loads((path / "config.json").read_text())
    del header["config"]["velocity_scale"]
    (path / "config.json").write_text(json.dumps(header))
    assert StateModel.load(path)[0].config.velocity_scale == 1.0


def test_rest_gate_multiplies_the_passive_change_by_the_probability_that_it_moves():
    """With the gate's logit pinned at ℓ, the gated dimensions change by σ(ℓ) × the ungated change and the others
    by exactly the ungated change (world and block frames); a closed gate (ℓ = −40) leaves the object where it
    is; bad dimensions and tolerances are named."""
    torch.manual_seed(0)
    s, prev, a = torch.rand(5, 6), torch.rand(5, 6), torch.rand(5, 2)
    for frame, cols in (("world", [2, 3, 4, 5]), ("block", [2, 3, 4])):
        gated = StateModel(StateModelConfig(hidden=8, layers=1, frame=frame, rest_gate=(2, 3, 4, 5)))
        plain = StateModel(StateModelConfig(hidden=8, layers=1, frame=frame))
        plain.load_state_dict({k: v for k, v in gated.state_dict().items() if not k.startswith("gate.")})
        assert gated.gated_columns() == cols and plain.gate is None and plain.gated_columns() == []
        last = gated.gate[-1]
        torch.nn.init.zeros_(last.weight)
        for logit in (0.7, -40.0):
            with torch.no_grad():
                last.bias.fill_(logit)
            inp = gated.inputs(s, prev, a)
            expected = plain.dynamics(inp)
            expected[:, cols] = expected[:, cols] * torch.sigmoid(torch.tensor(logit))
            out_g, out_p = gated.step(s, prev, a), plain.step(s, prev, a)
            if frame == "world":
                torch.testing.assert_close(out_g, s + expected * gated.change_scale)
            torch.testing.assert_close(out_g[:, :2], out_p[:, :2])
        torch.testing.assert_close(out_g[:, 2:4], s[:, 2:4], atol=1e-12, rtol=0)
        torch.testing.assert_close(out_g[:, 4:6] / out_g[:, 4:6].norm(dim=-1, keepdim=True),
                                   s[:, 4:6] / s[:, 4:6].norm(dim=-1, keepdim=True), atol=1e-6, rtol=0)
    with pytest.raises(ValueError, match="rest_gate must hold distinct state dimensions in \\[0, 6\\)"):
        StateModelConfig(rest_gate=(2, 6))
    with pytest.raises(ValueError, match="rest_gate must hold distinct"):
        StateModelConfig(rest_gate=(2, 2))
    with pytest.raises(ValueError, match="rest_tol must be > 0"):
        StateModelConfig(rest_gate=(2,), rest_tol=0.0)


def test_rest_gate_reads_the_full_scale_change_and_the_pushers_offset():
    """The gate's input is ``[s, (s − s_prev) / change_scale, a, (pusher − object) / 100 px]`` whatever the
    velocity scale; a pusher longer than the gated dimensions is refused by name."""
    from fog_envs.wm.state_model import AGENT_OFFSET_UNIT

    torch.manual_seed(0)
    m = StateModel(StateModelConfig(hidden=8, layers=1, velocity_scale=0.1, rest_gate=(2, 3, 4, 5),
                                    pusher_position=(0, 1)))
    m.change_scale.copy_(torch.tensor([0.01, 0.02, 0.003, 0.004, 0.05, 0.06]))
    s, prev, a = torch.rand(4, 6), torch.rand(4, 6), torch.rand(4, 2)
    by_hand = m.gate(torch.cat([s, (s - prev) / m.change_scale, a, (s[:, 0:2] - s[:, 2:4]) / AGENT_OFFSET_UNIT], -1))
    torch.testing.assert_close(m.moves_logit(s, prev, a), by_hand.squeeze(-1))
    with pytest.raises(ValueError, match="pusher_position must hold at most len\\(rest_gate\\) = 1"):
        StateModelConfig(rest_gate=(2,), pusher_position=(0, 1))


def test_rest_gate_label_and_loss_by_hand():
    """``moved``: a gated dimension changed by more than ``rest_tol`` change scales; ``gate_loss`` is the binary
    cross-entropy of the gate's logit against it (computed here by hand)."""
    model = StateModel(StateModelConfig(state_dim=3, action_dim=2, hidden=8, layers=1, rest_gate=(1, 2)))
    model.change_scale.copy_(torch.tensor([1.0, 0.5, 2.0]))
    batch = _rest_batch()  # row 0 rests after s_t, row 1 rests after s_t (it moved before), row 2 moves after
    assert model.moved(batch["state"], batch["next_state"]).tolist() == [False, False, True]
    logit = model.moves_logit(batch["state"], batch["prev_state"], batch["action"])
    p = torch.sigmoid(logit)
    by_hand = -(torch.log(1 - p[0]) + torch.log(1 - p[1]) + torch.log(p[2])) / 3
    assert model.gate_loss(batch).item() == pytest.approx(by_hand.item(), rel=1e-5)


def test_resting_targets_follow_the_input_noise_only_where_the_object_rests():
    """Under input noise a gated model's targets move with the noise on the gated dimensions of rows whose
    object rests over every target step (so it is asked to stay where it is), and nowhere else; the training
    loss adds the gate's cross-entropy on the clean batch."""
    from fog_envs.wm.state_model_train import noisy_inputs, resting_targets_follow

    model = StateModel(StateModelConfig(state_dim=3, action_dim=2, hidden=8, layers=1, rest_gate=(1, 2)))
    model.change_scale.copy_(torch.tensor([1.0, 0.5, 2.0]))
    clean = _rest_batch()
    clean["future_state"] = torch.stack([clean["next_state"], clean["next_state"]], 1)  # rests after the next
    clean["future_state"][1, 1, 2] = 1.0  # row 1's object moves two steps ahead
    clean["future_action"] = torch.zeros(3, 2, 2)
    noisy = noisy_inputs(clean, 0.1, torch.Generator().manual_seed(0))
    out = resting_targets_follow(model, clean, noisy)
    eps = noisy["state"] - clean["state"]
    expected = clean["next_state"].clone()
    expected[0, 1:] += eps[0, 1:]
    torch.testing.assert_close(out["next_state"], expected)
    torch.testing.assert_close(out["future_state"][0], clean["future_state"][0] + torch.cat([torch.zeros(1), eps[0, 1:]]))
    torch.testing.assert_close(out["future_state"][1:], clean["future_state"][1:])
    torch.testing.assert_close(out["state"], noisy["state"])
    loss, metrics = training_loss(model, {k: v for k, v in clean.items() if "future" not in k}, (1, 2), 0.0, 0.05)
    plain = model.loss({k: v for k, v in clean.items() if "future" not in k})[0] + model.gate_loss(clean)
    assert loss.item() == pytest.approx(plain.item(), rel=1e-6) and "state_model/gate_bce" in metrics


def test_rest_gate_training_keeps_a_resting_block_still_and_round_trips(tiny_dataset, tmp_path, monkeypatch):
    """Trained with ``rest_gate`` (a bundle that round-trips the gate), the gate's cross-entropy falls below
    that of guessing the data's moved share, and a block left alone with the agent far away moves less over 20
    steps of action 0 than under the same model trained without the gate; a task without passive objects is
    refused by name."""
    import dataclasses

    from fog_envs.wm import tasks

    spec = get_task("pusht")
    gated, card = StateModel.load(train_state_model(_train_cfg(tiny_dataset, tmp_path / "gate", rest_gate=True,
                                                               still_jacobian=0.0)))
    plain, _ = StateModel.load(train_state_model(_train_cfg(tiny_dataset, tmp_path / "plain", still_jacobian=0.0)))
    assert gated.config.rest_gate == spec.passive_dims and card["train"]["rest_gate"] is True
    tr = load_transitions(tiny_dataset, spec)
    batch = tr.batch(np.arange(len(tr.state)))
    share = gated.moved(batch["state"], batch["next_state"]).float().mean().clamp(1e-3, 1 - 1e-3)
    guess = -(share * share.log() + (1 - share) * (1 - share).log())
    with torch.no_grad():
        assert gated.gate_loss(batch).item() < 0.8 * guess.item()
    start = torch.tensor(spec.probe_targets(np.array([[60.0, 60.0, 256.0, 256.0, math.pi / 4],
                                                      [450.0, 80.0, 300.0, 300.0, 1.0]])))
    drift = {}
    with torch.no_grad():
        for name, m in (("gated", gated), ("plain", plain)):
            prev, s = start, start
            for _ in range(20):
                prev, s = s, m.step(s, prev, torch.zeros(2, 2))
            drift[name] = (s[:, 2:4] - start[:, 2:4]).norm(dim=-1).max().item()
    assert drift["gated"] < 0.5 * drift["plain"]
    monkeypatch.setitem(tasks.TASKS, "nopassive", dataclasses.replace(spec, name="nopassive", passive_dims=()))
    with pytest.raises(ValueError, match="rest_gate needs a task with passive objects; task 'nopassive'"):
        StateModelTrainConfig(task="nopassive", rest_gate=True)


def test_idle_anchor_keeps_a_scene_at_rest_under_the_idle_command_exactly(tmp_path):
    """With ``idle_anchor`` the change is f(s, s_prev, a) − f(s, s, 0): a scene at rest under action 0 stays
    exactly where it is (world and block frames, with and without the rest gate), and elsewhere the step is the
    anchored change (checked by hand in the world frame); a bundle round-trips the flag and old ones load
    without it."""
    torch.manual_seed(0)
    s, prev, a = torch.rand(5, 6), torch.rand(5, 6), torch.rand(5, 2)
    for frame in ("world", "block"):
        for gate in ((), (2, 3, 4, 5)):
            m = StateModel(StateModelConfig(hidden=8, layers=1, frame=frame, rest_gate=gate, idle_anchor=True))
            with torch.no_grad():
                m.dynamics[-1].bias.fill_(0.3)  # an unanchored model would drift by this every step
            still = m.step(s, s, torch.zeros(5, 2))
            torch.testing.assert_close(still[:, :4], s[:, :4], atol=1e-7, rtol=0)
            torch.testing.assert_close(still[:, 4:6] / still[:, 4:6].norm(dim=-1, keepdim=True),
                                       s[:, 4:6] / s[:, 4:6].norm(dim=-1, keepdim=True), atol=1e-6, rtol=0)
            assert not torch.allclose(m.step(s, prev, a), s, atol=1e-4)
    m = StateModel(StateModelConfig(hidden=8, layers=1, idle_anchor=True))
    expected = s + (m.dynamics(m.inputs(s, prev, a)) - m.dynamics(m.inputs(s, s, torch.zeros(5, 2)))) * m.change_scale
    torch.testing.assert_close(m.step(s, prev, a), expected)
    path = StateModel(StateModelConfig(hidden=8, layers=1, rest_gate=(2, 3, 4, 5), idle_anchor=True)).save(
        tmp_path / "anchored", "pusht", {"note": "test"})
    loaded = StateModel.load(path)[0]
    assert loaded.config.idle_anchor and loaded.config.rest_gate == (2, 3, 4, 5) and loaded.gate is not None
    header = json.loads((path / "config.json").read_text())
    for key in ("idle_anchor", "rest_gate", "rest_tol"):
        del header["config"][key]
    (path / "config.json").write_text(json.dumps(header))
    with pytest.raises(BundleError, match="gate"):  # the weights hold a gate the config no longer declares
        StateModel.load(path)
    plain = StateModel(StateModelConfig(hidden=8, layers=1)).save(tmp_path / "plain", "pusht", {"note": "test"})
    header = json.loads((plain / "config.json").read_text())
    for key in ("idle_anchor", "rest_gate", "rest_tol"):
        del header["config"][key]
    (plain / "config.json").write_text(json.dumps(header))
    old = StateModel.load(plain)[0]
    assert not old.config.idle_anchor and old.config.rest_gate == () and old.gate is None


def test_fine_tuning_starts_from_a_bundle_keeps_its_scales_and_refuses_another_architecture(tiny_dataset, state_bundle,
                                                                                          tmp_path):
    """``init_from``: the run starts from the bundle's weights and change scales (a vanishing learning rate leaves
    them where they were; a fresh model differs), and a bundle of another width is refused by name."""
    from dataclasses import replace

    base, _ = StateModel.load(state_bundle)
    slow = dict(lr=1e-12, seed=5)
    tuned_cfg = replace(_train_cfg(tiny_dataset, tmp_path / "tuned", init_from=str(state_bundle), **slow), steps=20)
    tuned, card = StateModel.load(train_state_model(tuned_cfg))
    assert card["train"]["init_from"] == str(state_bundle)
    for k, v in base.state_dict().items():
        torch.testing.assert_close(tuned.state_dict()[k], v, atol=1e-8, rtol=0, msg=k)
    fresh, _ = StateModel.load(train_state_model(replace(_train_cfg(tiny_dataset, tmp_path / "fresh", **slow),
                                                         steps=20)))
    assert not torch.allclose(fresh.dynamics[0].weight, base.dynamics[0].weight)
    with pytest.raises(ValueError, match=r"another architecture \(hidden: 32 \(bundle\) vs 48 \(flags\)\)"):
        train_state_model(replace(tuned_cfg, out=str(tmp_path / "wide"), hidden=48))
