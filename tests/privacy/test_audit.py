"""The hash-chained audit log detects edits, reorders, deletions and truncation (privacy.md §7
item 21), and documents what it cannot detect: a rollback of log and head together, unless an
external anchor is checked."""

from __future__ import annotations

import json
from typing import Any

import pytest
import sqlalchemy as sa

from adapter.errors import PolicyViolation
from adapter.privacy import AuditLog, DisclosureGate, KeyRing, Stage
from adapter.privacy._tables import audit_head, audit_log
from adapter.state import StateStore

from .conftest import NOW, make_case


@pytest.fixture
def log(store: StateStore, ring: KeyRing, gate: DisclosureGate) -> AuditLog:
    for dept, purpose in [
        ("health", "referral"),
        ("police", "referral"),
        ("courts", "court_order"),
    ]:
        gate.disclose(make_case(), dept, purpose, Stage.IDENTIFIED, now=NOW)
    gate.disclose(
        make_case(consent_for_services=None), "health", "referral", Stage.IDENTIFIED, now=NOW
    )
    audit = AuditLog(store, ring)
    report = audit.verify()
    assert report.ok and report.entries == 10 and report.head_seq == 10  # 6 key events + 4
    return audit


def rows(store: StateStore) -> list[Any]:
    with store.transaction() as conn:
        return conn.execute(sa.select(audit_log).order_by(audit_log.c.seq)).all()


def problems(log: AuditLog) -> str:
    report = log.verify()
    assert not report.ok
    return "\n".join(report.problems)


def test_every_disclosure_and_refusal_is_logged_with_names_only(log: AuditLog) -> None:
    entries = [r.entry for r in log.entries()]
    disclosures = [e for e in entries if e["event"] in ("disclosure", "refusal")]
    assert [e["event"] for e in disclosures] == ["disclosure"] * 3 + ["refusal"]
    assert disclosures[0]["fields"] and "name" in disclosures[0]["fields"]
    assert disclosures[3]["consent_basis"] == "none" and "no consent" in disclosures[3]["reason"]
    assert len({e["case_ref"] for e in disclosures}) == 4
    dumped = json.dumps(entries)
    assert "Zainab" not in dumped and "2014-06-02" not in dumped


def test_edit_is_detected(store: StateStore, log: AuditLog) -> None:
    target = rows(store)[7]
    entry = json.loads(target.entry)
    entry["fields"] = [*entry["fields"], "telephone_current"]
    text = json.dumps(entry, sort_keys=True, separators=(",", ":"))
    with store.transaction() as conn:
        conn.execute(audit_log.update().where(audit_log.c.seq == 8).values(entry=text))
    assert "seq 8: MAC does not match" in problems(log)


def test_timestamp_edit_is_detected(store: StateStore, log: AuditLog) -> None:
    with store.transaction() as conn:
        conn.execute(
            audit_log.update()
            .where(audit_log.c.seq == 3)
            .values(recorded_at=NOW.replace(year=2020))
        )
    assert "seq 3" in problems(log)


def test_reorder_is_detected(store: StateStore, log: AuditLog) -> None:
    a, b = rows(store)[6], rows(store)[7]
    with store.transaction() as conn:
        for seq, row in ((7, b), (8, a)):
            conn.execute(
                audit_log.update()
                .where(audit_log.c.seq == seq)
                .values(entry=row.entry, mac=row.mac)
            )
    text = problems(log)
    assert "seq 7" in text and "seq 8" in text


def test_deletion_in_the_middle_is_detected(store: StateStore, log: AuditLog) -> None:
    with store.transaction() as conn:
        conn.execute(audit_log.delete().where(audit_log.c.seq == 5))
    text = problems(log)
    assert "entries 5..5 were deleted" in text and "seq 6: MAC does not match" in text


def test_truncation_of_the_tail_is_detected(store: StateStore, log: AuditLog) -> None:
    with store.transaction() as conn:
        conn.execute(audit_log.delete().where(audit_log.c.seq > 8))
    assert "the last entries were deleted" in problems(log)


def test_rewinding_the_head_needs_the_key(store: StateStore, log: AuditLog) -> None:
    last_kept = rows(store)[7]
    with store.transaction() as conn:
        conn.execute(audit_log.delete().where(audit_log.c.seq > 8))
        conn.execute(audit_head.update().values(seq=8, mac=last_kept.mac))
    assert "the head record was edited" in problems(log)


def test_deleting_everything_is_detected(store: StateStore, log: AuditLog) -> None:
    with store.transaction() as conn:
        conn.execute(audit_log.delete())
        conn.execute(audit_head.delete())
    assert "audit head record is missing" in problems(log)


def test_appending_outside_the_adapter_is_detected(store: StateStore, log: AuditLog) -> None:
    last = rows(store)[-1]
    with store.transaction() as conn:
        conn.execute(
            audit_log.insert().values(
                seq=11, recorded_at=NOW, key_version=1, entry='{"event":"x"}', mac=last.mac
            )
        )
    assert "seq 11: MAC does not match" in problems(log)


def test_rollback_is_caught_only_with_an_external_anchor(store: StateStore, log: AuditLog) -> None:
    # Snapshot of an earlier, consistent state: seq 10 and its head.
    with store.transaction() as conn:
        old_head = conn.execute(sa.select(audit_head)).one()
    log.append({"event": "later"}, now=NOW)
    log.append({"event": "later"}, now=NOW)
    anchor = log.head()
    assert anchor.seq == 12
    # An attacker with database access (but not the key) restores the old snapshot.
    with store.transaction() as conn:
        conn.execute(audit_log.delete().where(audit_log.c.seq > 10))
        conn.execute(audit_head.update().values(**{k: v for k, v in old_head._mapping.items()}))
    assert log.verify().ok  # the documented limit: internally consistent
    report = log.verify(anchor=anchor)
    assert not report.ok and "rolled back or truncated" in "\n".join(report.problems)
    intact = log.verify(anchor=log.head())
    assert intact.ok


def test_entries_only_hold_names_and_decisions(log: AuditLog) -> None:
    with pytest.raises(PolicyViolation, match="not allowed"):
        log.append({"event": "x", "name": "Zainab"})
    with pytest.raises(PolicyViolation, match="must be a string"):
        log.append({"event": "x", "fields": [{"name": "Zainab"}]})
