"""Named deployments (``fog-eval --deployment``): they fill only the fields left at their defaults."""

import pytest

from fog_agent.deployments import deployment_settings, fill_defaults
from fog_agent.evaluate import EvalConfig
from fog_agent.planner import PlannerConfig


def test_pusht_deployment_fills_the_defaults_and_the_planners():
    cfg = fill_defaults(EvalConfig(run_dir="runs/x"), deployment_settings("pusht"))
    assert cfg.plan and cfg.plan_state_model == "pusht_state_block" and cfg.odometry == "pusht_odometry"
    assert cfg.readers == ("pusht_agent_finder", "pusht_local_reader", "pusht_goal_reader") and cfg.run_dir == "runs/x"
    assert (cfg.planner.finish_reward, cfg.planner.init_std, cfg.planner.noise_beta) == (0.9, 0.5, 2.0)
    assert cfg.planner.value_disagreement == 1.5
    assert (cfg.planner.keep_elites, cfg.planner.act) == (4, "best")
    assert cfg.planner.engage_reward is None and cfg.planner.samples == PlannerConfig().samples


def test_cube_deployment_finds_the_cube_and_the_robot_and_searches_without_planning():
    cfg = fill_defaults(EvalConfig(run_dir="runs/c"), deployment_settings("cube"))
    assert cfg.cube_finder and cfg.robot_finder and cfg.search_action == (0.0, 0.0, 1.0)
    assert cfg.cube_unseen_pixels == 20
    assert not cfg.plan and cfg.readers == () and cfg.odometry is None and cfg.run_dir == "runs/c"


def test_values_given_explicitly_win_over_the_deployment():
    given = EvalConfig(readers=("pusht_local_reader",), planner=PlannerConfig(init_std=0.3, samples=16), tag="t")
    cfg = fill_defaults(given, deployment_settings("pusht"))
    assert cfg.readers == ("pusht_local_reader",) and cfg.tag == "t"
    assert (cfg.planner.init_std, cfg.planner.samples, cfg.planner.finish_reward) == (0.3, 16, 0.9)


def test_bad_deployments_are_named():
    with pytest.raises(ValueError, match=r"unknown deployment 'pushT'; choose one of \['cube', 'pusht'\]"):
        EvalConfig(deployment="pushT")
    with pytest.raises(ValueError, match=r"EvalConfig has no field\(s\) \['horizon'\]"):
        fill_defaults(EvalConfig(), {"horizon": 8})
    with pytest.raises(ValueError, match="exclude each other"):  # the deployment plans; --stochastic cannot
        fill_defaults(EvalConfig(stochastic=True), deployment_settings("pusht"))
