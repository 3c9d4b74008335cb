"""The FoG-vs-PPO head-to-head: its numbers against hand-computed values, and the runner in debug mode."""

from __future__ import annotations

import json

import numpy as np
import pytest

from baselines.compare import CompareConfig, run_comparison, summarize, table
from baselines.compare_stats import curve, final_value, first_crossing, mean_std, on_grid, trailing_mean


pytestmark = pytest.mark.usefixtures("one_thread")


def test_trailing_mean_and_final_value():
    y = np.array([1.0, 3.0, 5.0, 7.0])
    np.testing.assert_allclose(trailing_mean(y, 2), [1.0, 2.0, 4.0, 6.0])
    np.testing.assert_allclose(trailing_mean(y, 10), [1.0, 2.0, 3.0, 4.0])
    assert final_value(np.arange(20.0)) == 18.5  # mean of the last tenth (18, 19)
    assert final_value(np.zeros(0)) is None
    with pytest.raises(ValueError, match="window"):
        trailing_mean(y, 0)


def test_first_crossing_and_curve():
    rows = [{"s": 10, "r": 0.1}, {"s": 20, "r": None}, {"s": 30, "r": 0.5}, {"s": 40, "r": 0.9}]
    x, y = curve(rows, "s", "r")
    np.testing.assert_array_equal(x, [10, 30, 40])
    assert first_crossing(x, y, 0.5) == 30.0
    assert first_crossing(x, y, 1.0) is None


def test_on_grid_mean_and_std_over_curves():
    a = (np.array([0.0, 10.0]), np.array([0.0, 10.0]))  # y = x
    b = (np.array([0.0, 10.0]), np.array([2.0, 2.0]))  # y = 2
    c = (np.array([0.0, 5.0]), np.array([1.0, 1.0]))  # ends at 5
    mean, std = on_grid([a, b, c], np.array([0.0, 4.0, 10.0]))
    np.testing.assert_allclose(mean, [1.0, 7.0 / 3.0, 6.0])
    np.testing.assert_allclose(std, [np.std([0, 2, 1]), np.std([4, 2, 1]), 4.0])
    assert mean_std([1.0, None, 3.0]) == {"mean": 2.0, "std": 1.0, "n": 2}
    assert mean_std([None]) == {"mean": None, "std": None, "n": 0}


def _rows(steps, rewards):
    return [{"train/imagined_steps": s, "train/reward": r, "time/wall_s": s / 100} for s, r in zip(steps, rewards)]


def test_summary_steps_to_ppo_final_and_verdicts():
    """FoG crosses PPO's final reward (mean of its last tenth over seeds) at a known step."""
    cfg = CompareConfig(env_id="WMToy-v0", seeds=(0,), fog_preset="debug", iterations=10)  # budget 10·4·4 = 160
    steps = np.arange(16, 161, 16)
    runs = {
        "fog": {0: {"metrics": _rows(steps, np.linspace(0.0, 1.0, 10)),
                    "evals": [{"imagined_steps": 160, "success_rate": 0.6, "mean_max_coverage": 0.7}]}},
        "ppo": {0: {"metrics": _rows(steps, [0.0] * 9 + [0.1]),
                    "evals": [{"imagined_steps": 160, "success_rate": 0.2, "mean_max_coverage": 0.3}]}},
    }
    s = summarize(cfg, runs)
    assert s["budget_imagined_steps"] == 160
    assert s["per_seed"]["ppo"][0]["final_reward"] == pytest.approx(0.1)
    # FoG's rewards are 0, 1/9, 2/9, ...: the first one >= 0.1 is the second, at step 32
    assert s["per_seed"]["fog"][0]["steps_to_ppo_final_reward"] == 32.0
    assert s["per_seed"]["fog"][0]["fraction_of_ppo_budget"] == pytest.approx(0.2)
    assert s["verdicts"] == {"fog_reaches_ppo_final_reward_within_a_tenth_of_the_steps": False,
                             "fog_zero_shot_success_higher": True}
    assert s["aggregate"]["fog"]["zero_shot_success"]["mean"] == 0.6
    # 90% of PPO's gain (from 0 to 0.1) is 0.09: FoG crosses it at step 32, PPO only at its last step
    assert s["reward_at_90pct_of_ppo_gain"] == pytest.approx(0.09)
    assert s["per_seed"]["fog"][0]["steps_to_90pct_of_ppo_gain"] == 32.0
    assert s["per_seed"]["ppo"][0]["steps_to_90pct_of_ppo_gain"] == 160.0
    assert s["fog_over_ppo_steps_to_90pct_of_ppo_gain"] == pytest.approx(0.2)
    assert "| fog | 1.000 ± 0.000 | 32 ± 0 | 0.60 ± 0.00 |" in table(s)


def test_debug_comparison_writes_json_and_plot_and_resumes(tmp_path, capsys):
    cfg = CompareConfig(seeds=(0, 1), out_dir=str(tmp_path / "cmp"), debug=True)
    summary = run_comparison(cfg)
    out = tmp_path / "cmp"
    saved = json.loads((out / "compare.json").read_text())
    assert saved["config"]["env_id"] == "WMToy-v0" and saved["budget_imagined_steps"] == 64
    for method in ("fog", "ppo"):
        for seed in ("0", "1"):
            fig = saved["per_seed"][method][seed]
            assert fig["imagined_steps"] == 64 and np.isfinite(fig["final_reward"])
        assert summary["aggregate"][method]["final_reward"]["n"] == 2
    assert (out / "compare.png").stat().st_size > 0
    # a rerun trains nothing again: the finished runs' logs are untouched
    before = {p: p.read_text() for p in out.glob("*_seed*/metrics.jsonl")}
    run_comparison(cfg)
    assert {p: p.read_text() for p in out.glob("*_seed*/metrics.jsonl")} == before


def test_bad_comparison_configs_name_the_problem(tmp_path):
    with pytest.raises(ValueError, match="seeds is empty"):
        run_comparison(CompareConfig(seeds=(), out_dir=str(tmp_path), debug=True))
    with pytest.raises(ValueError, match="evals"):
        run_comparison(CompareConfig(iterations=2, evals=3, out_dir=str(tmp_path)))
