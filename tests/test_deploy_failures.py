"""benchmarks/deploy_failures.py: failed Push-T episodes counted by the bin their max coverage ends in."""

import json
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.bench_imagined_stalls import by_best_coverage  # noqa: E402
from benchmarks.deploy_failures import failures, main  # noqa: E402


def test_failures_fall_in_bins_by_hand_with_each_edge_in_the_upper_bin():
    """0.95 is a success; 0.9 counts as a near miss, 0.8999 and 0.8 in the bin below, 0.79 below that."""
    counts = failures([0.95, 0.99, 0.949, 0.9, 0.8999, 0.8, 0.79, 0.0], [0.0, 0.8, 0.9])
    assert counts == {"episodes": 8, "failures": 6, "0-0.8": 2, "0.8-0.9": 2, "0.9-0.95": 2}


def test_one_inner_edge_splits_near_misses_from_the_rest():
    assert failures([0.93, 0.5, 1.0], [0.0, 0.9]) == {"episodes": 3, "failures": 2, "0-0.9": 1, "0.9-0.95": 1}


def test_a_bin_that_does_not_start_at_zero_leaves_lower_failures_out_of_the_bins_only():
    assert failures([0.3, 0.92], [0.8]) == {"episodes": 2, "failures": 2, "0.8-0.95": 1}


@pytest.mark.parametrize("bins", [(0.95,), (-0.1, 0.5), (0.0, 0.9, 0.8), (0.0, 0.9, 0.9)])
def test_bad_bins_fail_by_name(bins):
    with pytest.raises(ValueError, match="coverage bins must rise strictly"):
        by_best_coverage([0.5], bins)


def _write(path: Path, env_id: str, max_coverages: list[float]) -> str:
    path.write_text(json.dumps({"env_id": env_id, "success_rate": sum(c >= 0.95 for c in max_coverages)
                                / len(max_coverages), "max_coverages": max_coverages}))
    return str(path)


def test_main_pools_push_t_deployments_and_skips_other_systems(tmp_path, capsys):
    a = _write(tmp_path / "a.json", "RealPushT-v0", [0.96, 0.93, 0.85])
    b = _write(tmp_path / "b.json", "RealPushT-v0", [0.94, 0.2])
    cube = _write(tmp_path / "cube.json", "RealPushCube-v0", [0.1])
    out = tmp_path / "out.json"
    assert main([a, b, cube, "--out", str(out)]) == 0
    result = json.loads(out.read_text())
    assert result["all"] == {"episodes": 5, "failures": 4, "0-0.8": 1, "0.8-0.9": 1, "0.9-0.95": 2}
    assert [r["failures"] for r in result["deployments"]] == [2, 2]
    assert result["skipped"] == [cube]
    assert "| all 2 |  | 4 / 5 | 1 | 1 | 2 |" in capsys.readouterr().out


def test_main_refuses_files_without_a_push_t_evaluation_and_bad_bins_by_name(tmp_path, capsys):
    cube = _write(tmp_path / "cube.json", "RealPushCube-v0", [0.1])
    with pytest.raises(SystemExit):
        main([cube, "--out", str(tmp_path / "out.json")])
    assert "none of the 1 files is a RealPushT-v0 evaluation" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main([cube, "--bins", "0.9", "0.8", "--out", str(tmp_path / "out.json")])
    assert "coverage bins must rise strictly" in capsys.readouterr().err
    assert not (tmp_path / "out.json").exists()
