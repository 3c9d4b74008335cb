"""fog_agent.imagined (``fog-eval-imagined``): agents evaluated inside a learned world."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from fog_agent.imagined import ImaginedEvalConfig, evaluate_imagined, rank, rollout_outcomes, run_imagined


class CountingEnvs:
    """Two envs: the observation is the step count; reward = the action's first value; success from step 3 on
    for env 0 only; aux 'coverage' = (t mod 3) / 2 for env 0 and t / 10 for env 1."""

    def reset(self, seed=None):
        self.t, self.seed = 0, seed
        return np.zeros((2, 1), np.float32), {}

    def step(self, action):
        self.t += 1
        obs = np.full((2, 1), self.t, np.float32)
        info = {"is_success": np.array([self.t >= 3, False]),
                "coverage": np.array([(self.t % 3) / 2, self.t / 10]),
                "_coverage": np.array([True, True])}  # Gymnasium's mask keys are not aux values
        return obs, action[:, 0].astype(np.float64), np.zeros(2, bool), np.zeros(2, bool), info


def test_rollout_outcomes_by_hand():
    seen = []

    def act(obs):
        seen.append(obs.clone())
        return torch.tensor([[0.5], [-1.0]]) * (obs + 1)

    out = rollout_outcomes(act, CountingEnvs(), steps=4, seed=11)
    # actions at observations 0..3: env 0 0.5·(1+2+3+4) = 5, env 1 −10
    np.testing.assert_allclose(out["returns"], [5.0, -10.0])
    assert out["successes"].tolist() == [True, False]
    # env 0's coverage over t = 1..4: 0.5, 1, 0, 0.5; env 1's: 0.1 .. 0.4
    np.testing.assert_allclose(out["max_coverage"], [1.0, 0.4])
    np.testing.assert_allclose(out["min_coverage"], [0.0, 0.1])
    assert set(out) == {"successes", "returns", "max_coverage", "min_coverage"}
    assert [float(o[0, 0]) for o in seen] == [0.0, 1.0, 2.0, 3.0]


def test_rank_orders_by_success_then_return():
    rows = [{"run": "a", "success_rate": 0.5, "mean_return": 1.0},
            {"run": "b", "success_rate": 0.7, "mean_return": 0.0},
            {"run": "c", "success_rate": 0.5, "mean_return": 2.0, "mean_max_coverage": 0.9, "other": 3}]
    assert [r["run"] for r in rank(rows)] == ["b", "c", "a"]
    assert rank(rows)[1] == {"run": "c", "success_rate": 0.5, "mean_return": 2.0, "mean_max_coverage": 0.9}


def test_rank_marks_the_agents_that_pass_the_check():
    rows = [{"run": "a", "success_rate": 0.85, "mean_return": 1.0},
            {"run": "b", "success_rate": 0.849, "mean_return": 5.0},
            {"run": "c", "success_rate": 0.9, "mean_return": 0.0}]
    ranked = rank(rows, pass_rate=0.85)
    assert [(r["run"], r["passes"]) for r in ranked] == [("c", True), ("a", True), ("b", False)]
    assert "passes" not in rank(rows)[0]


@pytest.mark.parametrize("rates, code, said", [
    ((0.9, 0.5), 0, "1 of 2 agents reach 85% imagined success: a"),
    ((0.84, 0.5), 1, "0 of 2 agents reach 85% imagined success: train another seed"),
])
def test_the_check_exits_with_status_1_when_no_agent_passes(monkeypatch, capsys, rates, code, said):
    import fog_agent.imagined as imagined

    rows = [{"run": run, "success_rate": rate, "mean_return": 0.0} for run, rate in zip("ab", rates)]
    monkeypatch.setattr(imagined, "run_imagined", lambda cfg: rank(rows, cfg.pass_rate))
    monkeypatch.setattr("sys.argv", ["fog-eval-imagined", "--run-dirs", "a", "b", "--pass-rate", "0.85"])
    if code:
        with pytest.raises(SystemExit) as stop:
            imagined.main()
        assert stop.value.code == code
    else:
        imagined.main()
    assert said in capsys.readouterr().out


@pytest.mark.parametrize("kwargs, match", [
    ({}, "at least one --run-dirs"),
    ({"run_dirs": ("r",), "episodes": 0}, "episodes must be >= 1, got 0"),
    ({"run_dirs": ("r",), "starts": "goal"}, "unknown starts 'goal'"),
    ({"run_dirs": ("r",), "episode_steps": 0}, "episode_steps must be >= 1, got 0"),
    ({"run_dirs": ("r",), "pass_rate": 0.0}, r"pass_rate must lie in \(0, 1\], got 0.0"),
    ({"run_dirs": ("r",), "pass_rate": 85.0}, r"pass_rate must lie in \(0, 1\], got 85.0"),
])
def test_config_errors_name_the_problem(kwargs, match):
    with pytest.raises(ValueError, match=match):
        ImaginedEvalConfig(**kwargs)


@pytest.fixture(scope="module")
def cube_runs(tmp_path_factory):
    """Two debug cube agents trained in the state world (seconds each), and one in the RSSM world's place."""
    from fog_agent.train import AgentTrainConfig, train_agent

    root = tmp_path_factory.mktemp("imagined")
    runs = []
    for seed in (0, 1):
        run = root / f"cube_s{seed}"
        train_agent(AgentTrainConfig(env_id="WMPushCube-v0", preset="debug", run_dir=str(run), seed=seed,
                                     local_model="state", forward_model="state", eval_env_id=None), progress=False)
        runs.append(run)
    return runs


def test_an_agent_is_judged_in_its_own_world_deterministically(cube_runs, one_thread):
    run = cube_runs[0]
    cfg = ImaginedEvalConfig(run_dirs=(str(run),), episodes=6, episode_steps=12, seed=3)
    first = evaluate_imagined(run, cfg)
    again = evaluate_imagined(run / "checkpoints" / "latest.pt", cfg)  # a checkpoint file reads its run's config
    assert first["successes"] == again["successes"] and first["mean_return"] == again["mean_return"]
    assert first["forward_model"] == "state" and first["starts"] == "reset" and first["episode_steps"] == 12
    assert len(first["successes"]) == 6 and 0.0 <= first["success_rate"] <= 1.0
    # the cube's aux value, the cube's distance to the goal, is summarised both ways
    assert 0.0 <= first["mean_min_cube_goal_distance"] <= first["mean_max_cube_goal_distance"]
    saved = json.loads((run / "eval_imagined.json").read_text())
    assert saved["mean_return"] == first["mean_return"]
    # another seed, the world's own starts, another judge: other episodes
    other = evaluate_imagined(run, ImaginedEvalConfig(run_dirs=(str(run),), episodes=6, episode_steps=12, seed=4))
    assert other["mean_return"] != first["mean_return"]
    world = evaluate_imagined(run, ImaginedEvalConfig(run_dirs=(str(run),), episodes=6, episode_steps=12, seed=3,
                                                      starts="world", tag="world"))
    assert world["mean_return"] != first["mean_return"] and (run / "eval_imagined_world.json").is_file()
    wall = evaluate_imagined(run, ImaginedEvalConfig(run_dirs=(str(run),), episodes=6, episode_steps=12, seed=3,
                                                     starts="wall", tag="wall"))
    assert wall["starts"] == "wall" and wall["mean_return"] != first["mean_return"]
    judged = evaluate_imagined(run, ImaginedEvalConfig(run_dirs=(str(run),), episodes=6, episode_steps=12, seed=3,
                                                       state_model="cube_state_walls", tag="walls"))
    assert judged["state_model"] == "cube_state_walls" and judged["mean_return"] != first["mean_return"]
    # sampled actions: seeded by --seed, so repeatable, and not the deterministic policy's episodes
    sampled = [evaluate_imagined(run, ImaginedEvalConfig(run_dirs=(str(run),), episodes=6, episode_steps=12, seed=3,
                                                         stochastic=True, tag="sampled")) for _ in range(2)]
    assert sampled[0]["mean_return"] == sampled[1]["mean_return"] != first["mean_return"]
    assert sampled[0]["stochastic"] and not first["stochastic"]


def test_the_cli_ranks_the_agents(cube_runs, tmp_path, one_thread):
    out = tmp_path / "ranking.json"
    ranked = run_imagined(ImaginedEvalConfig(run_dirs=tuple(str(r) for r in cube_runs), episodes=4, episode_steps=8,
                                             out=str(out)))
    assert sorted(r["run"] for r in ranked) == sorted(str(r) for r in cube_runs)
    assert ranked == rank(ranked)
    assert json.loads(out.read_text())["ranking"] == ranked
    checked = run_imagined(ImaginedEvalConfig(run_dirs=tuple(str(r) for r in cube_runs), episodes=4,
                                              episode_steps=8, pass_rate=0.5))
    assert [r["passes"] for r in checked] == [r["success_rate"] >= 0.5 for r in ranked]


def test_wall_starts_put_every_judged_cube_next_to_a_wall(one_thread):
    """``--starts wall``: every imagined episode starts as a reset with the cube within 0.15 m of its reset limit."""
    from fog_agent.imagined import judge_env

    envs, steps = judge_env("WMPushCube-v0", "state", 16, "wall", 12, local_model="state", state_model="cube_state")
    envs.reset(seed=0)
    edge = envs.backend.state()[:, 4:6].abs().amax(-1)
    assert steps == 12 and float(edge.min()) >= 1.2 - 0.15 - 1e-5 and float(edge.max()) <= 1.2 + 1e-5


def test_errors_name_the_problem(cube_runs, tmp_path):
    run = cube_runs[0]
    config = json.loads((run / "config.json").read_text())
    diffusion = tmp_path / "diffusion"
    (diffusion / "checkpoints").mkdir(parents=True)
    (diffusion / "checkpoints" / "latest.pt").write_bytes((run / "checkpoints" / "latest.pt").read_bytes())
    (diffusion / "config.json").write_text(json.dumps({**config, "train": {**config["train"],
                                                                           "forward_model": "diffusion"}}))
    with pytest.raises(ValueError, match="starts='reset' needs a state world .*forward_model='diffusion'"):
        evaluate_imagined(diffusion, ImaginedEvalConfig(run_dirs=(str(diffusion),), episodes=2))
    with pytest.raises(ValueError, match="starts='wall' needs a state world .*forward_model='diffusion'"):
        evaluate_imagined(diffusion, ImaginedEvalConfig(run_dirs=(str(diffusion),), episodes=2, starts="wall"))
    (diffusion / "config.json").unlink()
    with pytest.raises(FileNotFoundError, match="no config.json"):
        evaluate_imagined(diffusion, ImaginedEvalConfig(run_dirs=(str(diffusion),), episodes=2))
    # an RSSM agent's observations are RSSM features: another state model cannot judge it
    (diffusion / "config.json").write_text(json.dumps(config))
    ckpt = torch.load(diffusion / "checkpoints" / "latest.pt", weights_only=False)
    torch.save({**ckpt, "local_model": "rssm"}, diffusion / "checkpoints" / "latest.pt")
    with pytest.raises(ValueError, match="--state-model needs an agent trained with local_model='state'"):
        evaluate_imagined(diffusion, ImaginedEvalConfig(run_dirs=(str(diffusion),), episodes=2,
                                                        state_model="cube_state_walls"))


def test_training_judges_the_policy_in_the_world_and_keeps_the_best(tmp_path, one_thread):
    """--imagined-eval-every: a row per evaluation, the best one's checkpoint kept, and that checkpoint judged again
    by fog-eval-imagined (the same 5 reset starts, seed 7) gives the row's figures; a resumed run writes the same rows
    and the same best checkpoint as an uninterrupted one."""
    from fog_agent.train import AgentTrainConfig, train_agent

    common = dict(env_id="WMPushCube-v0", preset="debug", local_model="state", forward_model="state", iterations=4,
                  eval_env_id=None, imagined_eval_every=1, imagined_eval_episodes=5, checkpoint_every=100)
    train_agent(AgentTrainConfig(run_dir=str(tmp_path / "a"), **common), progress=False)
    rows = [json.loads(line) for line in (tmp_path / "a" / "imagined.jsonl").read_text().splitlines()]
    assert [r["iteration"] for r in rows] == [1, 2, 3, 4]
    best = max(rows, key=lambda r: (r["success_rate"], r["mean_return"]))
    saved = torch.load(tmp_path / "a" / "checkpoints" / "best_imagined.pt", weights_only=False)
    assert saved["agent"]["iteration"] == best["iteration"]
    assert saved["best_imagined"] == {k: best[k] for k in ("iteration", "success_rate", "mean_return")}
    latest = torch.load(tmp_path / "a" / "checkpoints" / "latest.pt", weights_only=False)
    assert latest["best_imagined"] == saved["best_imagined"]
    again = evaluate_imagined(tmp_path / "a" / "checkpoints" / "best_imagined.pt",
                              ImaginedEvalConfig(run_dirs=("x",), episodes=5, seed=7))
    assert again["success_rate"] == best["success_rate"]
    assert again["mean_return"] == pytest.approx(best["mean_return"], rel=1e-6)
    assert set(rows[0]) >= {"success_rate", "mean_return", "mean_min_cube_goal_distance", "imagined_steps"}

    train_agent(AgentTrainConfig(run_dir=str(tmp_path / "b"), stop_after=2, **common), progress=False)
    train_agent(AgentTrainConfig(run_dir=str(tmp_path / "b"), **common), progress=False)
    assert (tmp_path / "b" / "imagined.jsonl").read_text() == (tmp_path / "a" / "imagined.jsonl").read_text()
    resumed = torch.load(tmp_path / "b" / "checkpoints" / "best_imagined.pt", weights_only=False)
    for k, v in saved["agent"]["model"].items():
        assert torch.equal(v, resumed["agent"]["model"][k]), k


def test_training_config_refuses_no_imagined_episodes():
    from fog_agent.train import AgentTrainConfig

    with pytest.raises(ValueError, match="imagined_eval_episodes must be >= 1 with imagined_eval_every, got 0"):
        AgentTrainConfig(imagined_eval_every=10, imagined_eval_episodes=0)
    with pytest.raises(ValueError, match="imagined_eval_every must be >= 0, got -1"):
        AgentTrainConfig(imagined_eval_every=-1)


def test_selection_bench_statistics_by_hand(tmp_path):
    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    from benchmarks.bench_imagined_selection import judge_names, ranks, real_success, recipe, selection, spearman

    np.testing.assert_allclose(ranks(np.array([0.3, 0.1, 0.3, 0.9])), [2.5, 1.0, 2.5, 4.0])
    assert spearman([1, 2, 3], [10, 30, 20]) == pytest.approx(0.5)
    assert spearman([1, 2, 3], [3, 2, 1]) == pytest.approx(-1.0)
    assert spearman([1, 1, 1], [1, 2, 3]) is None
    # the best imagined agents tie: the chosen figure is their mean
    assert selection([0.9, 0.5, 0.9], [0.6, 0.7, 1.0]) == {"chosen": 0.8, "mean": pytest.approx(0.7667, abs=1e-4),
                                                          "best": 1.0, "worst": 0.6}
    assert recipe("runs/g98goal_s12") == "g98goal" and recipe("runs/cube_reset_s0") == "cube_reset"
    assert recipe("runs/checked_cube/seed_3") == "checked_cube"  # fog-train-checked's ROOT/seed_S
    assert judge_names(["reset"], []) == ["reset"]
    assert judge_names(["reset", "world"], ["a", "b"]) == ["reset", "reset@a", "reset@b", "reset@others",
                                                          "world", "world@a", "world@b", "world@others"]
    a, b = tmp_path / "a.json", tmp_path / "b.json"
    a.write_text(json.dumps({"successes": [True, False, False, False]}))
    b.write_text(json.dumps({"rows": [{"setting": "other_s0", "successes": [False]},
                                      {"setting": "cube_s1", "successes": [True, True]}]}))
    assert real_success(str(a), "runs/x_s0") == 0.25
    assert real_success(f"{a}+{b}", "runs/cube_s1") == 0.5  # pooled episode by episode: 3 of 6
    with pytest.raises(ValueError, match="no row named 'x_s0'"):
        real_success(str(b), "runs/x_s0")


def test_selection_bench_runs_on_two_debug_agents(cube_runs, tmp_path, one_thread):
    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    from benchmarks.bench_imagined_selection import main

    agents = []
    for run, rate in zip(cube_runs, (0.2, 0.8)):
        real = tmp_path / f"{run.name}.json"
        real.write_text(json.dumps({"successes": [True] * int(10 * rate) + [False] * int(10 - 10 * rate)}))
        agents += ["--agent", f"{run}={real}"]
    out = tmp_path / "selection.json"
    assert main([*agents, "--episodes", "3", "--episode-steps", "6", "--out", str(out)]) == 0
    saved = json.loads(out.read_text())
    assert [r["real"] for r in saved["agents"]] == [0.2, 0.8]
    assert set(saved["recipes"]) == {"cube"} and set(saved["recipes"]["cube"]) == {"reset", "world"}
    assert set(saved["pooled_spearman"]) == {"WMPushCube-v0"}
    assert saved["recipes"]["cube"]["reset"]["mean"] == pytest.approx(0.5)
    # judged in other worlds too: each world's success is fog-eval-imagined's there, @others their mean
    out = tmp_path / "worlds.json"
    assert main([*agents, "--episodes", "3", "--episode-steps", "6", "--starts", "reset",
                 "--judge-world", "cube_state_walls", "--judge-world", "cube_state", "--out", str(out)]) == 0
    saved = json.loads(out.read_text())
    assert saved["judges"] == ["reset", "reset@cube_state_walls", "reset@cube_state", "reset@others"]
    for run, row in zip(cube_runs, saved["agents"]):
        walls = json.loads((run / "eval_imagined_selection_reset_cube_state_walls.json").read_text())
        assert walls["state_model"] == "cube_state_walls"
        assert row["reset@cube_state_walls"] == walls["success_rate"]
        assert row["reset@others"] == pytest.approx((row["reset@cube_state_walls"] + row["reset@cube_state"]) / 2)
    assert set(saved["recipes"]["cube"]) == set(saved["judges"])


def test_stall_bench_summary_by_hand():
    """benchmarks/bench_imagined_stalls.py: one finished episode, one held at 0.94 coverage, counted by hand."""
    from benchmarks.bench_imagined_stalls import stall_summary

    coverage = np.array([[0.2, 0.5], [0.96, 0.85], [0.97, 0.94], [0.97, 0.94]])
    actions = np.array([[1.0, 0.5], [1.0, 0.1], [1.0, 0.1], [1.0, 0.1]])
    states = np.array([[0.0, 0.0], [1.0, 0.0], [2.0, 0.5], [3.0, 0.5]])[..., None]
    s = stall_summary(coverage, actions, states, tail=2)
    assert s["episodes"] == 2 and s["success_rate"] == 0.5
    assert s["unfinished_by_best_coverage"] == {"0-0.5": 0, "0.5-0.8": 0, "0.8-0.9": 0, "0.9-0.93": 0, "0.93-0.95": 1}
    assert s["unfinished_near"] == 1 and s["unfinished_mean_steps_near"] == 3.0
    assert s["tail_action_norm"] == {"finished": 1.0, "unfinished": pytest.approx(0.1)}
    assert s["tail_state_motion"] == {"finished": 1.0, "unfinished": 0.25}
    assert s["unfinished_final_coverage"] == 0.94
