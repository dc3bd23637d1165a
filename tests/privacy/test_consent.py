"""The consent gate and the override rules (privacy.md §6.3, §7 items 17-19)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest
import sqlalchemy as sa

from adapter.privacy import (
    AuditLog,
    ConsentOverride,
    DisclosureGate,
    KeyRing,
    OverrideBasis,
    OverrideRejected,
    Stage,
    check_consent,
)
from adapter.privacy._tables import deletion_requests
from adapter.privacy.deletion import pending_deletion_requests
from adapter.state import StateStore

from .conftest import NOW

Case = Callable[..., dict[str, Any]]


def override(case_id: str, **fields: Any) -> ConsentOverride:
    values: dict[str, Any] = {
        "case_id": case_id,
        "department": "police",
        "basis": OverrideBasis.MANDATORY_REPORT,
        "legal_reference": "Punjab Destitute and Neglected Children Act s.x",
        "requested_by": "caseworker.amna",
        "approved_by": "supervisor.tariq",
        "created_at": NOW - timedelta(minutes=1),
        "expires_at": NOW + timedelta(hours=24),
        "reason": "caregiver is the alleged perpetrator",
        "id": 7,
    }
    values.update(fields)
    return ConsentOverride(**values)


def test_cp_needs_both_flags(case_factory: Case) -> None:
    ok, reason = check_consent(case_factory(), "health", "referral", now=NOW)
    assert ok and "consent_for_services and disclosure_other_orgs" in reason
    decision = check_consent(
        case_factory(disclosure_other_orgs=None), "health", "referral", now=NOW
    )
    assert not decision.allowed and "disclosure_other_orgs is not true" in decision.reason


def test_missing_consent_flags_are_a_refusal(case_factory: Case) -> None:
    # The mutation "treat a missing consent_for_services as true" must turn this red.
    case = case_factory()
    del case["consent_for_services"]
    del case["disclosure_other_orgs"]
    decision = check_consent(case, "health", "referral", now=NOW)
    assert not decision.allowed
    assert decision.basis == "none"
    assert "missing counts as no" in decision.reason
    del case["module_id"]
    assert not check_consent(case, "health", "referral", now=NOW).allowed


def test_only_boolean_true_counts(case_factory: Case) -> None:
    for value in ("true", 1, "yes", [True]):
        case = case_factory(consent_for_services=value)
        assert not check_consent(case, "health", "referral", now=NOW).allowed


def test_gbv_needs_consent_for_services_only(case_factory: Case) -> None:
    gbv = case_factory(module_id="primeromodule-gbv", disclosure_other_orgs=None)
    assert check_consent(gbv, "health", "referral", now=NOW).allowed
    gbv["consent_for_services"] = None
    assert not check_consent(gbv, "health", "referral", now=NOW).allowed


def test_unknown_module_is_denied(case_factory: Case) -> None:
    decision = check_consent(case_factory(module_id="primeromodule-mrm"), "health", "x", now=NOW)
    assert not decision.allowed and "default deny" in decision.reason


def test_explicit_false_is_a_withdrawal(case_factory: Case) -> None:
    decision = check_consent(case_factory(consent_for_services=False), "police", "r", now=NOW)
    assert not decision.allowed and decision.withdrawn
    assert "withdrawn" in decision.reason


def test_override_replaces_consent_for_its_department_only(case_factory: Case) -> None:
    case = case_factory(consent_for_services=None)
    overrides = [override(case["id"])]
    police = check_consent(case, "police", "referral", now=NOW, overrides=overrides)
    assert police.allowed and police.basis == "mandatory_report" and police.override_id == 7
    assert "override #7" in police.reason
    # An override for police authorises nothing for health (§7 item 17).
    assert not check_consent(case, "health", "referral", now=NOW, overrides=overrides).allowed
    # ... nor for another case.
    other = case_factory(consent_for_services=None)
    assert not check_consent(other, "police", "referral", now=NOW, overrides=overrides).allowed


def test_override_purpose_scope_and_expiry(case_factory: Case) -> None:
    case = case_factory(consent_for_services=None)
    scoped = [override(case["id"], purpose="referral")]
    assert check_consent(case, "police", "referral", now=NOW, overrides=scoped).allowed
    assert not check_consent(case, "police", "fir_update", now=NOW, overrides=scoped).allowed
    later = NOW + timedelta(hours=25)
    assert not check_consent(case, "police", "referral", now=later, overrides=scoped).allowed
    revoked = [override(case["id"], revoked_at=NOW - timedelta(minutes=1))]
    assert not check_consent(case, "police", "referral", now=NOW, overrides=revoked).allowed


@pytest.mark.parametrize(
    ("fields", "problem"),
    [
        ({"approved_by": "Caseworker.Amna "}, "second person"),
        ({"legal_reference": "  "}, "legal reference"),
        ({"expires_at": NOW + timedelta(hours=72)}, "longer than 72 hours"),
        ({"expires_at": NOW - timedelta(hours=2)}, "expires before"),
        ({"approved_by": ""}, "must be named"),
    ],
)
def test_bad_overrides_are_rejected_and_ignored(
    case_factory: Case, gate: DisclosureGate, fields: dict[str, Any], problem: str
) -> None:
    case = case_factory(consent_for_services=None)
    bad = override(case["id"], **fields)
    # The gate ignores a malformed override even if it reached the table some other way ...
    assert not check_consent(case, "police", "referral", now=NOW, overrides=[bad]).allowed
    # ... and recording one is refused with a message that names the rule, not the reason text.
    with pytest.raises(OverrideRejected, match=problem) as info:
        gate.record_override(bad, now=NOW)
    assert "alleged perpetrator" not in str(info.value)


def test_primero_consent_overridden_alone_authorises_nothing(case_factory: Case) -> None:
    case = case_factory(consent_for_services=None)
    decision = check_consent(
        case, "police", "referral", now=NOW, referral={"consent_overridden": True}
    )
    assert not decision.allowed
    assert "record an override in the adapter" in decision.reason


def test_recorded_override_is_audited_and_used(
    case_factory: Case, gate: DisclosureGate, store: StateStore, ring: KeyRing
) -> None:
    case = case_factory(consent_for_services=None)
    stored = gate.record_override(override(case["id"], id=None), now=NOW)
    assert stored.id is not None
    d = gate.disclose(case, "police", "referral", Stage.IDENTIFIED, now=NOW)
    assert d.allowed and d.consent_basis == "mandatory_report" and d.override_id == stored.id
    events = [r.entry for r in AuditLog(store, ring).entries()]
    recorded = [e for e in events if e["event"] == "override_recorded"]
    assert recorded and recorded[0]["override_id"] == stored.id
    assert all("alleged perpetrator" not in str(e) for e in events)
    assert gate.revoke_override(stored.id, now=NOW)
    assert not gate.disclose(case, "police", "referral", Stage.IDENTIFIED, now=NOW).allowed


def test_withdrawal_stops_disclosure_and_queues_one_deletion_request(
    case_factory: Case, gate: DisclosureGate, store: StateStore
) -> None:
    case = case_factory()
    first = gate.disclose(case, "health", "referral", Stage.IDENTIFIED, now=NOW)
    assert first.allowed
    never_sent = gate.disclose(
        case_factory(consent_for_services=False), "health", "referral", Stage.IDENTIFIED, now=NOW
    )
    assert not never_sent.allowed
    case["consent_for_services"] = False
    for _ in range(2):  # every later sync refuses; only one request is queued
        again = gate.disclose(case, "health", "referral", Stage.IDENTIFIED, now=NOW)
        assert not again.allowed and again.payload == {}
    with store.transaction() as conn:
        pending = pending_deletion_requests(conn)
        assert [(r.department, r.case_code) for r in pending] == [("health", first.case_code)]
        # Police never received the case, so police get no deletion request.
        count = conn.execute(sa.select(sa.func.count()).select_from(deletion_requests)).scalar()
    assert count == 1
    gate.disclose(case, "police", "referral", Stage.IDENTIFIED, now=NOW)
    with store.transaction() as conn:
        assert len(pending_deletion_requests(conn)) == 1


def test_override_must_be_recorded_when_it_is_made(
    case_factory: Case, gate: DisclosureGate
) -> None:
    # Back-dating would let an override outlive the 72-hour limit from its real recording.
    backdated = override(case_factory()["id"], created_at=NOW - timedelta(days=3))
    with pytest.raises(OverrideRejected, match="time of recording"):
        gate.record_override(backdated, now=NOW)
