"""``fog-collect-agent``: datasets played by a trained agent, in the play data's format and with its guarantees."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import fog_envs  # noqa: F401
from fog_agent.collect import AgentCollectConfig, AgentPlayPolicy, AgentPolicyConfig, collect_with_agent, \
    load_agent_policy, make_agent_policy
from fog_agent.controller import FogController
from fog_agent.evaluate import learned_env_for, load_agent
from fog_envs.data.format import dataset_info, load_arrays

STEPS = 12


@pytest.fixture(scope="module")
def agent_run(debug_bundle, tmp_path_factory) -> Path:
    from fog_agent.train import AgentTrainConfig, train_agent

    run = tmp_path_factory.mktemp("agent") / "run"
    train_agent(AgentTrainConfig(env_id="WMPushT-v0", preset="debug", run_dir=str(run), world_model=str(debug_bundle),
                                 eval_env_id=None, iterations=2), progress=False)
    return run


def _collect(run: Path, out: Path, **kw) -> Path:
    kw = {"num_episodes": 2, "seed": 7, "workers": 1, "max_episode_steps": STEPS, **kw}
    stop_after = kw.pop("stop_after", None)
    collect_with_agent(AgentCollectConfig(run_dir=str(run), out=out, **kw), progress=False, stop_after=stop_after)
    return out


def test_deterministic_collection_stores_the_deployed_agents_actions_on_its_frames(agent_run, tmp_path, one_thread):
    """Row t's action is what the deployed controller (the agent behind its observer) does on frame t."""
    path = _collect(agent_run, tmp_path / "det.h5", stochastic=False)
    data = load_arrays(path)
    attrs = dataset_info(path).attrs
    assert attrs["env_id"] == "RealPushT-v0" and attrs["num_episodes"] == 2
    assert "AgentPlayPolicy" in attrs["collector_policy"] and "iteration=2" in attrs["collector_policy"]
    agent, ckpt = load_agent(agent_run / "checkpoints" / "latest.pt")
    starts = np.concatenate([[0], data["episode_ends"][:-1]])
    for start, end in zip(starts, data["episode_ends"]):
        controller = FogController(agent, learned_env_for(ckpt).make_observer())
        controller.reset(data["frames"][start], {})
        replay = np.stack([controller.act(data["frames"][t], {}) for t in range(start, end)])
        np.testing.assert_allclose(replay, data["actions"][start:end], atol=1e-6)


def test_sampled_collection_is_reproducible_resumable_and_noisier(agent_run, tmp_path, one_thread):
    full = load_arrays(_collect(agent_run, tmp_path / "a.h5"))
    _collect(agent_run, tmp_path / "b.h5", stop_after=1)  # "killed" after one episode
    resumed = load_arrays(_collect(agent_run, tmp_path / "b.h5"))
    for key in ("actions", "state", "frames"):
        np.testing.assert_array_equal(full[key], resumed[key])
    deterministic = load_arrays(_collect(agent_run, tmp_path / "det.h5", stochastic=False))
    np.testing.assert_array_equal(full["state"][0], deterministic["state"][0])  # same start
    assert not np.allclose(full["actions"], deterministic["actions"])
    # each episode reseeds the sampler from the episode's generator
    policy = load_agent_policy(AgentPolicyConfig(str(agent_run)))

    def first_action(rng_key: list[int]) -> np.ndarray:
        policy.reset({}, np.random.default_rng(rng_key))
        policy.observe(full["frames"][0])
        return policy({})

    np.testing.assert_array_equal(first_action([7, 0]), first_action([7, 0]))
    assert not np.allclose(first_action([7, 0]), first_action([7, 1]))


def test_agent_policy_needs_observations_and_its_own_env(agent_run):
    policy = load_agent_policy(AgentPolicyConfig(str(agent_run)))
    assert isinstance(policy, AgentPlayPolicy) and policy.reference_env_id == "RealPushT-v0"
    policy.reset({}, np.random.default_rng(0))
    with pytest.raises(RuntimeError, match="observe"):
        policy({})
    with pytest.raises(ValueError, match="trained for RealPushT-v0"):
        make_agent_policy("RealPushCube-v0", AgentPolicyConfig(str(agent_run)))
    with pytest.raises(FileNotFoundError, match="no agent checkpoint"):
        load_agent_policy(AgentPolicyConfig(str(agent_run / "missing")))


def test_a_deployment_that_plans_or_does_not_exist_is_refused_by_name():
    with pytest.raises(ValueError, match="'pusht' plans its actions"):
        AgentPolicyConfig("runs/x", deployment="pusht")
    with pytest.raises(ValueError, match="unknown deployment 'nope'"):
        AgentPolicyConfig("runs/x", deployment="nope")


def test_a_cube_agent_collects_through_the_cube_deployments_perception(tmp_path, one_thread):
    """With ``deployment="cube"`` row t's action is what the cube deployment's controller (the cube and robot finders,
    the search turn) does on frame t, and the provenance names the deployment."""
    from fog_agent.train import AgentTrainConfig, train_agent
    from fog_envs.wm.cube_finder import CubeFinderConfig, CubeTrack
    from fog_envs.wm.robot_finder import RobotTrack

    run = tmp_path / "cube"
    train_agent(AgentTrainConfig(env_id="WMPushCube-v0", preset="debug", run_dir=str(run), local_model="state",
                                 forward_model="state", eval_env_id=None), progress=False)
    path = _collect(run, tmp_path / "cube.h5", stochastic=False, deployment="cube", num_episodes=1)
    data, attrs = load_arrays(path), dataset_info(path).attrs
    assert attrs["env_id"] == "RealPushCube-v0" and "deployment='cube'" in attrs["collector_policy"]
    agent, ckpt = load_agent(run / "checkpoints" / "latest.pt")
    observer = learned_env_for(ckpt).make_observer(cube_track=CubeTrack(CubeFinderConfig(unseen_pixels=20)),
                                                   robot_track=RobotTrack())
    controller = FogController(agent, observer, search_action=(0.0, 0.0, 1.0))
    controller.reset(data["frames"][0], {})
    replay = np.stack([controller.act(data["frames"][t], {}) for t in range(len(data["actions"]))])
    np.testing.assert_allclose(replay, data["actions"], atol=1e-6)
    plain = load_arrays(_collect(run, tmp_path / "plain.h5", stochastic=False, num_episodes=1))
    assert not np.allclose(plain["actions"], data["actions"])  # the probe alone perceives otherwise
