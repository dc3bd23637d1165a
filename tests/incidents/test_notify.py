"""Notices reach the DPO over real SMTP (a sink on 127.0.0.1), are retried until the server takes
them, and the incident shows whether the deadline was met (privacy.md §7 item 25)."""

from __future__ import annotations

import secrets
from collections.abc import Callable
from datetime import timedelta

import pytest

from adapter.config import Settings
from adapter.incidents import (
    deliver_due_notifications,
    get_incident,
    list_incidents,
    notifications_of,
    run_incident_checks,
)
from adapter.privacy import KeyRing, KeyringError, list_security_events
from adapter.privacy.events import wait_for_detached_events
from adapter.state import StateStore
from tests.support.servers import free_port
from tests.support.smtp_sink import SmtpSink

from .conftest import DPO, NOW


def test_a_key_access_anomaly_opens_an_incident_and_the_dpo_is_mailed(
    store: StateStore, ring: KeyRing, sink: SmtpSink, settings_for: Callable[..., Settings]
) -> None:
    # privacy.md §7 item 25: a simulated key-access anomaly (the keys opened with a wrong KEK)
    # opens an incident with a 24-hour deadline, and notifications are queued and delivered.
    with pytest.raises(KeyringError, match="KEK does not open the keys"):
        KeyRing.open(store, secrets.token_bytes(32))  # the caller's error is unchanged
    wait_for_detached_events()
    assert [e.kind for e in list_security_events(store)] == ["key_access_anomaly"]

    report = run_incident_checks(settings_for(), store)
    (incident,) = list_incidents(store)
    assert report.scan.opened == [incident.id]
    assert (incident.kind, incident.severity) == ("key_access_anomaly", "critical")
    assert incident.deadline_at - incident.opened_at == timedelta(hours=24)
    assert report.delivery.sent == 1 and report.delivery.notified == [incident.id]
    (mail,) = sink.messages
    assert mail.rcpt_tos == [DPO]
    assert f"incident {incident.id} (critical)" in mail.message["Subject"]
    body = mail.message.get_content()
    assert "key_access_anomaly" in body and "docs/runbook-breach.md" in body
    done = get_incident(store, incident.id)
    assert done.status == "notified" and done.deadline_state() == "met"
    assert done.notice == body.replace("\r\n", "\n")  # what was sent is kept
    runs = store.recent_runs("incidents")
    assert runs[0].status == "ok" and runs[0].stats["opened"] == [incident.id]


def test_a_payload_that_fails_authentication_is_an_anomaly(
    store: StateStore, ring: KeyRing
) -> None:
    blob = bytearray(ring.encrypt_payload(b'{"case_code": "x"}', context=b"row-1"))
    blob[-1] ^= 1
    with pytest.raises(KeyringError, match="failed authentication"):
        ring.decrypt_payload(bytes(blob), context=b"row-1")
    wait_for_detached_events()
    (event,) = list_security_events(store)
    assert event.kind == "key_access_anomaly" and "data key version 1" in event.detail


def test_a_notice_the_server_refused_is_retried_until_it_is_taken(
    store: StateStore, sink: SmtpSink, settings_for: Callable[..., Settings]
) -> None:
    from adapter.privacy.events import record_security_event

    with store.transaction() as conn:
        record_security_event(
            conn, "forged_code", department="police", detail="case code failed", now=NOW
        )
    down = settings_for(smtp_port=free_port(), department_contacts={})  # nothing listens there
    first = run_incident_checks(down, store, now=NOW + timedelta(minutes=1))
    assert first.delivery.failed == 1 and first.warnings
    (notice,) = notifications_of(store, first.scan.opened[0])
    assert notice.status == "queued" and notice.attempts == 1
    assert notice.last_error is not None and "will retry" in notice.last_error
    assert notice.next_attempt_at == NOW + timedelta(minutes=6)  # retry_minutes = 5

    # Not yet due: not tried again.
    early = deliver_due_notifications(store, down, now=NOW + timedelta(minutes=3))
    assert (early.sent, early.failed) == (0, 0)
    # The mail server is back: the next due pass delivers it and the deadline was met.
    back = settings_for(department_contacts={})
    later = deliver_due_notifications(store, back, now=NOW + timedelta(minutes=7))
    assert later.sent == 1 and [m.rcpt_tos for m in sink.messages] == [[DPO]]
    incident = get_incident(store, first.scan.opened[0])
    assert incident.notified_at == NOW + timedelta(minutes=7)
    assert incident.deadline_state() == "met"


def test_a_notice_sent_after_the_deadline_shows_it_was_missed(
    store: StateStore, sink: SmtpSink, settings_for: Callable[..., Settings]
) -> None:
    from adapter.privacy.events import record_security_event

    with store.transaction() as conn:
        record_security_event(conn, "audit_chain_broken", department=None, detail="x", now=NOW)
    # Nobody configured at first; the DPO address is added the next day.
    run_incident_checks(settings_for(dpo_emails=[]), store, now=NOW + timedelta(minutes=1))
    (incident,) = list_incidents(store)
    assert notifications_of(store, incident.id) == []
    late = run_incident_checks(settings_for(), store, now=NOW + timedelta(hours=30))
    assert late.delivery.sent == 1
    assert get_incident(store, incident.id).deadline_state() == "missed"
