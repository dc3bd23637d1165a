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
    assert "health: 12 linked hospital rows in Primero for the 12 new referrals" in stdout
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
    # One story per department, every referral counted once, and the numbers add up:
    # found = refused before anything left + probed (or sent identified, without a probe);
    # probed = accepted + declined; accepted = refused after acceptance + sent identified.
    assert "What happened to every referral, department by department" in stdout
    rows = {
        m["department"]: {k: int(v) if v.isdigit() else 0 for k, v in m.groupdict().items()}
        for m in re.finditer(
            r"^ ?(?P<department>health|police|birth_registration|courts)\s+(?P<found>\d+)\s+"
            r"(?P<refused>\d+)\s+(?P<probed>\d+|-)\s+(?P<accepted>\d+)\s+"
            r"(?P<identified>\d+)\s+(?P<outcomes>\d+)\s*$",
            stdout,
            re.MULTILINE,
        )
    }
    assert set(rows) == {"health", "police", "birth_registration", "courts"}, stdout
    health = rows["health"]
    before = _count(
        r"health: \d+ referrals to .*?\n  (\d+) refused by the privacy policy before", stdout
    )
    after = _count(r"  (\d+) refused by the privacy policy after acceptance", stdout)
    assert health["found"] == before + health["probed"]
    assert health["refused"] == before + after
    assert health["probed"] == health["accepted"] + 1  # the hospital declined one
    assert health["accepted"] == after + health["identified"]
    # What the FHIR server holds agrees: a Task per probe, a ServiceRequest per identified.
    assert (
        f"FHIR server: {health['probed']} Tasks (one per probe), {health['identified']} "
        "ServiceRequests (one per identified referral)"
    ) in stdout
    assert health["identified"] >= 12 - after  # the demo's own referrals, S3 ones held back
    # The reasons, in words: the synthetic cases include refused consent and S3 cases.
    assert "consent to share is refused or withdrawn in Primero" in stdout
    assert "an S3 case waits for a second person's approval" in stdout
    for department, accepted in [("police", 3), ("birth_registration", 4), ("courts", 2)]:
        row = rows[department]
        assert row["probed"] == 0  # no capacity probe for these departments
        assert row["found"] == row["refused"] + row["identified"], department
        assert row["accepted"] == accepted and row["outcomes"] >= accepted, department
    assert health["outcomes"] == health["probed"]  # every probed referral has its answer
    assert "the department registered an FIR for 3" in stdout
    assert "the department answered 4 (2 registered births found)" in stdout
    assert "the department made an order on 2" in stdout
    assert (
        "Primero referral statuses of the demo's new referrals: health accepted 5, done 6, "
        "rejected 1; police accepted 3; birth_registration done 3; courts accepted 2."
    ) in stdout
    assert "demo passed" in stdout


def _count(pattern: str, text: str) -> int:
    """The number a line of the story starts with."""
    found = re.search(pattern, text, re.DOTALL)
    assert found is not None, pattern
    return int(found.group(1))
