"""The README's test command is the one CI runs."""

from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_ci_runs_the_readme_test_command():
    readme = (ROOT / "README.md").read_text()
    ci_lines = [ln.strip() for ln in (ROOT / ".ci" / "run").read_text().splitlines()
                if ln.strip() and not ln.strip().startswith("#")]
    test_cmd = ci_lines[-1]
    assert "pytest" in test_cmd
    assert f"\n{test_cmd}\n" in readme, f"README does not show CI's test command: {test_cmd}"
