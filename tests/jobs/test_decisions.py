"""End to end: decisions by people, recorded inside Primero and proven by its record history.

A restricted (S3) health referral with consent waits for a second person's approval; a police
referral without consent waits for a supervisor's mandatory-report override. Supervisors and
case workers write the "Disclosure decisions" form on the case in the Primero simulator (as
themselves, over Primero's API); the adapter reads the case's record history to prove who
wrote each decision, and only an approver who did not make the referral releases it. The
hospital is the real FHIR server; police is the police simulator.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from adapter.app.jobs import open_job
from adapter.config import Settings
from adapter.config.privacy import DecisionSettings
from adapter.primero import PrimeroClient
from adapter.primero.linked_records import SUBFORM_FIELD
from adapter.privacy import AuditLog, KeyRing
from adapter.simulator.departments import DepartmentSimulator, Desk
from adapter.simulator.departments.scenario import police_settings, refer_children
from adapter.simulator.fhir_server import start_fhir_server
from adapter.simulator.hospital import Hospital
from adapter.simulator.primero import PrimeroSimulator
from adapter.simulator.scenario import (
    SIM_PASSWORD,
    health_settings,
    install_linked_records_form,
    record_decision,
    refer_children_to_health,
    remove_decision,
)
from adapter.state import StateStore
from adapter.state.held import NOTE_PREFIX, HeldReferrals

DEPARTMENTS = ["health", "police", "birth_registration", "courts"]
SUPERVISORS = DecisionSettings(approver_roles=("role-cp-supervisor",))
MLE = "Sindh CP Authority Act 2011 s.15"


def with_decisions(settings: Settings, decisions: DecisionSettings) -> Settings:
    return settings.model_copy(update={"decisions": decisions})


def sync(settings: Settings, job: str) -> Any:
    with open_job(settings, job) as opened:
        return opened.run()


def decision_rows(sim_url: str, case_id: str) -> list[dict[str, Any]]:
    """The held/released rows the CPO sees in "Linked department records"."""
    with PrimeroClient(
        sim_url, auth="basic", username="cpims-adapter", password=SIM_PASSWORD
    ) as client:
        rows = client.get_case(case_id).get(SUBFORM_FIELD) or []
    return [r for r in rows if str(r.get("link_key", "")).startswith(NOTE_PREFIX)]


def audit_events(state_url: str, kek: bytes) -> list[dict[str, Any]]:
    with StateStore(state_url) as store:
        log = AuditLog(store, KeyRing.open(store, kek))
        assert log.verify().ok
        return [record.entry for record in log.entries()]


@pytest.fixture
def health(tmp_path: Path, state_url: str) -> Iterator[dict[str, Any]]:
    fhir = start_fhir_server(tmp_path)
    try:
        with PrimeroSimulator(cases=0) as sim, Hospital(fhir.base_url) as hospital:
            install_linked_records_form(sim.url)
            kek = secrets.token_bytes(32)
            settings = health_settings(
                primero_url=sim.url, fhir_url=fhir.base_url, state_url=state_url, kek=kek
            )
            with StateStore(state_url) as store:
                KeyRing.init(store, kek, DEPARTMENTS)
            # A child who survived sexual exploitation (S3), with consent, referred by
            # cp_worker1 for a medical examination.
            ((case_id, referral_id),) = refer_children_to_health(
                sim.url, 1, concerns=("sexually_exploited",)
            )
            yield {
                "sim": sim,
                "hospital": hospital,
                "settings": with_decisions(settings, SUPERVISORS),
                "case_id": case_id,
                "key": f"ref-{referral_id}",
                "state_url": state_url,
                "kek": kek,
            }
    finally:
        fhir.cleanup()


def accepted_and_held(health: dict[str, Any]) -> None:
    """Probe, the hospital accepts, and the identified referral is held for approval."""
    sim, hospital, settings = health["sim"], health["hospital"], health["settings"]
    first = sync(settings, "health")
    assert first.delivered == {"probe": 1}
    hospital.accept(health["key"])
    held = sync(settings, "health")
    assert held.held == 1 and not held.delivered.get("referral")
    assert hospital.search("ServiceRequest") == [] and hospital.search("Patient") == []
    (row,) = decision_rows(sim.url, health["case_id"])
    assert row["link_status"] == "held: waiting for a second person's approval"
    assert "s3_approval" in row["link_status_note"]
    assert "Not cp_worker1, who made the referral" in row["link_status_note"]


def test_a_supervisors_approval_in_primero_releases_an_s3_referral_exactly_once(
    health: dict[str, Any],
) -> None:
    sim, hospital, settings = health["sim"], health["hospital"], health["settings"]
    accepted_and_held(health)
    with StateStore(health["state_url"]) as store:
        (waiting,) = HeldReferrals(store).summary()
    assert (waiting.department, waiting.awaiting, waiting.count) == ("health", "s3_approval", 1)

    # The referring case worker types an approval into the form: not an approver.
    record_decision(
        sim.url, health["case_id"], user="cp_worker1", department="health", basis="s3_approval"
    )
    refused = sync(settings, "health")
    assert not refused.delivered.get("referral")
    (row,) = decision_rows(sim.url, health["case_id"])
    assert row["link_status"] == "held: decision refused"
    assert "cp_worker1 is not an approver" in row["link_status_note"]

    # Saving that row unchanged proves nothing (Primero records no change, so its author is
    # still the case worker); the supervisor records their own approval: released, once.
    record_decision(sim.url, health["case_id"], department="health", basis="s3_approval")
    released = sync(settings, "health")
    assert released.delivered.get("referral") == 1 and released.released == 1
    assert len(hospital.search("ServiceRequest")) == 1
    (row,) = decision_rows(sim.url, health["case_id"])
    assert row["link_status"] == "released: decision approved"
    assert "s3_approval approved by cp_supervisor1, expires" in row["link_status_note"]
    with StateStore(health["state_url"]) as store:
        assert HeldReferrals(store).summary() == []

    again = sync(settings, "health")
    assert not again.delivered and len(hospital.search("ServiceRequest")) == 1

    events = audit_events(health["state_url"], health["kek"])
    refusals = [e for e in events if e["event"] == "decision_refused"]
    assert refusals and refusals[0]["recorded_by"] == "cp_worker1"
    assert "not an approver" in refusals[0]["problem"]
    (used,) = [e for e in events if e["event"] == "disclosure" and e.get("approved_by")]
    assert used["approved_by"] == ["cp_supervisor1"]
    assert used["approval_bases"] == ["s3_approval"]


def test_a_supervisor_who_made_the_referral_cannot_approve_it(health: dict[str, Any]) -> None:
    sim, settings = health["sim"], health["settings"]
    # Here cp_worker1 is an approver too; they still made the referral.
    settings = with_decisions(
        settings,
        DecisionSettings(
            approver_roles=("role-cp-supervisor",), approver_user_names=("cp_worker1",)
        ),
    )
    health["settings"] = settings
    accepted_and_held(health)
    record_decision(
        sim.url, health["case_id"], user="cp_worker1", department="health", basis="s3_approval"
    )
    report = sync(settings, "health")
    assert not report.delivered.get("referral")
    assert health["hospital"].search("ServiceRequest") == []
    (row,) = decision_rows(sim.url, health["case_id"])
    assert "cp_worker1 made the referral and approved it themselves" in row["link_status_note"]


def test_a_removed_or_expired_decision_lets_nothing_further_leave(health: dict[str, Any]) -> None:
    sim, hospital = health["sim"], health["hospital"]
    # Decisions last two seconds here, so that one can expire within the test.
    settings = with_decisions(
        health["settings"],
        DecisionSettings(approver_roles=("role-cp-supervisor",), lifetime_hours=2 / 3600),
    )
    health["settings"] = settings
    accepted_and_held(health)
    row_id = record_decision(sim.url, health["case_id"], department="health", basis="s3_approval")
    assert sync(settings, "health").delivered.get("referral") == 1

    # Expired: an edit of the case sends nothing, and the referral is held again.
    time.sleep(2.5)
    with PrimeroClient(sim.url, auth="basic", username="cp_worker1", password=SIM_PASSWORD) as c:
        c.update_case(health["case_id"], {"age": 13})
    expired = sync(settings, "health")
    assert not expired.delivered and expired.held == 1
    (row,) = decision_rows(sim.url, health["case_id"])
    assert row["link_status"] == "held: decision refused" and "expired" in row["link_status_note"]

    # Removed: a fresh approval is removed before the next sync; nothing leaves.
    record_decision(
        sim.url, health["case_id"], department="health", basis="s3_approval", row_id=row_id
    )
    remove_decision(sim.url, health["case_id"], row_id)
    removed = sync(settings, "health")
    assert not removed.delivered
    assert len(hospital.search("ServiceRequest")) == 1


@pytest.fixture
def police(state_url: str) -> Iterator[dict[str, Any]]:
    with (
        PrimeroSimulator(cases=0) as sim,
        DepartmentSimulator("police", auth="oauth2") as department,
        Desk(department.url) as desk,
    ):
        install_linked_records_form(sim.url)
        kek = secrets.token_bytes(32)
        with StateStore(state_url) as store:
            KeyRing.init(store, kek, DEPARTMENTS)
        # No consent (the caregiver is suspected); a mandatory report is the only way out.
        ((case_id, _),) = refer_children(
            sim.url, 1, concerns=["physically_or_mentally_abused"], consent=False
        )
        settings = police_settings(
            primero_url=sim.url, police_url=department.url, state_url=state_url, kek=kek
        )
        yield {
            "sim": sim,
            "desk": desk,
            "settings": with_decisions(settings, SUPERVISORS),
            "case_id": case_id,
            "state_url": state_url,
            "kek": kek,
        }


def test_a_mandatory_report_without_consent_leaves_only_on_a_proven_supervisors_override(
    police: dict[str, Any],
) -> None:
    sim, desk, settings, case_id = (
        police["sim"],
        police["desk"],
        police["settings"],
        police["case_id"],
    )
    held = sync(settings, "police")
    assert not held.delivered and held.held == 1
    (row,) = decision_rows(sim.url, case_id)
    assert row["link_status"] == "held: no consent and no decision"

    # A case worker records the override: refused, whatever the fields say.
    row_id = record_decision(
        sim.url,
        case_id,
        user="cp_worker1",
        department="police",
        basis="mandatory_report",
        legal_reference=MLE,
        reason="Synthetic: injuries seen at school.",
    )
    assert not sync(settings, "police").delivered
    assert desk.records() == []

    # The supervisor re-records it without a legal reference: refused for the form.
    record_decision(
        sim.url,
        case_id,
        department="police",
        basis="mandatory_report",
        row_id=row_id,
        reason="Synthetic: injuries seen at school.",
    )
    assert not sync(settings, "police").delivered
    (row,) = decision_rows(sim.url, case_id)
    assert "needs a legal reference" in row["link_status_note"]

    # The supervisor's complete override: the police receive the referral once.
    record_decision(
        sim.url,
        case_id,
        department="police",
        basis="mandatory_report",
        legal_reference=MLE,
        reason="Synthetic: injuries seen at school.",
        row_id=row_id,
    )
    report = sync(settings, "police")
    assert sum(report.delivered.values()) == 1
    (record,) = desk.records()
    assert record["body"]["referral"]["basis"] == "mandatory_report"
    assert not sync(settings, "police").delivered and len(desk.records()) == 1

    # The reason's free text never reaches the audit log.
    with StateStore(police["state_url"]) as store, store.transaction() as conn:
        text = " ".join(str(row) for row in conn.execute(sa.text("SELECT * FROM audit_log")))
    assert "injuries seen at school" not in text
