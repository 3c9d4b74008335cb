"""fog_agent.ensemble.MeanPolicy: several agents acting with the mean of their deterministic actions."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from fog_agent.config import make_preset
from fog_agent.controller import FogController
from fog_agent.ensemble import HandoverConfig, MeanPolicy, StallHandover
from fog_agent.sapo import DMOSAPO


def _agents(n: int, obs_dim: int = 6, action_dim: int = 2) -> list[DMOSAPO]:
    cfg = make_preset("debug")
    agents = []
    for seed in range(n):
        torch.manual_seed(seed)
        agent = DMOSAPO(obs_dim, action_dim, cfg, seed=seed)
        agent.obs_norm.update(torch.randn(64, obs_dim) * (seed + 1) + seed)  # each its own statistics
        agents.append(agent)
    return agents


def test_mean_policy_acts_with_the_mean_of_each_agents_own_tanh_mu():
    agents = _agents(3)
    obs = torch.randn(5, 6)
    by_hand = torch.stack([torch.tanh(a.actor.distribution(a.obs_norm(obs))[0]) for a in agents]).mean(0)
    torch.testing.assert_close(MeanPolicy(agents).act(obs), by_hand)
    # one agent alone acts as itself; the order of the agents does not matter
    torch.testing.assert_close(MeanPolicy(agents[:1]).act(obs), agents[0].act(obs))
    torch.testing.assert_close(MeanPolicy(agents[::-1]).act(obs), by_hand)
    assert MeanPolicy(agents).act(obs).abs().max() <= 1.0


def test_mean_policy_drives_the_controller_as_one_agent():
    """FogController takes the ensemble in the agent's place; its action is the ensemble's."""
    agents = _agents(2)

    class Identity:  # an observer whose latent state is the observation itself
        def reset(self, obs):
            return torch.as_tensor(obs, dtype=torch.float32)

        def update(self, action, obs):
            return torch.as_tensor(obs, dtype=torch.float32)

    obs = np.linspace(-1, 1, 6).astype(np.float32)
    ctrl = FogController(MeanPolicy(agents), Identity())
    ctrl.reset(obs, {})
    expected = MeanPolicy(agents).act(torch.as_tensor(obs)[None])[0].numpy()
    np.testing.assert_allclose(ctrl.act(obs, {}), expected, rtol=1e-6)


def test_mean_policy_errors_name_the_problem():
    with pytest.raises(ValueError, match="at least one agent"):
        MeanPolicy([])
    with pytest.raises(ValueError, match="agent 1 differs from agent 0 in observation size"):
        MeanPolicy([_agents(1)[0], _agents(1, obs_dim=7)[0]])
    with pytest.raises(ValueError, match="agent 1 differs from agent 0 in action size"):
        MeanPolicy([_agents(1)[0], _agents(1, action_dim=3)[0]])
    with pytest.raises(ValueError, match="deterministic=True"):
        MeanPolicy(_agents(2)).act(torch.zeros(1, 6), deterministic=False)


def _handover(agents, patience=3, min_gain=0.01):
    """A StallHandover whose reward is read from the observation's first entry."""
    return StallHandover(agents, lambda x: x[:, 0], HandoverConfig(patience=patience, min_gain=min_gain))


def test_stall_handover_passes_to_the_next_agent_after_patience_steps_without_progress():
    agents = _agents(3)
    policy = _handover(agents, patience=3)
    acting = []
    # rewards: rising (progress), then flat for 3 steps -> agent 1; a rise below min_gain is no progress;
    # flat 3 more -> agent 2; 3 more -> back to agent 0
    rewards = [0.0, 0.1, 0.2, 0.2, 0.205, 0.2, 0.3, 0.3, 0.3, 0.3, 0.3, 0.3, 0.3, 0.3, 0.3, 0.3]
    for r in rewards:
        obs = torch.tensor([[r, 0.5, -0.5, 0.1, 0.2, 0.3]])
        action = policy.act(obs)
        acting.append(policy.current)
        torch.testing.assert_close(action, agents[policy.current].act(obs))
    assert acting == [0, 0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 0, 0, 0, 1]
    assert policy.handovers == 4
    policy.reset()  # a new episode: the first agent again, no progress yet
    assert policy.current == 0 and policy.handovers == 0
    policy.act(torch.tensor([[-5.0, 0, 0, 0, 0, 0]]))
    assert policy.current == 0


def test_stall_handover_with_one_agent_is_that_agent():
    agent = _agents(1)[0]
    policy = _handover([agent], patience=1)
    for r in (0.0, 0.0, 0.0):
        obs = torch.tensor([[r, 1.0, 2.0, 3.0, 4.0, 5.0]])
        torch.testing.assert_close(policy.act(obs), agent.act(obs))


def test_the_controller_starts_each_episode_with_the_first_agent():
    agents = _agents(2)

    class Identity:
        def reset(self, obs):
            return torch.as_tensor(obs, dtype=torch.float32)

        def update(self, action, obs):
            return torch.as_tensor(obs, dtype=torch.float32)

    policy = _handover(agents, patience=1)
    ctrl = FogController(policy, Identity())
    flat = np.zeros(6, dtype=np.float32)
    ctrl.reset(flat, {})
    for _ in range(3):
        ctrl.act(flat, {})
    assert policy.current == 0 and policy.handovers == 2  # first step sets the best; then two stalls hand over
    ctrl.reset(flat, {})
    assert policy.current == 0 and policy.handovers == 0


@pytest.mark.parametrize("kwargs, match", [({"patience": 0}, "patience must be >= 1"),
                                           ({"min_gain": -0.1}, "min_gain must be a finite number >= 0"),
                                           ({"min_gain": float("nan")}, "min_gain must be a finite number >= 0")])
def test_handover_config_names_bad_values(kwargs, match):
    with pytest.raises(ValueError, match=match):
        HandoverConfig(**kwargs)


def test_stall_handover_errors_name_the_problem():
    agents = _agents(2)
    with pytest.raises(ValueError, match="StallHandover: agent 1 differs from agent 0 in observation size"):
        _handover([agents[0], _agents(1, obs_dim=7)[0]])
    with pytest.raises(ValueError, match="one observation at a time"):
        _handover(agents).act(torch.zeros(2, 6))
    with pytest.raises(ValueError, match="deterministic=True"):
        _handover(agents).act(torch.zeros(1, 6), deterministic=False)


def test_eval_config_handover_needs_companions_without_plan():
    from fog_agent.evaluate import EvalConfig

    with pytest.raises(ValueError, match="--handover-patience needs --companions and no --plan"):
        EvalConfig(handover_patience=10)
    with pytest.raises(ValueError, match="--handover-patience needs --companions and no --plan"):
        EvalConfig(handover_patience=10, companions=("a",), plan=True)
    with pytest.raises(ValueError, match="--handover-patience must be >= 0"):
        EvalConfig(handover_patience=-1, companions=("a",))
    assert EvalConfig(handover_patience=10, companions=("a",)).handover_patience == 10
