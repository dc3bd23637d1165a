"""Department records and answers reach the case in Primero through the write-back drain."""

from __future__ import annotations

from typing import Any

import requests

from adapter.simulator.scenario import CPO, referral_status
from adapter.state.links import Links
from adapter.state.outbox import Outbox
from tests.api.conftest import World, fir_body, message_id


def refer_to_police(world: World) -> tuple[str, str, str]:
    """What the sync engine leaves behind after sending a referral to the police: a case with
    a remote referral in Primero, and a link holding the police's case code."""
    case_id = world.new_case(
        name="Synthetic Child", sex="female", age=12, disclosure_other_orgs=True
    )
    answer = requests.post(
        f"{world.sim.url}/api/v2/cases/{case_id}/referrals",
        json={
            "data": {
                "remote": True,
                "service": "police_other_service",
                "transitioned_to_agency": "agency-sindh-police",
                "transitioned_to_remote": "Women & Child Protection Cell",
            }
        },
        auth=CPO,
        timeout=10,
    )
    answer.raise_for_status()
    referral_id = str(answer.json()["data"]["id"])
    key = f"ref-{referral_id}"
    Links(world.store).update(
        f"police:{key}",
        job="police",
        department="police",
        case_id=case_id,
        referral_id=referral_id,
        case_code=world.code(case_id),
        stage="identified",
        remote_status="requested",
    )
    return case_id, referral_id, key


def test_a_completed_referral_is_written_back_into_primero(world: World) -> None:
    case_id, referral_id, key = refer_to_police(world)
    accept = {"message_id": message_id(), "action": "accept", "external_ref": "WCPC/2026/19"}
    response = world.post(f"/v1/referrals/{key}/response", accept)
    assert response.status_code == 202 and response.json()["referral_status"] == "accepted"
    assert referral_status(world.sim.url, case_id, referral_id) == "accepted"

    complete = {
        "message_id": message_id(),
        "action": "complete",
        "note": "Statement recorded; FIR registered.",
        "outputs": ["FIR 19/2026"],
    }
    response = world.post(f"/v1/referrals/{key}/response", complete)
    assert response.status_code == 202
    # Delivered by the write-back drain (queued under the sync job that sent the referral):
    # two answers, each in two parts (the referral's status, the linked-records row).
    assert Outbox(world.store).depth() == {"sent": 4}
    assert referral_status(world.sim.url, case_id, referral_id) == "done"
    (row,) = world.linked_rows(case_id)
    assert row["link_status"] == "completed" and row["link_external_reference"] == "WCPC/2026/19"
    assert (
        "Statement recorded" in row["link_status_note"] and "FIR 19/2026" in row["link_status_note"]
    )
    link = Links(world.store).get(f"police:{key}")
    assert link is not None and link.written_back_status == "completed"
    assert link.primero_status == "done"

    # A finished referral cannot be reopened from outside.
    late = {"message_id": message_id(), "action": "reject", "reason": "no_capacity"}
    response = world.post(f"/v1/referrals/{key}/response", late)
    assert response.status_code == 409 and response.json()["error"]["code"] == "referral_closed"


def test_rejection_needs_a_reason(world: World) -> None:
    _, _, key = refer_to_police(world)
    response = world.post(
        f"/v1/referrals/{key}/response", {"message_id": message_id(), "action": "reject"}
    )
    assert response.status_code == 422
    assert response.json()["error"]["field"] == "reason"


def test_an_fir_link_appears_in_the_cases_linked_records(world: World) -> None:
    case_id = world.new_case(name="Synthetic Child", sex="male", age=13)
    body = fir_body(world.code(case_id))
    response = world.post("/v1/fir-links", body)
    assert response.status_code == 202 and response.json()["record_type"] == "fir"
    (row,) = world.linked_rows(case_id)
    assert row["link_record_type"] == "fir" and row["link_department"] == "police"
    assert row["link_status"] == "under_investigation"
    assert row["link_external_reference"] == "FIR 123/2026, PS Artillery Maidan, Karachi South"
    assert row["link_case_code"] == body["case_code"]
    note = row["link_status_note"]
    assert "377-B" in note and "Sub-Inspector" in note and "MLC-2026-0042" in note

    # The same FIR moves on: its row is updated in place, not duplicated.
    later = fir_body(world.code(case_id), status="challan_submitted", challan_date="2026-02-01")
    assert world.post("/v1/fir-links", later).status_code == 202
    (row,) = world.linked_rows(case_id)
    assert (
        row["link_status"] == "challan_submitted"
        and "challan date: 2026-02-01" in (row["link_status_note"])
    )
    # Another FIR about the same child is another row.
    assert (
        world.post("/v1/fir-links", fir_body(world.code(case_id), fir_number=124)).status_code
        == 202
    )
    assert len(world.linked_rows(case_id)) == 2


def test_a_court_order_appears_in_the_cases_linked_records(world: World) -> None:
    case_id = world.new_case(name="Synthetic Child", sex="female", age=7)
    body: dict[str, Any] = {
        "message_id": message_id(),
        "case_code": world.code(case_id, "courts"),
        "order": {
            "court": {
                "type": "child_protection",
                "name": "Child Protection Court Peshawar",
                "district": "Peshawar",
            },
            "case_number": "CPC-12",
            "case_year": 2026,
            "order_number": "3",
            "order_date": "2026-03-02",
            "order_type": "placement",
            "status": "active",
            "effective_from": "2026-03-02",
            "review_date": "2026-06-02",
            "conditions": ["Weekly visits by the probation officer"],
        },
    }
    response = world.post("/v1/court-orders", body, "courts")
    assert response.status_code == 202 and response.json()["record_type"] == "court_order"
    (row,) = world.linked_rows(case_id)
    assert row["link_record_type"] == "court_order" and row["link_status"] == "active"
    assert row["link_department"] == "courts"
    assert (
        row["link_external_reference"]
        == "Child Protection Court Peshawar, case CPC-12/2026, order 3"
    )
    assert "order type: placement" in row["link_status_note"]
    assert "Weekly visits" in row["link_status_note"]

    bad = {**body, "message_id": message_id()}
    bad["order"] = {**body["order"], "effective_to": "2026-01-01"}
    response = world.post("/v1/court-orders", bad, "courts")
    assert response.status_code == 422
    assert response.json()["error"]["field"] == "order.effective_to"


def test_a_verification_carries_match_and_number_and_no_cnic(world: World) -> None:
    case_id = world.new_case(name="Synthetic Child", sex="male", age=5)
    body = {
        "message_id": message_id(),
        "case_code": world.code(case_id, "birth_registration"),
        "verification": {
            "request_id": "DCI-2026-0001",
            "match_status": "match",
            "registration_number": "UC-KHI-12/2021/0456",
            "registration_date": "2021-04-03",
            "registering_uc": "UC-12 Saddar",
            "certificate_issued": True,
            "crc_issued": False,
            "checked_at": "2026-03-01T09:30:00+05:00",
        },
    }
    response = world.post("/v1/birth-verifications", body, "birth_registration")
    assert response.status_code == 202
    (row,) = world.linked_rows(case_id)
    assert row["link_record_type"] == "birth_registration"
    assert row["link_status"] == "match"
    assert row["link_external_reference"] == "UC-KHI-12/2021/0456"
    assert "certificate issued: yes" in row["link_status_note"]
    assert "cnic" not in str(world.case(case_id)).lower()

    # A later check replaces the earlier result: one verification row per case.
    again = {**body, "message_id": message_id()}
    again["verification"] = {"request_id": "DCI-2026-0002", "match_status": "no_match"}
    assert world.post("/v1/birth-verifications", again, "birth_registration").status_code == 202
    (row,) = world.linked_rows(case_id)
    assert row["link_status"] == "no_match"


def test_a_record_can_name_the_case_by_referral_key(world: World) -> None:
    case_id, _, key = refer_to_police(world)
    body = fir_body("unused")
    del body["case_code"]
    body["referral_key"] = key
    assert world.post("/v1/fir-links", body).status_code == 202
    assert {r["link_record_type"] for r in world.linked_rows(case_id)} == {"fir"}


def test_the_longest_allowed_values_still_fit_primeros_linked_record(world: World) -> None:
    case_id = world.new_case(name="Synthetic Child", sex="male", age=15)
    fir = fir_body(
        world.code(case_id),
        district="D" * 60,
        police_station="S" * 60,
        fir_number=999_999,
        investigating_officer_rank="R" * 200,
    )
    assert world.post("/v1/fir-links", fir).status_code == 202
    order = {
        "message_id": message_id(),
        "case_code": world.code(case_id, "courts"),
        "order": {
            "court": {"type": "high", "name": "N" * 80, "district": "D" * 60},
            "case_number": "C" * 40,
            "case_year": 2026,
            "order_number": "O" * 40,
            "order_date": "2026-01-05",
            "order_type": "custody",
            "status": "active",
            "conditions": ["x" * 200] * 10,
        },
    }
    assert world.post("/v1/court-orders", order, "courts").status_code == 202
    assert Outbox(world.store).depth() == {"sent": 2}  # delivered, not dead letters
    assert len(world.linked_rows(case_id)) == 2
