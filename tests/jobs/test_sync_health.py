"""End to end: referrals from the Primero simulator to a real FHIR server (sekmet) and back.

N children referred to the hospital in Primero → N capacity probes (Tasks) → the hospital
accepts some and rejects others → identified referrals only for the accepted → the hospital
completes some → Primero's referral statuses and the linked-records form show it all.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from adapter.app.jobs import open_job
from adapter.config import Settings
from adapter.mappings.fhir import case_code_system
from adapter.mappings.fhir_codes import REFERRAL_SYSTEM
from adapter.primero import PrimeroClient
from adapter.primero.linked_records import SUBFORM_FIELD
from adapter.privacy import KeyRing, pending_deletion_requests
from adapter.simulator.fhir_server import start_fhir_server
from adapter.simulator.hospital import Hospital
from adapter.simulator.primero import PrimeroSimulator
from adapter.simulator.scenario import (
    cpo_edit,
    health_settings,
    install_linked_records_form,
    refer_children_to_health,
    referral_status,
)
from adapter.state import StateStore

N = 8


@pytest.fixture
def world(tmp_path: Path, state_url: str) -> Iterator[dict[str, Any]]:
    fhir = start_fhir_server(tmp_path)
    try:
        with PrimeroSimulator(cases=0) as sim, Hospital(fhir.base_url) as hospital:
            install_linked_records_form(sim.url)
            kek = secrets.token_bytes(32)
            settings = health_settings(
                primero_url=sim.url, fhir_url=fhir.base_url, state_url=state_url, kek=kek
            )
            with StateStore(state_url) as store:
                KeyRing.init(store, kek, ["health", "police", "birth_registration", "courts"])
            referred = refer_children_to_health(sim.url, N)
            yield {
                "sim": sim,
                "fhir": fhir,
                "hospital": hospital,
                "settings": settings,
                "referred": referred,
                "state_url": state_url,
            }
    finally:
        fhir.cleanup()


def sync(settings: Settings) -> Any:
    with open_job(settings, "health") as job:
        return job.run()


def tasks_by_status(hospital: Hospital) -> dict[str, list[str]]:
    grouped: dict[str, list[str]] = {}
    for task in hospital.referral_tasks():
        grouped.setdefault(task["status"], []).append(Hospital.referral_key(task))
    return grouped


def linked_rows(sim: PrimeroSimulator, case_id: str) -> list[dict[str, Any]]:
    with PrimeroClient(
        sim.url, auth="basic", username="cpims-adapter", password="sim-password"
    ) as c:
        return list(c.get_case(case_id).get(SUBFORM_FIELD) or [])


def test_referrals_reach_the_hospital_once_and_statuses_come_back(world: dict[str, Any]) -> None:
    sim, hospital, settings = world["sim"], world["hospital"], world["settings"]
    referred: list[tuple[str, str]] = world["referred"]

    # 1. Capacity probes only: N Tasks, and not one Patient or ServiceRequest yet.
    first = sync(settings)
    assert first.enqueued == {"probe": N} and first.delivered == {"probe": N}
    assert len(hospital.referral_tasks("requested")) == N
    assert hospital.search("ServiceRequest") == [] and hospital.search("Patient") == []

    # 2. The hospital accepts six and rejects two.
    keys = sorted(Hospital.referral_key(t) for t in hospital.referral_tasks())
    accepted, rejected = keys[:6], keys[6:]
    for key in accepted:
        hospital.accept(key)
    for key in rejected:
        hospital.reject(key, "no-capacity")
    second = sync(settings)
    assert second.delivered.get("referral") == 6
    assert len(hospital.search("ServiceRequest")) == 6
    assert len(hospital.referral_tasks()) == N  # the probe's Task was reused, not duplicated
    for task in hospital.referral_tasks("accepted"):
        assert "focus" in task and "for" in task

    # Patients carry only the health case code and allow-listed fields.
    for patient in hospital.search("Patient"):
        assert {i["system"] for i in patient["identifier"]} == {case_code_system("health")}
        assert "name" not in patient and "telecom" not in patient and "address" not in patient
        assert set(patient) <= {"resourceType", "id", "meta", "identifier", "gender", "birthDate"}

    # 3. The hospital completes three of the accepted, with a medico-legal report.
    for key in accepted[:3]:
        hospital.complete(key, "Examined; report attached.")
    sync(settings)
    statuses = {
        f"ref-{referral_id}": referral_status(sim.url, case_id, referral_id)
        for case_id, referral_id in referred
    }
    assert sorted(statuses[k] for k in accepted[:3]) == ["done"] * 3
    assert sorted(statuses[k] for k in accepted[3:]) == ["accepted"] * 3
    assert sorted(statuses[k] for k in rejected) == ["rejected"] * 2

    # The CPO sees the department's record inside the case.
    case_of = {f"ref-{r}": c for c, r in referred}
    (row,) = linked_rows(sim, case_of[accepted[0]])
    assert row["link_department"] == "health" and row["link_status"] == "completed"
    assert row["link_external_reference"].startswith("Task/")
    assert row["link_case_code"].startswith("cp1.health.")
    assert "DocumentReference/" in row["link_status_note"]

    # 4. Re-running a finished sync sends nothing.
    again = sync(settings)
    assert not again.enqueued and not again.delivered
    assert len(hospital.search("ServiceRequest")) == 6 and len(hospital.referral_tasks()) == N


def test_a_case_edited_after_referral_updates_the_hospitals_copy(world: dict[str, Any]) -> None:
    sim, hospital, settings = world["sim"], world["hospital"], world["settings"]
    case_id, referral_id = world["referred"][0]
    sync(settings)
    hospital.accept(f"ref-{referral_id}")
    sync(settings)
    (patient,) = [p for p in hospital.search("Patient") if p.get("gender") in ("male", "female")][
        :1
    ]
    cpo_edit(sim.url, case_id, {"sex": "female" if patient["gender"] == "male" else "male"})
    report = sync(settings)
    assert report.delivered.get("update") == 1
    patients = hospital.search("Patient")
    assert len(patients) == 1 and patients[0]["gender"] != patient["gender"]
    assert len(hospital.search("ServiceRequest")) == 1


def test_withdrawn_consent_stops_disclosure_and_records_a_deletion_request(
    world: dict[str, Any],
) -> None:
    sim, hospital, settings = world["sim"], world["hospital"], world["settings"]
    case_id, referral_id = world["referred"][1]
    key = f"ref-{referral_id}"
    sync(settings)
    hospital.accept(key)
    sync(settings)
    cpo_edit(sim.url, case_id, {"consent_for_services": False})
    report = sync(settings)
    assert report.delivered.get("withdraw") == 1
    assert hospital.task(key)["status"] == "cancelled"
    consents = hospital.search("Consent", identifier=f"urn:cpims-adapter:consent|{key}")
    assert [c["status"] for c in consents] == ["inactive"]
    with StateStore(world["state_url"]) as store, store.transaction() as conn:
        (request,) = pending_deletion_requests(conn, "health")
        assert request.case_code.startswith("cp1.health.")
    # Further edits disclose nothing more.
    cpo_edit(sim.url, case_id, {"age": 15})
    after = sync(settings)
    assert not after.enqueued and not after.delivered


def test_dry_run_sends_nothing_and_keeps_the_cursor(world: dict[str, Any]) -> None:
    hospital, settings = world["hospital"], world["settings"]
    lines: list[dict[str, Any]] = []
    with open_job(settings, "health", emit=lines.append) as job:
        report = job.run(dry_run=True)
    assert report.pull is not None and report.pull.records_new == N
    assert len(lines) == N and {line["kind"] for line in lines} == {"probe"}
    for line in lines:
        text = str(line)
        assert "Synthetic Child" not in text and REFERRAL_SYSTEM in text
    assert hospital.referral_tasks() == []
    real = sync(settings)
    assert real.delivered == {"probe": N}  # the dry run moved no cursor
