"""Options of a task's reward formula (``reward_options=``; Push-T's ``coverage_cap``, ``fog-train --coverage-cap``)."""

from __future__ import annotations

import json
import math

import gymnasium as gym
import pytest
import torch

import fog_envs  # noqa: F401  (registers the ids)
from fog_envs.learned.factory import make_backend
from fog_envs.real.pusht_reward import GOAL_POSE, REWARD_WEIGHTS, SUCCESS_COVERAGE
from fog_envs.real.pusht_reward_torch import soft_coverage
from fog_envs.wm.tasks import get_task

#: what the coverage term adds at full coverage when it grows to 1 instead of stopping at 0.95
FULL_COVERAGE_GAIN = REWARD_WEIGHTS["coverage"] * (1.0 / SUCCESS_COVERAGE - 1.0)


def pusht_state(block_dx: float = 0.0, angle: float = GOAL_POSE[2]) -> torch.Tensor:
    """A probe-target state (1, 6): the agent at (150, 150) px, the block ``block_dx`` px right of its goal."""
    return torch.tensor([[150 / 512, 150 / 512, (GOAL_POSE[0] + block_dx) / 512, GOAL_POSE[1] / 512,
                          math.cos(angle), math.sin(angle)]], dtype=torch.float64)


def test_the_coverage_cap_pays_for_coverage_past_success_and_nothing_else():
    task = get_task("pusht")
    capped = task.with_reward_options({"coverage_cap": 1.0})
    home, half = pusht_state(), pusht_state(block_dx=60.0)
    assert soft_coverage(home).item() == pytest.approx(1.0, abs=1e-3)
    assert soft_coverage(half).item() < SUCCESS_COVERAGE
    gain = (capped.state_reward(home) - task.state_reward(home)).item()
    assert gain == pytest.approx(FULL_COVERAGE_GAIN * soft_coverage(home).item(), abs=1e-6)
    assert torch.equal(capped.state_reward(half), task.state_reward(half))  # below 0.95: the same reward
    # the task itself is left as it was, and no options leave it as it is
    assert task.with_reward_options({}) is task and get_task("pusht").state_reward is task.state_reward


def test_bad_reward_options_are_named():
    with pytest.raises(ValueError, match=r"task 'cube' has no reward option\(s\) \['coverage_cap'\]; its options: "
                                         r"none"):
        get_task("cube").with_reward_options({"coverage_cap": 1.0})
    with pytest.raises(ValueError, match=r"no reward option\(s\) \['cap'\]; its options: \['coverage_cap'\]"):
        get_task("pusht").with_reward_options({"cap": 1.0})
    with pytest.raises(ValueError, match=r"coverage_cap must lie in \[0.95, 1\], got 0.5"):
        get_task("pusht").with_reward_options({"coverage_cap": 0.5})
    with pytest.raises(ValueError, match="reward_options set the task's reward formula, which local_model='state'"):
        make_backend("pusht", 1, reward_options={"coverage_cap": 1.0})
    with pytest.raises(ValueError, match="reward_options"):
        make_backend("toy", 1, reward_options={"coverage_cap": 1.0})


def test_a_learned_env_with_the_option_rewards_by_it_forward_and_local(one_thread):
    """gym.make passes ``reward_options`` on: the state world's forward reward and the local model's reward (its
    Jacobian hook) both read the capped formula; another env built without it keeps the task's."""
    kw = dict(obs_type="latent", forward_model="state", local_model="state")
    env = gym.make("WMPushT-v0", reward_options={"coverage_cap": 1.0}, **kw).unwrapped
    plain = gym.make("WMPushT-v0", **kw).unwrapped
    home = pusht_state().float()
    x = torch.cat([home, home], -1)
    gain = (env.diff.local_reward(x) - plain.diff.local_reward(x)).item()
    assert gain == pytest.approx(FULL_COVERAGE_GAIN * soft_coverage(home).item(), abs=1e-5)
    forward = env.vec.backend.model.task.state_reward  # what the forward state world's step rewards with
    assert (forward(home) - plain.vec.backend.model.task.state_reward(home)).item() == pytest.approx(gain, abs=1e-6)


def test_training_records_the_option_and_evaluation_rebuilds_its_env(tmp_path, one_thread):
    from fog_agent.evaluate import learned_env_for
    from fog_agent.train import AgentTrainConfig, train_agent

    run = tmp_path / "capped"
    train_agent(AgentTrainConfig(env_id="WMPushT-v0", preset="debug", run_dir=str(run), local_model="state",
                                 forward_model="state", iterations=1, eval_env_id=None, coverage_cap=1.0),
                progress=False)
    ckpt = torch.load(run / "checkpoints" / "latest.pt", weights_only=False)
    assert ckpt["reward_options"] == {"coverage_cap": 1.0}
    assert json.loads((run / "config.json").read_text())["train"]["coverage_cap"] == 1.0
    home = pusht_state().float()
    x = torch.cat([home, home], -1)
    rebuilt = learned_env_for(ckpt).diff.local_reward(x)
    plain = learned_env_for({**ckpt, "reward_options": {}}).diff.local_reward(x)
    assert (rebuilt - plain).item() == pytest.approx(FULL_COVERAGE_GAIN * soft_coverage(home).item(), abs=1e-5)
    with pytest.raises(ValueError, match=r"task 'cube' has no reward option\(s\) \['coverage_cap'\]"):
        train_agent(AgentTrainConfig(env_id="WMPushCube-v0", preset="debug", run_dir=str(tmp_path / "cube"),
                                     local_model="state", forward_model="state", iterations=1, eval_env_id=None,
                                     coverage_cap=1.0), progress=False)
