"""A department's referral becomes one Primero case, owned by the responsible CPO and flagged
for review; a possible match is flagged, never merged."""

from __future__ import annotations

import uuid

from adapter.jobs.inbound import CASE_NAMESPACE
from adapter.primero.linked_records import row_id
from tests.api.conftest import RESPONSIBLE_CPO, World, message_id, referral_body


def case_of(reference: str, department: str = "police") -> str:
    return str(uuid.uuid5(CASE_NAMESPACE, f"{department}:{reference}"))


def test_a_referral_creates_one_case_even_when_sent_twice(world: World) -> None:
    body = referral_body()
    first = world.post("/v1/referrals", body)
    assert first.status_code == 202
    code = first.json()["case_code"]
    assert code.startswith("cp1.police.") and first.json()["status"] == "accepted"

    case_id = case_of(body["reference"])
    case = world.case(case_id)
    assert case["name"] == body["child"]["name"] and case["sex"] == "female"
    assert case["date_of_birth"] == "2014-05-02" and case["location_current"] == "PK-SD-KHI"
    assert case["protection_concerns"] == ["physically_or_mentally_abused", "child_labour"]
    assert case["risk_level"] == "high" and case["urgent_protection_concern"] == "true"
    assert case["owned_by"] == RESPONSIBLE_CPO  # in the responsible CPO's own case list
    assert case["other_agency_id"] == body["reference"]
    (flag,) = world.flags(case_id)
    assert flag.startswith("New referral from police (urgency: high)")
    (row,) = world.linked_rows(case_id)
    assert row["link_record_type"] == "referral" and row["link_status"] == "received"
    assert row["link_case_code"] == code and row["link_external_reference"] == body["reference"]
    assert "Inspector Synthetic" in row["link_status_note"]

    # The department sends the same referral again as a new message (its system retried).
    resent = world.post("/v1/referrals", {**body, "message_id": message_id()})
    assert resent.status_code == 202 and resent.json()["case_code"] == code
    with world.primero() as primero:
        found = primero.list_cases({"query": body["reference"], "id_search": True})[0]
    assert [c["id"] for c in found] == [case_id]  # one case, not two
    assert len(world.linked_rows(case_id)) == 1


def test_a_resent_referral_completes_the_case_without_overwriting_the_cpo(world: World) -> None:
    body = referral_body(child={"sex": "male", "age": 10})
    assert world.post("/v1/referrals", body).status_code == 202
    case_id = case_of(body["reference"])
    with world.primero() as primero:
        primero.update_case(case_id, {"sex": "female"})  # the CPO corrected it
    update = {
        **body,
        "message_id": message_id(),
        "child": {"sex": "male", "age": 10, "name": "Synthetic Bilal"},
        "concern_codes": ["street_child"],
    }
    assert world.post("/v1/referrals", update).status_code == 202
    case = world.case(case_id)
    assert case["sex"] == "female"  # the CPO's value stays
    assert case["name"] == "Synthetic Bilal"  # a gap is filled
    assert set(case["protection_concerns"]) == {
        "physically_or_mentally_abused",
        "child_labour",
        "street_child",
    }
    assert any(f.startswith("Updated referral from police") for f in world.flags(case_id))


def test_a_possible_match_is_flagged_and_never_merged(world: World) -> None:
    existing = world.new_case(name="Synthetic Aisha Khan", sex="female", age=11)
    spelled = world.new_case(name="Ayeshah Khaan", sex="female", age=12)
    other_sex = world.new_case(name="Synthetic Ayesha Khan", sex="male", age=11)
    other_age = world.new_case(name="Synthetic Ayesha Khan", sex="female", age=3)
    other_name = world.new_case(name="Synthetic Zainab Baloch", sex="female", age=11)
    with world.primero() as primero:
        display = {
            c["id"]: c["case_id_display"]
            for c in primero.list_cases({"per": 1000, "fields": "case_id_display"})[0]
        }
    body = referral_body(child={"name": "Synthetic Ayesha Khan", "sex": "female", "age": 11})
    assert world.post("/v1/referrals", body).status_code == 202
    case_id = case_of(body["reference"])

    flags = world.flags(case_id)
    (match,) = [f for f in flags if f.startswith("Possible match")]
    assert display[existing] in match and display[spelled] in match
    for different in (other_sex, other_age, other_name):
        assert display[different] not in match
    assert "Ayesha" not in match and "Aisha" not in match  # display ids only, never names
    # Nothing merged: both cases exist, unchanged.
    assert world.case(existing)["name"] == "Synthetic Aisha Khan"
    assert world.case(case_id)["name"] == "Synthetic Ayesha Khan"
    assert world.flags(existing) == []


def test_the_default_cpo_owns_referrals_of_other_departments(world: World) -> None:
    body = referral_body(child={"sex": "male"})
    response = world.post("/v1/referrals", body, "health")
    assert response.status_code == 202 and response.json()["case_code"].startswith("cp1.health.")
    assert world.case(case_of(body["reference"], "health"))["owned_by"] == "cp_worker2"


def test_the_case_code_from_a_referral_names_the_case_in_later_messages(world: World) -> None:
    body = referral_body()
    code = world.post("/v1/referrals", body).json()["case_code"]
    case_id = case_of(body["reference"])
    fir = {
        "message_id": message_id(),
        "case_code": code,
        "fir": {
            "province": "sindh",
            "district": "Karachi East",
            "police_station": "PS Ferozabad",
            "fir_number": 7,
            "fir_year": 2026,
            "status": "registered",
        },
    }
    assert world.post("/v1/fir-links", fir).status_code == 202
    rows = {r["link_record_type"]: r for r in world.linked_rows(case_id)}
    assert set(rows) == {"referral", "fir"}
    assert rows["fir"]["unique_id"] != row_id(f"police:in:{body['reference']}")
