"""Bad input gets a 4xx naming the field and the fix, never echoes a value, and changes nothing."""

from __future__ import annotations

import json
import logging
from typing import Any

import pytest

from adapter.privacy import list_security_events
from adapter.state.outbox import Outbox
from tests.api.conftest import KEYS, World, fir_body, message_id, referral_body

SECRET_NAME = "Zxqwerty Uniquename"


@pytest.fixture
def before(world: World) -> dict[str, Any]:
    return world.snapshot()


def nothing_changed(world: World, before: dict[str, Any]) -> None:
    assert world.snapshot() == before


def error(response: Any) -> dict[str, Any]:
    body = response.json()
    assert set(body) == {"error"} and set(body["error"]) == {"code", "message", "field"}
    return dict(body["error"])


@pytest.mark.parametrize(
    ("change", "field", "code"),
    [
        ({"urgency": 3}, "urgency", "invalid_value"),
        ({"concern_codes": "child_labour"}, "concern_codes", "wrong_type"),
        ({"message_id": 12}, "message_id", "wrong_type"),
        ({"message_id": "not-a-uuid-" + SECRET_NAME}, "message_id", "wrong_type"),
        ({"child": {"age": "12"}}, "child.age", "wrong_type"),
        ({"child": {"age": 12.5}}, "child.age", "wrong_type"),
        ({"child": {"age_estimated": "true"}}, "child.age_estimated", "wrong_type"),
        ({"child": {"date_of_birth": "02/05/2014"}}, "child.date_of_birth", "wrong_type"),
        ({"child": {"date_of_birth": "2999-01-01"}}, "child.date_of_birth", "invalid_value"),
        ({"child": {"district": SECRET_NAME}}, "child.district", "invalid_format"),
        ({"concern_codes": ["child_labour", SECRET_NAME]}, "concern_codes[1]", "invalid_value"),
    ],
)
def test_wrong_types_name_the_field_and_never_echo_the_value(
    world: World, before: dict[str, Any], change: dict[str, Any], field: str, code: str
) -> None:
    response = world.post("/v1/referrals", referral_body(**change))
    assert response.status_code == 422
    problem = error(response)
    assert problem["field"] == field and problem["code"] == code
    assert problem["message"].startswith(field)
    assert SECRET_NAME not in response.text and "12.5" not in response.text
    nothing_changed(world, before)


def test_unknown_fields_are_refused_with_the_allowed_ones_listed(
    world: World, before: dict[str, Any]
) -> None:
    body = referral_body()
    body["child"]["nickname"] = SECRET_NAME
    response = world.post("/v1/referrals", body)
    assert response.status_code == 422
    problem = error(response)
    assert problem == {
        "code": "unknown_field",
        "field": "child.nickname",
        "message": problem["message"],
    }
    assert "allowed: age, age_estimated, date_of_birth, district, name, sex" in problem["message"]
    assert SECRET_NAME not in response.text
    nothing_changed(world, before)


def test_missing_fields_are_named(world: World, before: dict[str, Any]) -> None:
    body = referral_body()
    del body["referring_officer"]
    response = world.post("/v1/referrals", body)
    assert response.status_code == 422
    assert error(response)["field"] == "referring_officer"
    assert error(response)["code"] == "missing_field"
    fir = fir_body("cp1.police.1." + "a" * 52)
    del fir["fir"]["status"]
    response = world.post("/v1/fir-links", fir)
    assert error(response)["field"] == "fir.status"
    nothing_changed(world, before)


def test_a_case_needs_exactly_one_reference(world: World) -> None:
    body = fir_body("cp1.police.1." + "a" * 52)
    del body["case_code"]
    response = world.post("/v1/fir-links", body)
    assert response.status_code == 422
    assert error(response)["field"] == "case_code"
    assert "exactly one of case_code and referral_key" in error(response)["message"]


def test_cnic_fields_and_cnic_shaped_values_are_refused(world: World) -> None:
    case_id = world.new_case(name="Synthetic Child", sex="male", age=8)
    code = world.code(case_id, "birth_registration")
    verification = {
        "request_id": "REQ-1",
        "match_status": "match",
        "registration_number": "UC-12/2015/331",
        "mother_cnic": "42101-1234567-1",
    }
    body = {"message_id": message_id(), "case_code": code, "verification": verification}
    response = world.post("/v1/birth-verifications", body, "birth_registration")
    assert response.status_code == 422
    assert error(response)["code"] == "cnic_refused"
    assert error(response)["field"] == "verification.mother_cnic"
    assert "1234567" not in response.text

    del verification["mother_cnic"]
    verification["registration_number"] = "4210112345671"
    response = world.post("/v1/birth-verifications", body, "birth_registration")
    assert error(response)["code"] == "cnic_refused"
    assert error(response)["field"] == "verification.registration_number"

    note = referral_body(reason="Father's CNIC is 42101-1234567-1, call him.")
    response = world.post("/v1/referrals", note)
    assert error(response) == {
        "code": "cnic_refused",
        "field": "reason",
        "message": error(response)["message"],
    }
    assert "1234567" not in response.text


def test_oversized_body_is_413_before_parsing(world: World, before: dict[str, Any]) -> None:
    body = referral_body(reason="x" * 70_000)
    response = world.post("/v1/referrals", body)
    assert response.status_code == 413
    assert error(response)["code"] == "body_too_large"
    # Not JSON at all, and still refused for its size first (nothing was parsed).
    raw = b"{" * 70_000
    response = world.client.post(
        "/v1/referrals",
        content=raw,
        headers={"Authorization": f"Bearer {KEYS['police']}", "Content-Type": "application/json"},
    )
    assert response.status_code == 413
    nothing_changed(world, before)


def test_chunked_body_without_length_is_cut_at_the_limit(
    world: World, before: dict[str, Any]
) -> None:
    def chunks() -> Any:
        for _ in range(100):
            yield b" " * 1024

    response = world.client.post(
        "/v1/referrals",
        content=chunks(),
        headers={"Authorization": f"Bearer {KEYS['police']}", "Content-Type": "application/json"},
    )
    assert response.status_code == 413
    nothing_changed(world, before)


def test_malformed_json_and_wrong_media_type(world: World, before: dict[str, Any]) -> None:
    auth = {"Authorization": f"Bearer {KEYS['police']}"}
    response = world.client.post(
        "/v1/referrals", content=b'{"message_id": ', headers={**auth, "Content-Type": _JSON}
    )
    assert response.status_code == 400 and error(response)["code"] == "malformed_json"
    response = world.client.post(
        "/v1/referrals",
        content=json.dumps(referral_body()),
        headers={**auth, "Content-Type": "text/plain"},
    )
    assert response.status_code == 415 and error(response)["code"] == "unsupported_media_type"
    response = world.client.post(
        "/v1/referrals", content=b"[1, 2]", headers={**auth, "Content-Type": _JSON}
    )
    assert response.status_code == 422 and error(response)["field"] is None
    nothing_changed(world, before)


_JSON = "application/json"


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"Authorization": "Bearer not-a-key"},
        {"X-API-Key": "not-a-key"},
        {"Authorization": "Basic cG9saWNlOnNlY3JldA=="},
        {"Authorization": f"Bearer {KEYS['police']}", "X-API-Key": KEYS["health"]},
    ],
)
def test_bad_credentials_are_401(
    world: World, before: dict[str, Any], headers: dict[str, str]
) -> None:
    response = world.client.post("/v1/referrals", json=referral_body(), headers=headers)
    assert response.status_code == 401
    assert error(response)["code"] == "unauthenticated"
    assert response.headers["WWW-Authenticate"].startswith("Bearer")
    assert "not-a-key" not in response.text
    nothing_changed(world, before)


def test_either_header_carries_the_key(world: World) -> None:
    case_id = world.new_case(name="Synthetic Child", sex="male", age=8)
    body = fir_body(world.code(case_id))
    response = world.client.post("/v1/fir-links", json=body, headers={"X-API-Key": KEYS["police"]})
    assert response.status_code == 202


def test_another_departments_code_is_403_and_a_security_event(world: World) -> None:
    case_id = world.new_case(name="Synthetic Child", sex="female", age=9)
    health_code = world.code(case_id, "health")
    response = world.post("/v1/fir-links", fir_body(health_code), "police")
    assert response.status_code == 403
    problem = error(response)
    assert problem["code"] == "case_code_refused" and problem["field"] == "case_code"
    assert health_code not in response.text and "health" not in problem["message"]
    events = list_security_events(world.store)
    assert [(e.kind, e.department) for e in events] == [("wrong_department_code", "police")]
    assert health_code not in events[0].detail and case_id not in events[0].detail
    assert world.app.state.service.inbox.count() == 0
    assert Outbox(world.store).depth() == {}
    assert world.linked_rows(case_id) == []


def test_another_departments_referral_key_is_404_and_a_security_event(world: World) -> None:
    from adapter.state.links import Links

    case_id = world.new_case(name="Synthetic Child", sex="female", age=9)
    Links(world.store).update(
        "health:ref-1",
        job="health",
        department="health",
        case_id=case_id,
        case_code=world.code(case_id, "health"),
        stage="identified",
    )
    body = {"message_id": message_id(), "action": "accept"}
    response = world.post("/v1/referrals/ref-1/response", body, "police")
    assert response.status_code == 404 and error(response)["code"] == "unknown_referral"
    assert [e.kind for e in list_security_events(world.store)] == ["wrong_department_code"]
    response = world.post("/v1/referrals/ref-never/response", body, "police")
    assert response.status_code == 404
    assert len(list_security_events(world.store)) == 1  # an unknown key is no attack


def test_unknown_routes_and_methods_answer_in_the_same_shape(world: World) -> None:
    assert error(world.client.get("/v2/referrals"))["code"] == "not_found"
    response = world.client.get("/v1/referrals")
    assert response.status_code == 405 and error(response)["code"] == "method_not_allowed"
    response = world.post("/v1/referrals/bad key!/response", {"message_id": message_id()})
    assert response.status_code == 422 and error(response)["field"] == "referral_key"


def test_openapi_lists_every_route(world: World) -> None:
    spec = world.client.get("/openapi.json").json()
    assert set(spec["paths"]) == {
        "/v1/referrals",
        "/v1/referrals/{referral_key}/response",
        "/v1/fir-links",
        "/v1/court-orders",
        "/v1/birth-verifications",
        "/v1/records/{record_type}",
        "/v1/health",
    }
    schemas = spec["components"]["schemas"]
    names = ("ReferralIn", "ResponseIn", "FirLinkIn", "CourtOrderIn", "VerificationIn", "RecordIn")
    for name in names:
        assert schemas[name]["additionalProperties"] is False
    for path, ref in [("/v1/fir-links", "FirLinkIn"), ("/v1/referrals", "ReferralIn")]:
        body = spec["paths"][path]["post"]["requestBody"]["content"]["application/json"]
        assert body["schema"]["$ref"] == f"#/components/schemas/{ref}"
    assert {"HTTPBearer", "APIKeyHeader"} <= set(spec["components"]["securitySchemes"])
    assert "cnic" not in json.dumps(schemas["VerificationIn"]).lower()
    assert world.client.get("/v1/health").json()["status"] == "ok"


def test_logs_carry_routes_and_departments_never_bodies(
    world: World, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="adapter")
    body = referral_body(child={"name": SECRET_NAME, "sex": "female"})
    assert world.post("/v1/referrals", body).status_code == 202
    world.post("/v1/referrals", referral_body(urgency=SECRET_NAME))
    reply = {"message_id": message_id(), "action": "accept", "note": SECRET_NAME}
    world.post(f"/v1/referrals/{SECRET_NAME.replace(' ', '-')}/response", reply)
    text = "\n".join(r.getMessage() for r in caplog.records)
    assert "POST /v1/referrals 202" in text and "department=police" in text
    assert "POST /v1/referrals/{referral_key}/response 404" in text
    assert SECRET_NAME.split()[0] not in text and body["reference"] not in text


def test_an_unexpected_failure_is_a_500_without_details(
    world: World, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    def broken(*_: Any) -> Any:
        raise RuntimeError(SECRET_NAME)

    monkeypatch.setattr(world.app.state.service, "receive_referral", broken)
    response = world.post("/v1/referrals", referral_body())
    assert response.status_code == 500 and error(response)["code"] == "internal_error"
    assert SECRET_NAME not in response.text
    assert SECRET_NAME not in caplog.text and "RuntimeError" in caplog.text


def test_a_state_store_failure_is_a_503_that_stores_nothing(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    from adapter.errors import StateError

    def down(*_: Any) -> Any:
        raise StateError("state store at sqlite:///x failed: OperationalError.")

    monkeypatch.setattr(world.app.state.service, "record", down)
    case_id = world.new_case(name="Synthetic Child", sex="male", age=8)
    response = world.post("/v1/fir-links", fir_body(world.code(case_id)))
    assert response.status_code == 503 and response.headers["Retry-After"] == "30"
    assert error(response)["code"] == "temporarily_unavailable"
