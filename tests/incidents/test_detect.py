"""Security events become incidents by the rules table: at once for the serious kinds, above a
count within a window for the noisy ones, grouped so a flood makes one incident (no storm)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta

import pytest

from adapter.config import Settings
from adapter.incidents import (
    IncidentError,
    close_incident,
    list_incidents,
    notifications_of,
    open_incident_summary,
    rule_for,
    scan_security_events,
)
from adapter.incidents.rules import RULES
from adapter.privacy import SecurityEventKind
from adapter.privacy.events import record_security_event
from adapter.registry.models import RegistryEventKind
from adapter.state import StateStore

from .conftest import DPO, NOW, POLICE_IT

WRONG = SecurityEventKind.WRONG_DEPARTMENT


def record(
    store: StateStore, kind: str, department: str | None, at_minutes: float, detail: str = "x"
) -> None:
    with store.transaction() as conn:
        record_security_event(
            conn,
            kind,
            department=department,
            detail=detail,
            now=NOW + timedelta(minutes=at_minutes),
        )


def test_a_flood_of_wrong_department_codes_is_one_incident(
    store: StateStore, settings_for: Callable[..., Settings]
) -> None:
    settings = settings_for()
    detail = "case code issued to department 'health' was presented by 'police': refused."
    for minute in range(50):
        record(store, WRONG, "police", minute, detail)
    result = scan_security_events(store, settings, now=NOW + timedelta(hours=1))
    assert result.events == 50 and len(result.opened) == 1 and result.joined == 49
    (incident,) = list_incidents(store)
    assert (incident.kind, incident.department, incident.severity) == (WRONG, "police", "high")
    assert incident.event_count == 50 and incident.opened_at == NOW
    assert incident.deadline_at == NOW + timedelta(hours=24)
    # One notice per recipient, not per event: the DPO and the police contact.
    assert sorted(n.recipient for n in notifications_of(store, incident.id)) == sorted(
        [DPO, POLICE_IT]
    )

    # Later events join the open incident; another department's events open their own.
    record(store, WRONG, "police", 90, detail)
    record(store, WRONG, "health", 91, "short code of department 'police' presented by 'health'")
    again = scan_security_events(store, settings, now=NOW + timedelta(hours=2))
    assert (again.events, again.joined, len(again.opened)) == (2, 1, 1)
    by_department = {i.department: i for i in list_incidents(store)}
    assert by_department["police"].event_count == 51
    assert by_department["health"].kind == WRONG

    # Nothing new: a scan changes nothing (the cursor moved on).
    assert scan_security_events(store, settings).events == 0

    # After closing, the next event opens a new incident rather than reviving the old one.
    close_incident(
        store, incident.id, by="IT Officer", resolution="police system fixed, codes re-issued"
    )
    record(store, WRONG, "police", 200, detail)
    last = scan_security_events(store, settings, now=NOW + timedelta(hours=4))
    assert len(last.opened) == 1 and last.opened[0] != incident.id


def test_noisy_kinds_open_an_incident_only_above_their_threshold(
    store: StateStore, settings_for: Callable[..., Settings]
) -> None:
    settings = settings_for()
    malformed = rule_for(SecurityEventKind.MALFORMED_CODE)
    assert malformed.threshold == 5 and malformed.window == timedelta(hours=1)
    # Four an hour apart never reach five within an hour.
    for hour in range(4):
        record(store, SecurityEventKind.MALFORMED_CODE, "police", hour * 60)
    assert scan_security_events(store, settings).opened == []
    # Five within ten minutes do; the incident starts at the first of them.
    for minute in range(5):
        record(store, SecurityEventKind.MALFORMED_CODE, "police", 600 + minute * 2)
    opened = scan_security_events(store, settings).opened
    assert len(opened) == 1
    (incident,) = list_incidents(store)
    assert incident.event_count == 5 and incident.severity == "medium"
    assert incident.first_event_at == NOW + timedelta(minutes=600)
    assert incident.opened_at == NOW + timedelta(minutes=608)


def test_serious_kinds_open_an_incident_at_once(
    store: StateStore, settings_for: Callable[..., Settings]
) -> None:
    settings = settings_for()
    for minute, kind in enumerate(
        [
            SecurityEventKind.AUDIT_CHAIN_BROKEN,
            SecurityEventKind.KEY_ACCESS_ANOMALY,
            SecurityEventKind.ALLOW_LIST_VIOLATION,
            SecurityEventKind.FORGED_CODE,
            RegistryEventKind.SEQUENTIAL_CNICS,
            "a_kind_nobody_classified",
        ]
    ):
        record(store, kind, None, minute)
    assert len(scan_security_events(store, settings).opened) == 6
    severities = {i.kind: i.severity for i in list_incidents(store)}
    assert severities["audit_chain_broken"] == "critical"
    assert severities["registry_sequential_cnics"] == "high"
    assert severities["a_kind_nobody_classified"] == "medium"  # default: suspicious, not ignored


def test_rules_name_the_registry_kinds_the_registry_records() -> None:
    kinds = {str(rule.kind) for rule in RULES}
    assert {str(kind) for kind in RegistryEventKind} <= kinds
    assert {str(kind) for kind in SecurityEventKind} <= kinds


def test_deadline_overdue_and_missed(
    store: StateStore, settings_for: Callable[..., Settings]
) -> None:
    # No DPO address configured: nobody can be told, so the incident turns overdue.
    silent = settings_for(dpo_emails=[], department_contacts={})
    record(store, SecurityEventKind.KEY_ACCESS_ANOMALY, None, 0)
    scan_security_events(store, silent, now=NOW)
    (incident,) = list_incidents(store)
    assert incident.deadline_state(NOW + timedelta(hours=23)) == "pending"
    assert open_incident_summary(store, now=NOW + timedelta(hours=23)).as_dict() == {
        "open": 1,
        "overdue": 0,
    }
    assert open_incident_summary(store, now=NOW + timedelta(hours=25)).overdue == 1
    assert incident.deadline_state(NOW + timedelta(hours=25)) == "overdue"


def test_closing_needs_a_name_and_a_resolution(
    store: StateStore, settings_for: Callable[..., Settings]
) -> None:
    record(store, SecurityEventKind.FORGED_CODE, "police", 0)
    scan_security_events(store, settings_for(), now=NOW)
    (incident,) = list_incidents(store)
    for by, resolution in [("", "rotated the key"), ("A. Khan", "ok")]:
        with pytest.raises(IncidentError, match=r"--by|--resolution"):
            close_incident(store, incident.id, by=by, resolution=resolution)
    closed = close_incident(
        store, incident.id, by="A. Khan", resolution="forged codes traced to a test system"
    )
    assert closed.status == "closed" and closed.closed_by == "A. Khan"
    assert list_incidents(store) == [] and len(list_incidents(store, include_closed=True)) == 1
    with pytest.raises(IncidentError, match="already closed"):
        close_incident(store, incident.id, by="A. Khan", resolution="closing it a second time")


def test_an_event_committed_late_is_not_skipped(
    store: StateStore, settings_for: Callable[..., Settings]
) -> None:
    # PostgreSQL shows ids in commit order: id 2 may become visible after id 3 (a sync page's
    # transaction still open). The scan waits at the gap instead of moving past it.
    from adapter.privacy._tables import security_events

    def insert(event_id: int, kind: str) -> None:
        with store.transaction() as conn:
            conn.execute(
                security_events.insert().values(
                    id=event_id, at=NOW, kind=kind, department="health", detail="x"
                )
            )

    settings = settings_for()
    insert(1, SecurityEventKind.FORGED_CODE)
    insert(3, SecurityEventKind.FORGED_CODE)
    first = scan_security_events(store, settings, now=NOW + timedelta(minutes=1))
    assert first.events == 1  # stopped before the gap at id 2
    insert(2, SecurityEventKind.ALLOW_LIST_VIOLATION)  # the late commit
    second = scan_security_events(store, settings, now=NOW + timedelta(minutes=2))
    assert second.events == 2
    assert {i.kind for i in list_incidents(store)} == {"forged_code", "allow_list_violation"}

    # A gap that never fills (a rolled-back transaction) is passed after GAP_WAIT.
    insert(5, SecurityEventKind.WRONG_DEPARTMENT)
    assert scan_security_events(store, settings, now=NOW + timedelta(minutes=3)).events == 0
    assert scan_security_events(store, settings, now=NOW + timedelta(minutes=8)).events == 0
    assert scan_security_events(store, settings, now=NOW + timedelta(minutes=14)).events == 1
