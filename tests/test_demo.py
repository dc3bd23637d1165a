"""The Quick-start demo runs end to end and says so."""

from __future__ import annotations

import re

from tests.test_cli import run_cli


def test_demo_carries_referrals_to_every_department_and_outcomes_back() -> None:
    result = run_cli("demo", "--cases", "40")
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    assert "Traceback" not in output
    stdout = result.stdout
    # Health: anonymous probes, identified referrals after acceptance, outcomes in Primero.
    assert "anonymous capacity probes, no Patient" in stdout
    assert "{'accepted': 5, 'done': 6, 'rejected': 1}" in stdout
    assert "Linked-record rows in their cases: 12" in stdout
    # Police: three referrals, three FIRs, their links in Primero.
    assert "police: CPOs refer 3 children" in stdout
    assert "police: the station registers 3 FIRs" in stdout
    assert "police: 3 statuses back, 3 written back" in stdout
    assert "police: 3 linked fir rows in Primero (PS-Kalri/2026/" in stdout
    # Birth registration: three searches, two registered births found, one not.
    assert "answered at once (2 registered)" in stdout
    assert re.search(
        r"birth_registration: 3 linked birth_registration rows in Primero "
        r"\(BRN-4220-2010-000040, BRN-4220-2011-000041, TX-\d+\)",
        stdout,
    )
    # Courts: two case summaries under a court order, two orders back.
    assert "courts: the court makes 2 supervision orders" in stdout
    assert "courts: 2 statuses back, 2 written back" in stdout
    assert "courts: 2 linked court_order rows in Primero" in stdout
    for department in ("police", "birth_registration", "courts"):
        assert f"{department}: nothing changed, the next run sends 0" in stdout
    # One summary table: department, children, sent, statuses back, written back, linked rows.
    assert "Demo: all departments" in stdout
    for department, children, linked in [
        ("health", 12, 12),
        ("police", 3, 3),
        ("birth_registration", 3, 3),
        ("courts", 2, 2),
    ]:
        row = rf"│ {department}\s+│ {children}\s+│ \d+\s+│ \d+\s+│ \d+\s+│ {linked}\s+│"
        assert re.search(row, stdout), f"no summary row for {department}"
    assert (
        "Primero referral statuses of the new referrals: health accepted 5, done 6, "
        "rejected 1; police accepted 3; birth_registration done 3; courts accepted 2."
    ) in stdout
    assert "demo passed" in stdout
