"""Referrals: create, consent, receivers, life-cycle, no-ops, remote, bulk (§5, §10 #7-11)."""

from __future__ import annotations

from typing import Any

import requests

from adapter.simulator.primero import PrimeroSimulator
from tests.simulator.sim_helpers import PASSWORD, new_case, url

CASES = "/api/v2/cases"


def refer(
    api: requests.Session, sim: PrimeroSimulator, case_id: str, **data: Any
) -> requests.Response:
    body = {"transitioned_to": "health_gateway", "notes": "Test Notes", **data}
    return api.post(url(sim, f"{CASES}/{case_id}/referrals"), json={"data": body}, timeout=5)


def set_status(
    api: requests.Session, sim: PrimeroSimulator, case_id: str, referral_id: str, **data: Any
) -> requests.Response:
    return api.patch(
        url(sim, f"{CASES}/{case_id}/referrals/{referral_id}"), json={"data": data}, timeout=5
    )


def stored(sim: PrimeroSimulator, case_id: str) -> dict[str, Any]:
    return dict(requests.get(url(sim, f"/_sim/cases/{case_id}"), timeout=5).json())


def case_with_service(
    api: requests.Session, sim: PrimeroSimulator, **fields: Any
) -> tuple[str, str]:
    case = new_case(
        api, sim, services_section=[{"service_type": "health_medical_service"}], **fields
    )
    row_id = stored(sim, case["id"])["data"]["services_section"][0]["unique_id"]
    return case["id"], row_id


def test_refer_to_a_user(api: requests.Session, sim: PrimeroSimulator) -> None:
    case_id, row_id = case_with_service(api, sim)
    before = stored(sim, case_id)["data"]["last_updated_at"]
    response = refer(api, sim, case_id, service="health_medical_service", service_record_id=row_id)
    assert response.status_code == 200
    data = response.json()["data"]
    assert data["record_id"] == case_id and data["type"] == "Referral"
    assert (data["transitioned_to"], data["transitioned_by"], data["notes"]) == (
        "health_gateway",
        "cpims-adapter",
        "Test Notes",
    )
    assert data["status"] == "in_progress" and data["record_type"] == "case"
    assert data["remote"] is False and data["consent_overridden"] is False
    assert data["record_access_denied"] is False and data["user_can_accept_or_reject"] is False
    assert data["transitioned_to_user_agency"] == "agency-civil-hospital-karachi"
    assert None not in data.values()
    assert data["record"]["services_section"][0]["service_status_referred"] is True
    after = stored(sim, case_id)["data"]
    assert "health_gateway" in after["assigned_user_names"]
    assert after["last_updated_at"] > before


def test_receiver_with_system_role_is_422(api: requests.Session, sim: PrimeroSimulator) -> None:
    case_id = new_case(api, sim)["id"]
    response = refer(api, sim, case_id, transitioned_to="system_monitor")
    assert response.status_code == 422
    error = response.json()["errors"][0]
    assert error["status"] == 422 and error["detail"] == "transitioned_to"
    assert error["message"] == ["transition.errors.to_user_can_receive"]


def test_unknown_receiver_is_the_nil_error_500(
    api: requests.Session, sim: PrimeroSimulator
) -> None:
    case_id = new_case(api, sim)["id"]
    response = refer(api, sim, case_id, transitioned_to="nobody")
    assert response.status_code == 500


def test_referral_without_permission_is_403(api: requests.Session, sim: PrimeroSimulator) -> None:
    case_id = new_case(api, sim)["id"]
    response = requests.post(
        url(sim, f"{CASES}/{case_id}/referrals"),
        auth=("cp_viewer", PASSWORD),
        json={"data": {"transitioned_to": "health_gateway"}},
        timeout=5,
    )
    assert response.status_code == 403
    error = response.json()["errors"][0]
    assert error["message"] == "Forbidden" and error["resource"].endswith("/referrals")


def test_consent_rules_per_module(api: requests.Session, sim: PrimeroSimulator) -> None:
    cp_no_disclosure = new_case(api, sim, disclosure_other_orgs=False)["id"]
    response = refer(api, sim, cp_no_disclosure)
    assert response.status_code == 422
    assert response.json()["errors"][0] == {
        "status": 422,
        "resource": f"/api/v2/cases/{cp_no_disclosure}/referrals",
        "detail": "consent",
        "message": ["transition.errors.consent"],
    }
    assert refer(api, sim, cp_no_disclosure, consent_overridden=True).status_code == 200
    gbv = new_case(api, sim, module_id="primeromodule-gbv", disclosure_other_orgs=False)["id"]
    assert refer(api, sim, gbv).status_code == 200


def test_remote_referral(api: requests.Session, sim: PrimeroSimulator) -> None:
    case_id = new_case(api, sim)["id"]
    response = api.post(
        url(sim, f"{CASES}/{case_id}/referrals"),
        json={
            "data": {
                "remote": True,
                "service": "alternative_care",
                "transitioned_to_agency": "A",
                "transitioned_to_remote": "B",
            }
        },
        timeout=5,
    )
    assert response.status_code == 200
    data = response.json()["data"]
    assert data["type"] == "Referral" and data["user_can_accept_or_reject"] is False
    assert (data["transitioned_to_agency"], data["transitioned_to_remote"]) == ("A", "B")
    assert "transitioned_to" not in data
    assert stored(sim, case_id)["data"]["assigned_user_names"] == []


def test_accept_then_done_marks_the_service_implemented(
    api: requests.Session, sim: PrimeroSimulator
) -> None:
    case_id, row_id = case_with_service(api, sim)
    referral = refer(api, sim, case_id, service_record_id=row_id).json()["data"]
    accepted = set_status(api, sim, case_id, referral["id"], status="accepted")
    assert accepted.status_code == 200
    assert accepted.json()["data"]["status"] == "accepted"
    assert accepted.json()["data"]["responded_at"]
    done = set_status(api, sim, case_id, referral["id"], status="done", rejection_note="n")
    assert done.status_code == 200
    assert done.json()["data"]["status"] == "done"
    assert done.json()["data"]["rejection_note"] == "n"
    data = stored(sim, case_id)["data"]
    row = data["services_section"][0]
    assert row["service_implemented"] == "implemented"
    assert row["service_implemented_day_time"] and row["note_on_referral_from_provider"] == "n"
    assert "health_gateway" not in data["assigned_user_names"]


def test_reject_from_in_progress(api: requests.Session, sim: PrimeroSimulator) -> None:
    case_id = new_case(api, sim)["id"]
    referral = refer(api, sim, case_id).json()["data"]
    rejected = set_status(
        api, sim, case_id, referral["id"], status="rejected", rejected_reason="r"
    ).json()["data"]
    assert rejected["status"] == "rejected" and rejected["rejected_reason"] == "r"
    assert rejected["responded_at"]


def test_invalid_or_repeated_transitions_are_silent_200_no_ops(
    api: requests.Session, sim: PrimeroSimulator
) -> None:
    case_id = new_case(api, sim)["id"]
    referral = refer(api, sim, case_id).json()["data"]
    stamp = stored(sim, case_id)["data"]["last_updated_at"]
    for status in ("done", "in_progress", "revoked", "bogus"):
        response = set_status(api, sim, case_id, referral["id"], status=status)
        assert response.status_code == 200
        assert response.json()["data"]["status"] == "in_progress"
    set_status(api, sim, case_id, referral["id"], status="accepted")
    again = set_status(api, sim, case_id, referral["id"], status="accepted")
    assert again.status_code == 200 and again.json()["data"]["status"] == "accepted"
    reject_late = set_status(api, sim, case_id, referral["id"], status="rejected")
    assert reject_late.json()["data"]["status"] == "accepted"
    assert stored(sim, case_id)["data"]["last_updated_at"] > stamp


def test_consent_withdrawn_later_blocks_the_accept(
    api: requests.Session, sim: PrimeroSimulator
) -> None:
    case_id = new_case(api, sim)["id"]
    referral = refer(api, sim, case_id).json()["data"]
    api.patch(
        url(sim, f"{CASES}/{case_id}"), json={"data": {"consent_for_services": False}}, timeout=5
    )
    response = set_status(api, sim, case_id, referral["id"], status="accepted")
    assert response.status_code == 422
    assert response.json()["errors"][0]["detail"] == "consent"


def test_revoke(api: requests.Session, sim: PrimeroSimulator) -> None:
    case_id = new_case(api, sim)["id"]
    referral = refer(api, sim, case_id).json()["data"]
    response = api.delete(url(sim, f"{CASES}/{case_id}/referrals/{referral['id']}"), timeout=5)
    assert response.status_code == 200 and response.json()["data"]["status"] == "revoked"
    assert "health_gateway" not in stored(sim, case_id)["data"]["assigned_user_names"]


def test_receiver_can_accept_its_referral(api: requests.Session, sim: PrimeroSimulator) -> None:
    case_id = new_case(api, sim)["id"]
    referral = refer(api, sim, case_id).json()["data"]
    gateway = ("health_gateway", PASSWORD)
    listed = requests.get(url(sim, f"{CASES}/{case_id}/referrals"), auth=gateway, timeout=5).json()[
        "data"
    ]
    assert [r["id"] for r in listed] == [referral["id"]]
    assert listed[0]["user_can_accept_or_reject"] is True
    response = requests.patch(
        url(sim, f"{CASES}/{case_id}/referrals/{referral['id']}"),
        auth=gateway,
        json={"data": {"status": "accepted"}},
        timeout=5,
    )
    assert response.status_code == 200 and response.json()["data"]["status"] == "accepted"


def test_bulk_referral(api: requests.Session, sim: PrimeroSimulator) -> None:
    ids = [new_case(api, sim)["id"] for _ in range(2)]
    response = api.post(
        url(sim, f"{CASES}/referrals"),
        json={"data": {"ids": ids, "transitioned_to": "health_gateway", "notes": "x"}},
        timeout=5,
    )
    assert response.status_code == 200
    data = response.json()["data"]
    assert len(data) == 2 and [t["record_id"] for t in data] == ids


def test_bulk_referral_is_not_atomic(api: requests.Session, sim: PrimeroSimulator) -> None:
    good = new_case(api, sim)["id"]
    bad = new_case(api, sim, consent_for_services=False)["id"]
    response = api.post(
        url(sim, f"{CASES}/referrals"),
        json={"data": {"ids": [good, bad], "transitioned_to": "health_gateway"}},
        timeout=5,
    )
    assert response.status_code == 422
    assert len(stored(sim, good)["transitions"]) == 1
    assert stored(sim, bad)["transitions"] == []


def test_transitions_listing(api: requests.Session, sim: PrimeroSimulator) -> None:
    case_id = new_case(api, sim)["id"]
    referral = refer(api, sim, case_id).json()["data"]
    response = api.get(
        url(sim, f"{CASES}/{case_id}/transitions"), params={"types": "Referral"}, timeout=5
    )
    assert [t["id"] for t in response.json()["data"]] == [referral["id"]]
    assert (
        api.get(
            url(sim, f"{CASES}/{case_id}/transitions"), params={"types": "Transfer"}, timeout=5
        ).json()["data"]
        == []
    )


def test_seeded_cases_carry_internal_and_remote_referrals(sim: PrimeroSimulator) -> None:
    transitions = list(sim.state.transitions.values())
    assert any(t["remote"] for t in transitions)
    assert any(t.get("transitioned_to") == "health_gateway" for t in transitions)
