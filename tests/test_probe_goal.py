"""``benchmarks/bench_probe_goal.py``: the success-as-read figures against hand-made readings."""

import numpy as np
import pytest

from benchmarks.bench_probe_goal import score
from fog_envs.real.pusht_reward import GOAL_POSE


def test_score_counts_success_as_read_against_success_in_truth():
    """Two blocks exactly home and two 30 px off; the reader swaps one of each: precision and recall 1/2, and the
    block error is 0 px for the rows read right and 30 px for the swapped ones."""
    home = np.array([100.0, 100.0, *GOAL_POSE])
    off = home + np.array([0.0, 0.0, 30.0, 0.0, 0.0])
    true = np.stack([home, home, off, off])
    read = np.stack([home, off, home, off])
    s = score(true, read)
    assert s["true_success_share"] == 0.5 and s["read_success_share"] == 0.5
    assert s["precision"] == 0.5 and s["recall"] == 0.5
    assert s["block_px_median"] == pytest.approx(15.0) and s["block_px_p90"] == pytest.approx(30.0)
    assert s["block_deg_median"] == pytest.approx(0.0, abs=1e-6)
    perfect = score(true, true)
    assert perfect["precision"] == 1.0 and perfect["recall"] == 1.0 and perfect["coverage_abs_error_median"] == 0.0


def test_deploy_readings_hybrids_take_their_columns_from_the_truth():
    """``benchmarks/deploy_readings.py``: true-agent takes the agent's two columns from the true state and the
    block's four from the reading; true-block the other way round; every reading's error is recorded."""
    import torch

    from benchmarks.deploy_readings import READING_SOURCES, ReadingObserver
    from fog_envs.wm.tasks import get_task

    spec = get_task("pusht")
    state = np.array([100.0, 200.0, 300.0, 250.0, 1.0])
    true = spec.probe_targets(state[None]).astype(np.float32)
    probe = torch.from_numpy(true + 0.01)

    class Local:
        def read_frames(self, frames):
            return probe.clone()

    readings = {}
    for name in ("probe", "true", "true-agent", "true-block"):
        refine, columns = READING_SOURCES[name]
        observer = ReadingObserver(Local(), spec, columns)  # type: ignore[arg-type]
        readings[name] = observer.read(np.zeros((64, 64, 3), np.uint8), {"state": state}).numpy()[0]
        assert observer.errors["block_px"][0] > 0  # the probe's error, whatever the agent is given
    np.testing.assert_array_equal(readings["probe"], probe.numpy()[0])
    np.testing.assert_array_equal(readings["true"], true[0])
    np.testing.assert_array_equal(readings["true-agent"], np.r_[true[0, :2], probe.numpy()[0, 2:]])
    np.testing.assert_array_equal(readings["true-block"], np.r_[probe.numpy()[0, :2], true[0, 2:]])
