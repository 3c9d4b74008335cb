"""A state-model world dreamt by an ensemble (``ensemble_forward``, fog_envs.learned.wm_backend): each episode's
model drawn at its start, the next state that model's by hand, the gradient the own model's, determinism, the
snapshot round trip and bad configurations named."""

from __future__ import annotations

import gymnasium as gym
import pytest
import torch

import fog_envs  # noqa: F401  (registers the envs)
from fog_envs.wm.state_model import StateModel

CUBE = {"obs_type": "latent", "forward_model": "state", "local_model": "state", "state_model": "cube_state",
        "bf16": False}
N = 16


def make(**kwargs):
    return gym.make_vec("WMPushCube-v0", num_envs=N, vectorization_mode="vector_entry_point", **CUBE,
                        **kwargs).unwrapped


@pytest.fixture(scope="module")
def worlds():
    """The plain cube state world and the same dreamt by it and `cube_state_walls` (no penalty)."""
    return make(), make(state_ensemble=("cube_state_walls",), ensemble_forward=True)


def test_each_episode_steps_with_the_model_it_drew(worlds):
    plain, mixed = worlds
    member = StateModel.load("cube_state_walls", task="cube")[0]
    x0 = plain.diff.reset(seed=3)
    torch.testing.assert_close(mixed.diff.reset(seed=3), x0)  # the draw of a model moves no start
    drawn = mixed.backend.member.clone()
    assert set(drawn.tolist()) == {0, 1}  # both models dream some of the 16 episodes (seed 3)
    action = torch.linspace(-1, 1, N * 3).reshape(N, 3)
    out = mixed.backend.global_step(action, mixed.diff.clock.generators)
    sdim = mixed.backend.state_local.sdim
    s, s_prev = x0[:, :sdim], x0[:, sdim:]
    with torch.no_grad():
        own = mixed.backend.state_local.state_model.step(s, s_prev, action)
        other = member.step(s, s_prev, action)
    expected = torch.where(drawn[:, None] == 1, other, own)
    torch.testing.assert_close(out.next_state[:, :sdim], expected, atol=1e-6, rtol=1e-6)
    torch.testing.assert_close(out.next_state[:, sdim:], s)
    torch.testing.assert_close(out.reward, mixed.backend.model.task.state_reward(expected), atol=1e-6, rtol=1e-6)
    assert not torch.allclose(own[drawn == 1], other[drawn == 1], atol=1e-3)  # the two models differ there


def test_the_gradient_stays_the_own_models(worlds):
    """The local step (the Jacobians) is the world's own state model whichever model dreamt the episode."""
    _, mixed = worlds
    x = mixed.diff.reset(seed=3)
    a = torch.zeros(N, 3, requires_grad=True)
    mixed.backend.local_step(x, a)[:, 0].sum().backward()
    b = torch.zeros(N, 3, requires_grad=True)
    sdim = mixed.backend.state_local.sdim
    mixed.backend.state_local.state_model.step(x[:, :sdim], x[:, sdim:], b)[:, 0].sum().backward()
    torch.testing.assert_close(a.grad, b.grad)


def test_the_draw_is_seeded_and_survives_a_snapshot(worlds):
    _, mixed = worlds
    again = make(state_ensemble=("cube_state_walls",), ensemble_forward=True)
    draws = []
    for world in (mixed, again):
        world.diff.reset(seed=11)
        draws.append(world.backend.member.clone())
    torch.testing.assert_close(draws[0], draws[1])
    snap = mixed.backend.snapshot()
    mixed.diff.reset(seed=12)
    assert not torch.equal(mixed.backend.member, draws[0])
    mixed.backend.restore(snap)
    torch.testing.assert_close(mixed.backend.member, draws[0])


def test_with_the_penalty_the_disagreement_is_of_the_own_model():
    """With both the penalty and the ensemble's dreams, the penalty measures the own model's prediction against the
    members' (as without them), whichever model stepped."""
    both = make(state_ensemble=("cube_state_walls",), ensemble_forward=True, disagreement_weight=2.0)
    assert both.backend._penalty_takes_predictions  # the members step once, for the dream and the penalty
    x = both.diff.reset(seed=3)
    action = torch.full((N, 3), 0.5)
    out = both.backend.global_step(action, both.diff.clock.generators)
    sdim = both.backend.state_local.sdim
    penalty = both.backend.penalty(x, action)
    torch.testing.assert_close(out.reward + penalty, both.backend.model.task.state_reward(out.next_state[:, :sdim]),
                               atol=1e-5, rtol=1e-5)
    assert (penalty > 0).all()


def test_bad_configurations_are_named(worlds):
    from fog_envs.learned.factory import make_backend
    from fog_envs.learned.wm_backend import WorldModelBackend

    with pytest.raises(ValueError, match="ensemble_forward .* pass state_ensemble"):
        make_backend("cube", 1, forward_model="state", local_model="state", ensemble_forward=True)
    with pytest.raises(ValueError, match="needs forward_model='state'"):
        make_backend("cube", 1, local_model="state", state_ensemble=("cube_state_walls",), ensemble_forward=True)
    plain, _ = worlds
    backend = plain.backend
    pusht = StateModel.load("pusht_state", task="pusht")[0]
    with pytest.raises(ValueError, match="forward member 0 has"):
        WorldModelBackend(backend.model, 2, forward_model="state", state_local=backend.state_local,
                          forward_members=[pusht])
    with pytest.raises(ValueError, match="forward_members .* need forward_model='state'"):
        WorldModelBackend(backend.model, 2, forward_model="diffusion", state_local=backend.state_local,
                          forward_members=[backend.state_local.state_model])


def test_the_agents_config_reaches_the_world():
    from fog_agent.train import AgentTrainConfig, make_envs, resolve_sapo_config

    cfg = AgentTrainConfig(env_id="WMPushCube-v0", preset="debug", forward_model="state", local_model="state",
                           state_ensemble=("cube_state_walls",), ensemble_forward=True)
    backend = make_envs(cfg, resolve_sapo_config(cfg)).backend
    assert len(backend.forward_members) == 1 and backend.penalty is None
