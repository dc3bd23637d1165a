"""The Quick-start demo runs end to end and says so."""

from __future__ import annotations

from tests.test_cli import run_cli


def test_demo_pulls_everything_once_then_only_the_edits() -> None:
    result = run_cli("demo", "--cases", "40")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "40 new of 40 read" in result.stdout
    assert "pull 2 (nothing changed): 0 new" in result.stdout
    assert "pull 3 (only the edits): 5 new" in result.stdout
    assert "demo passed" in result.stdout
