"""Breach scenarios end to end: each source records its security event and the scan opens the
incident, whose notice names codes and departments but never a case id (privacy.md §7 items 9,
21; §6.7 allow-list violations)."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest
import sqlalchemy as sa
from cryptography.hazmat.primitives.ciphers.aead import AESSIV

from adapter.config import Settings
from adapter.incidents import (
    close_incident,
    list_incidents,
    render_notice,
    report_key_compromise,
    run_incident_checks,
)
from adapter.privacy import (
    AuditLog,
    CaseCodes,
    CodeRefused,
    DisclosureGate,
    DisclosurePolicy,
    KeyRing,
    Stage,
    _codec,
    list_security_events,
)
from adapter.privacy._tables import audit_log
from adapter.privacy.keys import KeyRole
from adapter.state import StateStore
from tests.privacy.conftest import POLICY_DIR, make_case
from tests.support.smtp_sink import SmtpSink

from .conftest import NOW, POLICE_IT


def issue(store: StateStore, ring: KeyRing, department: str, count: int) -> dict[str, str]:
    """``count`` codes handed to ``department``: code -> case id."""
    codes = CaseCodes(store, ring)
    issued: dict[str, str] = {}
    with store.transaction() as conn:
        for _ in range(count):
            case_id = str(uuid.uuid4())
            code = ring.case_code(case_id, department)
            codes.record_issued(conn, department, code, now=NOW)
            issued[code] = case_id
    return issued


def test_a_leaked_police_key_raises_an_incident_listing_every_police_code(
    store: StateStore,
    ring: KeyRing,
    sink: SmtpSink,
    settings_for: Callable[..., Settings],
) -> None:
    # privacy.md §7 item 9. tests/privacy/test_codes.py shows the leaked key opens police codes
    # only, and that a rotation re-issues every code and refuses old ones after the grace
    # window; here: the incident, its notice, and that the crosswalk covers the notice's codes.
    police = issue(store, ring, "police", 7)
    health = issue(store, ring, "health", 3)
    leaked = ring._key(KeyRole.TOKEN, "police", None).material
    assert leaked is not None

    # Whoever holds the leaked key can forge a "health" code with it: health refuses it, and
    # the refusal is a security event.
    victim = next(iter(health.values()))
    forged = _codec.seal(AESSIV(leaked), "health", 1, victim)
    with pytest.raises(CodeRefused) as refused:
        CaseCodes(store, ring).resolve(forged, "health")
    assert refused.value.kind == "forged_code"

    # The officer who found the key declares the compromise.
    assert report_key_compromise(store, "police", now=NOW) == 1
    settings = settings_for()
    report = run_incident_checks(settings, store)
    kinds = {i.kind: i for i in list_incidents(store)}
    assert set(kinds) == {"forged_code", "key_compromise_reported"}
    compromise = kinds["key_compromise_reported"]
    assert compromise.id in report.scan.opened and compromise.severity == "critical"

    notice = render_notice(store, compromise, settings)
    assert "Affected case codes: every code issued to police under key version(s) 1: 7" in notice
    assert all(code in notice for code in police)
    assert not any(code in notice for code in health)
    assert not any(case_id in notice for case_id in [*police.values(), *health.values()])
    assert "cpims-adapter keys rotate police" in notice

    # The police contact got the notice too, by real SMTP.
    recipients = {r for m in sink.messages for r in m.rcpt_tos}
    assert POLICE_IT in recipients

    # Rotation drill: the crosswalk re-issues exactly the codes the notice listed.
    rotation = ring.rotate("police", grace=timedelta(days=30), now=NOW + timedelta(hours=1))
    assert {old for old, _ in rotation.crosswalk} == set(police)
    after_grace = NOW + timedelta(days=31)
    old_code = next(iter(police))
    with pytest.raises(CodeRefused) as retired:
        ring.open_case_code(old_code, "police", now=after_grace)
    assert retired.value.kind == "retired_key_version"


def test_an_edited_audit_entry_opens_a_critical_incident(
    store: StateStore, ring: KeyRing, settings_for: Callable[..., Settings]
) -> None:
    # privacy.md §7 item 21: edit an entry -> verify fails -> an incident.
    audit = AuditLog(store, ring)
    for n in range(3):
        audit.append({"event": "disclosure", "department": "police", "count": n})
    assert audit.verify().ok and list_security_events(store) == []
    with store.transaction() as conn:
        conn.execute(
            audit_log.update()
            .where(audit_log.c.seq == 4)
            .values(entry='{"count":9,"department":"police","event":"disclosure"}')
        )
    report = audit.verify()
    assert not report.ok
    (event,) = list_security_events(store)
    assert event.kind == "audit_chain_broken" and "seq 4" in event.detail
    run_incident_checks(settings_for(), store)
    (incident,) = list_incidents(store)
    assert (incident.kind, incident.severity, incident.department) == (
        "audit_chain_broken",
        "critical",
        None,
    )

    # The edit stays in the chain: after the incident is closed, a later verify finding the
    # same break opens nothing new; a further edit does.
    close_incident(store, incident.id, by="A. Khan", resolution="edit investigated, evidence kept")
    assert not audit.verify().ok
    assert run_incident_checks(settings_for(), store).scan.opened == []
    with store.transaction() as conn:
        conn.execute(audit_log.update().where(audit_log.c.seq == 5).values(mac="0" * 64))
    assert not audit.verify().ok
    assert len(run_incident_checks(settings_for(), store).scan.opened) == 1


class _LeakyPolicy(DisclosurePolicy):
    """A policy with a defect: its identified payload carries a field nobody allowed."""

    def _identified(self, *args: Any, **kwargs: Any) -> Any:
        decision = super()._identified(*args, **kwargs)
        if decision.allowed:
            decision.payload["caregiver_phone"] = "+923001234567"
        return decision


def test_a_field_not_on_the_allow_list_is_stopped_and_opens_an_incident(
    store: StateStore, ring: KeyRing, settings_for: Callable[..., Settings]
) -> None:
    sound = DisclosureGate(store, DisclosurePolicy.load(POLICY_DIR), ring)
    assert sound.disclose(make_case(), "health", "referral", Stage.IDENTIFIED, now=NOW).allowed
    assert list_security_events(store) == []

    leaky = DisclosureGate(store, _LeakyPolicy.load(POLICY_DIR), ring)
    decision = leaky.disclose(make_case(), "health", "referral", Stage.IDENTIFIED, now=NOW)
    assert not decision.allowed and decision.payload == {}
    assert "final allow-list guard" in decision.reason
    assert decision.allow_list_violation == ("caregiver_phone",)
    (event,) = list_security_events(store)
    assert event.kind == "allow_list_violation" and event.department == "health"
    assert "caregiver_phone" in event.detail and "+92300" not in event.detail
    # The refusal is in the audit log like any other.
    entries = [r.entry for r in AuditLog(store, ring).entries()]
    assert entries[-1]["event"] == "refusal" and "guard" in entries[-1]["reason"]

    run_incident_checks(settings_for(), store)
    (incident,) = list_incidents(store)
    assert (incident.kind, incident.department) == ("allow_list_violation", "health")


def test_issued_codes_listing_uses_the_named_key_version(
    store: StateStore, ring: KeyRing, settings_for: Callable[..., Settings]
) -> None:
    # A second police version exists; the report names version 2: only its codes are listed.
    first = issue(store, ring, "police", 2)
    ring.rotate("police", now=NOW)
    with store.transaction() as conn:
        v2 = set(
            conn.execute(
                sa.text(
                    "SELECT code FROM issued_codes WHERE department = 'police' AND key_version = 2"
                )
            ).scalars()
        )
    assert len(v2) == 2
    report_key_compromise(store, "police", key_version=2, now=NOW)
    settings = settings_for()
    run_incident_checks(settings, store)
    (incident,) = list_incidents(store)
    notice = render_notice(store, incident, settings)
    assert all(code in notice for code in v2) and not any(code in notice for code in first)
