"""fog_agent.checked (``fog-train-checked``): seeds trained until one passes the imagined check, the best deployed."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from fog_agent.checked import CheckedConfig, main, recipes, run_checked, seed_config, split_argv
from fog_agent.train import AgentTrainConfig


class Steps:
    """Stand-ins for the three steps: training records its batches, judging reads each seed's rate from
    ``rates`` (return = rate / 10), deploying counts its calls."""

    def __init__(self, rates: dict[int, float]) -> None:
        self.rates, self.batches, self.deployed = rates, [], []

    def trainer(self, cfgs, parallel):
        assert len(cfgs) <= parallel
        self.batches.append([c.seed for c in cfgs])
        for c in cfgs:  # the training's imagined curve: its last row at the seed's rate
            Path(c.run_dir).mkdir(parents=True, exist_ok=True)
            rows = [{"iteration": 100, "success_rate": 0.0}, {"iteration": 200, "success_rate": self.rates[c.seed]}]
            (Path(c.run_dir) / "imagined.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
        return [c.run_dir for c in cfgs]

    def judger(self, run, cfg):
        seed = int(run.rsplit("_", 1)[1])
        return {"run": run, "success_rate": self.rates[seed], "mean_return": self.rates[seed] / 10,
                "mean_max_coverage": 0.5, "checkpoint_iteration": 3000, "episodes": cfg.judge_episodes}

    def deployer(self, run, deployment, cfg):
        self.deployed.append((run, deployment))
        return {"env_id": "RealPushT-v0", "episodes": cfg.deploy_episodes, "success_rate": 0.96,
                "mean_max_coverage": 0.98, "mean_return": 1.0, "deployment": deployment, "per_episode": [1, 2]}


def run(cfg, steps, **kwargs):
    return run_checked(cfg, trainer=steps.trainer, judger=steps.judger, deployer=steps.deployer, **kwargs)


def test_the_search_stops_at_the_first_batch_with_a_passing_agent_and_deploys_its_best(tmp_path):
    steps = Steps({3: 0.2, 4: 0.5, 5: 0.9, 6: 0.95, 7: 1.0, 8: 1.0})
    cfg = CheckedConfig(root=str(tmp_path), first_seed=3, max_seeds=6, parallel=2)
    record = run(cfg, steps)
    assert steps.batches == [[3, 4], [5, 6]]  # seeds 7, 8 never trained: the second batch passed
    assert [(r["seed"], r["passes"]) for r in record["judged"]] == [(3, False), (4, False), (5, True), (6, True)]
    assert record["chosen"] == {"seed": 6, "run": str(tmp_path / "seed_6"), "passes": True}
    assert steps.deployed == [(str(tmp_path / "seed_6"), "pusht")]  # the recipe's named deployment
    assert record["deployed"] == {"env_id": "RealPushT-v0", "episodes": 50, "success_rate": 0.96,
                                  "mean_max_coverage": 0.98, "mean_return": 1.0, "deployment": "pusht"}
    assert record["judged"][2] == {"seed": 5, "run": str(tmp_path / "seed_5"), "checkpoint_iteration": 3000,
                                   "success_rate": 0.9, "mean_return": pytest.approx(0.09),
                                   "mean_max_coverage": 0.5, "passes": True, "curve": [[100, 0.0], [200, 0.9]]}
    assert json.loads((tmp_path / "checked.json").read_text()) == json.loads(json.dumps(record))
    # rerun after a stop: the seeds resume (their trainer is called again), the finished deployment is kept
    again = run(cfg, steps)
    assert steps.batches[2:] == [[3, 4], [5, 6]] and len(steps.deployed) == 1
    assert again == record
    # a rerun stopped after its first batch: the file still holds the last run's choice and deployment
    calls = []

    def stop_after_first(cfgs, parallel):
        calls.append([c.seed for c in cfgs])
        if len(calls) > 1:
            raise KeyboardInterrupt
        return steps.trainer(cfgs, parallel)

    with pytest.raises(KeyboardInterrupt):
        run_checked(cfg, trainer=stop_after_first, judger=steps.judger, deployer=steps.deployer)
    stopped = json.loads((tmp_path / "checked.json").read_text())
    assert calls == [[3, 4], [5, 6]] and [r["seed"] for r in stopped["judged"]] == [3, 4]
    assert stopped["chosen"] == record["chosen"] and stopped["deployed"] == record["deployed"]
    # more deployment episodes asked for: deployed again
    run(CheckedConfig(root=str(tmp_path), first_seed=3, max_seeds=6, parallel=2, deploy_episodes=100), steps)
    assert len(steps.deployed) == 2


def test_the_pass_rate_is_inclusive_and_ties_go_to_the_higher_return(tmp_path):
    steps = Steps({0: 0.85, 1: 0.85})
    steps.judger = lambda run, cfg: {"run": run, "success_rate": 0.85, "mean_return": float(run.endswith("_1"))}
    record = run(CheckedConfig(root=str(tmp_path), max_seeds=2, parallel=1, deploy=False), steps)
    assert steps.batches == [[0]]  # seed 0 passes at exactly 85 %: seed 1 is not trained
    assert record["chosen"]["seed"] == 0 and record["deployed"] is None and steps.deployed == []
    record = run(CheckedConfig(root=str(tmp_path / "b"), max_seeds=2, parallel=2, deploy=False), steps)
    assert record["chosen"]["seed"] == 1  # both pass, seed 1 returns more


def test_the_recipes_pass_rate_applies_unless_one_is_given(tmp_path):
    """The cube's agents pass at 91 % in their unseen worlds (README item 44), Push-T's at 85 %: an agent at 90 %
    passes Push-T's check and not the cube's, unless ``--pass-rate`` says otherwise."""
    steps = Steps({0: 0.9})
    pusht = run(CheckedConfig(root=str(tmp_path / "p"), max_seeds=1, deploy=False), steps)
    cube = run(CheckedConfig(recipe="cube", root=str(tmp_path / "c"), max_seeds=1, deploy=False), steps)
    given = run(CheckedConfig(recipe="cube", root=str(tmp_path / "g"), max_seeds=1, deploy=False, pass_rate=0.85),
                steps)
    assert [r["judged"][0]["passes"] for r in (pusht, cube, given)] == [True, False, True]
    assert [r["config"]["pass_rate"] for r in (pusht, cube, given)] == [0.85, 0.91, 0.85]


def test_when_no_seed_passes_the_best_is_deployed_or_nothing(tmp_path):
    steps = Steps({0: 0.3, 1: 0.6, 2: 0.1})
    record = run(CheckedConfig(root=str(tmp_path), max_seeds=3, parallel=2), steps)
    assert steps.batches == [[0, 1], [2]]
    assert record["chosen"] == {"seed": 1, "run": str(tmp_path / "seed_1"), "passes": False}
    assert steps.deployed == [(str(tmp_path / "seed_1"), "pusht")]
    strict = run(CheckedConfig(root=str(tmp_path / "strict"), max_seeds=3, parallel=3, deploy_unchecked=False), steps)
    assert strict["chosen"] is None and strict["deployed"] is None and len(steps.deployed) == 1
    assert json.loads((tmp_path / "strict" / "checked.json").read_text())["chosen"] is None


def test_the_recipes_are_the_readmes():
    pusht, cube = recipes()["pusht"], recipes()["cube"]
    assert (pusht.train.env_id, pusht.train.iterations, pusht.train.gamma, pusht.train.goal_starts,
            pusht.train.forward_model, pusht.train.local_model, pusht.deployment) == \
        ("WMPushT-v0", 3000, 0.98, 0.25, "state", "state", "pusht")
    assert (cube.train.env_id, cube.train.iterations, cube.train.reset_starts, cube.train.state_model,
            cube.train.disagreement_weight, cube.train.disagreement_dims, cube.deployment) == \
        ("WMPushCube-v0", 1500, 0.5, "cube_state_agent1", 30.0, (0, 1, 4, 5), "cube")
    for recipe in (pusht, cube):  # the training touches no reference system: the deployment does
        assert recipe.train.eval_every == 0 and recipe.train.final_eval_episodes == 0
    # Push-T's agents are judged in their own world, the cube's in the two shipped worlds they never trained in
    assert pusht.judge_worlds == () and cube.judge_worlds == ("cube_state_walls", "cube_state")
    assert (pusht.pass_rate, cube.pass_rate) == (0.85, 0.91)
    assert cube.train.ensemble_forward and not pusht.train.ensemble_forward  # README items 45, 46
    assert cube.train.state_model not in cube.judge_worlds
    assert not set(cube.judge_worlds) & set(cube.train.state_ensemble)


def test_a_run_of_another_recipe_is_refused_by_name(tmp_path):
    train = recipes()["pusht"].train
    (tmp_path / "seed_4").mkdir()
    theirs = json.loads(json.dumps({"train": {**vars(seed_config(train, tmp_path, 4)), "gamma": 0.9,
                                              "threads": 2}}, default=list))
    (tmp_path / "seed_4" / "config.json").write_text(json.dumps(theirs))
    with pytest.raises(ValueError, match=r"seed_4 holds a run of another recipe \(gamma=0.9 vs 0.98\)"):
        seed_config(train, tmp_path, 4)
    theirs["train"]["gamma"] = 0.98  # threads, run_dir and stop_after do not change what a seed trains
    (tmp_path / "seed_4" / "config.json").write_text(json.dumps(theirs))
    assert seed_config(train, tmp_path, 4).seed == 4


@pytest.mark.parametrize("kwargs, match", [
    ({"recipe": "hopper"}, r"unknown recipe 'hopper'; choose one of \['cube', 'pusht'\]"),
    ({"max_seeds": 0}, "max_seeds must be >= 1, got 0"),
    ({"parallel": 0}, "parallel must be >= 1, got 0"),
    ({"judge_episodes": 0}, "judge_episodes must be >= 1, got 0"),
    ({"deploy_episodes": 0}, "deploy_episodes must be >= 1, got 0"),
    ({"first_seed": -1}, "first_seed must be >= 0, got -1"),
    ({"pass_rate": 85.0}, r"pass_rate must lie in \(0, 1\], got 85.0"),
    ({"pass_rate": 0.0}, r"pass_rate must lie in \(0, 1\], got 0.0"),
])
def test_config_errors_name_the_problem(kwargs, match):
    with pytest.raises(ValueError, match=match):
        CheckedConfig(**kwargs)


def test_the_cli_takes_the_recipes_training_flags_after_a_double_dash(monkeypatch, capsys, tmp_path):
    import fog_agent.checked as checked

    assert split_argv(["--root", "r"]) == (["--root", "r"], None)
    assert split_argv(["--root", "r", "--", "--gamma", "0.9"]) == (["--root", "r"], ["--gamma", "0.9"])
    seen = {}

    def fake(cfg, train=None):
        seen.update(cfg=cfg, train=train)
        return {"judged": [{"seed": 2, "success_rate": 0.9, "passes": True}],
                "chosen": {"seed": 2, "run": "r/seed_2", "passes": True},
                "deployed": {"success_rate": 0.94, "mean_max_coverage": 0.97}}

    monkeypatch.setattr(checked, "run_checked", fake)
    main(["--recipe", "cube", "--root", str(tmp_path), "--", "--iterations", "7", "--gamma", "0.9"])
    assert seen["cfg"].recipe == "cube" and seen["cfg"].root == str(tmp_path)
    # the flags after -- change the recipe's fields; the rest stay the recipe's
    assert (seen["train"].iterations, seen["train"].gamma, seen["train"].state_model) == (7, 0.9, "cube_state_agent1")
    out = capsys.readouterr().out
    assert "seed 2: 90.0% imagined success (passes)" in out and "chosen: seed 2 (r/seed_2)" in out
    main(["--root", str(tmp_path)])
    assert seen["train"] is None  # no --: the recipe as it is
    assert seen["cfg"].judge_worlds is None  # the recipe's judges, resolved by run_checked
    main(["--root", str(tmp_path), "--judge-worlds"])
    assert seen["cfg"].judge_worlds == ()  # none: the agents' own world
    monkeypatch.setattr(checked, "run_checked", lambda cfg, train=None: {
        "judged": [{"seed": 0, "success_rate": 0.9, "passes": True, "own_success_rate": 0.96,
                    "worlds": {"cube_state_walls": 0.92, "cube_state": 0.88}}],
        "chosen": {"seed": 0, "run": "r/seed_0", "passes": True}, "deployed": None})
    main(["--recipe", "cube", "--root", str(tmp_path)])
    assert "seed 0: 90.0% imagined success in cube_state_walls, cube_state (96.0% in its own) (passes)" in \
        capsys.readouterr().out
    monkeypatch.setattr(checked, "run_checked", lambda cfg, train=None: {
        "judged": [{"seed": 0, "success_rate": 0.2, "passes": False}], "chosen": None, "deployed": None})
    with pytest.raises(SystemExit) as stop:
        main(["--root", str(tmp_path), "--no-deploy-unchecked", "--max-seeds", "1"])
    assert stop.value.code == 1
    assert "no seed of 1 reaches 85% imagined success: nothing deployed (--first-seed 1 trains more)" in \
        capsys.readouterr().out
    with pytest.raises(SystemExit):  # the cube's bound, its recipe's
        main(["--recipe", "cube", "--root", str(tmp_path), "--no-deploy-unchecked", "--max-seeds", "1"])
    assert "no seed of 1 reaches 91% imagined success" in capsys.readouterr().out


def test_two_debug_seeds_train_in_two_processes_and_are_judged_in_their_world(tmp_path, one_thread):
    """The real steps: two debug cube agents trained at once in spawned processes, judged in the state world as
    fog-eval-imagined judges them; a rerun resumes them (nothing trains again) and judges them alike."""
    from fog_agent.imagined import ImaginedEvalConfig, evaluate_imagined

    train = AgentTrainConfig(env_id="WMPushCube-v0", preset="debug", local_model="state", forward_model="state",
                             eval_env_id=None, threads=1)
    cfg = CheckedConfig(recipe="cube", root=str(tmp_path), max_seeds=2, parallel=2, judge_episodes=4, deploy=False,
                        judge_worlds=())
    record = run_checked(cfg, train)
    assert [r["seed"] for r in record["judged"]] == [0, 1]
    for row in record["judged"]:
        assert (tmp_path / f"seed_{row['seed']}" / "checkpoints" / "latest.pt").is_file()
        assert row["checkpoint_iteration"] == 2 and 0.0 <= row["success_rate"] <= 1.0
        assert row["curve"] == []  # no --imagined-eval-every in this recipe
        direct = evaluate_imagined(row["run"], ImaginedEvalConfig(run_dirs=(row["run"],), episodes=4, tag="direct"))
        assert direct["success_rate"] == row["success_rate"] and direct["mean_return"] == row["mean_return"]
    seeds = [json.loads((tmp_path / f"seed_{s}" / "config.json").read_text())["train"]["seed"] for s in (0, 1)]
    assert seeds == [0, 1]
    mtime = (tmp_path / "seed_0" / "checkpoints" / "latest.pt").stat().st_mtime_ns
    again = run_checked(cfg, train)
    assert again["judged"] == record["judged"]
    assert (tmp_path / "seed_0" / "checkpoints" / "latest.pt").stat().st_mtime_ns == mtime
    # judged in two other worlds: success and return are their means, each as fog-eval-imagined --state-model
    # judges it; the agent's own world is kept beside them
    worlds = ("cube_state_walls", "cube_state")
    other = run_checked(CheckedConfig(recipe="cube", root=str(tmp_path), max_seeds=2, parallel=2, judge_episodes=4,
                                      deploy=False), train)  # the cube recipe's judges
    assert tuple(other["config"]["judge_worlds"]) == worlds
    for row, own in zip(other["judged"], record["judged"]):
        assert row["own_success_rate"] == own["success_rate"] and list(row["worlds"]) == list(worlds)
        each = [evaluate_imagined(row["run"], ImaginedEvalConfig(run_dirs=(row["run"],), episodes=4, state_model=w,
                                                                 tag="direct")) for w in worlds]
        assert row["worlds"] == {w: r["success_rate"] for w, r in zip(worlds, each)}
        assert row["success_rate"] == pytest.approx(sum(r["success_rate"] for r in each) / 2)
        assert row["mean_return"] == pytest.approx(sum(r["mean_return"] for r in each) / 2)
        assert row["mean_return"] != own["mean_return"]  # other worlds, other episodes
