"""The Quick-start demo runs end to end and says so."""

from __future__ import annotations

from tests.test_cli import run_cli


def test_demo_carries_referrals_to_the_hospital_and_outcomes_back() -> None:
    result = run_cli("demo", "--cases", "40")
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    assert "anonymous capacity probes, no Patient" in result.stdout
    assert "{'accepted': 5, 'done': 6, 'rejected': 1}" in result.stdout
    assert "Linked-record rows in their cases: 12" in result.stdout
    assert "demo passed" in result.stdout
    assert "Traceback" not in output
