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
