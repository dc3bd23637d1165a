"""Both of Primero's error shapes become the right adapter.errors class, without personal data."""

from __future__ import annotations

from collections.abc import Callable

import pytest
import responses

from adapter.errors import (
    PrimeroConflict,
    PrimeroError,
    PrimeroForbidden,
    PrimeroNotFound,
    PrimeroValidationError,
)
from adapter.primero import PrimeroClient

Make = Callable[..., PrimeroClient]
BASE = "https://primero.test"
CASE_ID = "6f1c2b9e-3a4d-4e5f-8a9b-0c1d2e3f4a5b"
CASE_URL = f"{BASE}/api/v2/cases/{CASE_ID}"


def test_403_is_forbidden_and_names_the_fix(
    mocked: responses.RequestsMock, make_client: Make
) -> None:
    mocked.get(
        CASE_URL,
        status=403,
        json={
            "errors": [
                {"status": 403, "resource": f"/api/v2/cases/{CASE_ID}", "message": "Forbidden"}
            ]
        },
    )

    with pytest.raises(PrimeroForbidden, match=r"\(Forbidden\).*ask the Primero administrator"):
        make_client().get_case(CASE_ID)


def test_404_does_not_repeat_primeros_detail(
    mocked: responses.RequestsMock, make_client: Make
) -> None:
    detail = f"Couldn't find Child with 'id'={CASE_ID} name=Ayesha"
    mocked.get(
        CASE_URL,
        status=404,
        json={"errors": [{"status": 404, "message": "Not Found", "detail": detail}]},
    )

    with pytest.raises(PrimeroNotFound) as caught:
        make_client().get_case(CASE_ID)

    assert caught.value.status == 404
    assert "Ayesha" not in str(caught.value)


def test_422_with_json_pointer_details_lists_field_names(
    mocked: responses.RequestsMock, make_client: Make
) -> None:
    body = {
        "errors": [
            {
                "status": 422,
                "resource": f"/api/v2/cases/{CASE_ID}",
                "message": "Invalid Record JSON",
                "detail": ["/age", "/services_section/0/service_type"],
            }
        ]
    }
    mocked.patch(CASE_URL, status=422, json=body)

    with pytest.raises(PrimeroValidationError) as caught:
        make_client().update_case(CASE_ID, {"age": "twelve"})

    assert caught.value.fields == ["age", "services_section/0/service_type"]
    assert "Invalid Record JSON" in str(caught.value)
    assert "twelve" not in str(caught.value)


def test_422_with_message_arrays_keeps_the_keys(
    mocked: responses.RequestsMock, make_client: Make
) -> None:
    body = {
        "errors": [
            {"status": 422, "detail": "consent", "message": ["transition.errors.consent"]},
            {
                "status": 422,
                "detail": "transitioned_to",
                "message": ["transition.errors.to_user_can_receive"],
            },
        ]
    }
    mocked.post(f"{CASE_URL}/referrals", status=422, json=body)

    with pytest.raises(PrimeroValidationError) as caught:
        make_client().create_referral(CASE_ID, transitioned_to="health_officer1")

    assert caught.value.fields == ["consent", "transitioned_to"]
    assert "transition.errors.consent" in str(caught.value)


def test_409_is_conflict(mocked: responses.RequestsMock, make_client: Make) -> None:
    body = {
        "errors": [{"status": 409, "message": "Conflict: A record with this id already exists"}]
    }
    mocked.post(f"{BASE}/api/v2/webhooks", status=409, json=body)

    with pytest.raises(PrimeroConflict):
        make_client().create_webhook("case.update", "https://adapter.test/inbox")


def test_values_interpolated_into_messages_are_dropped(
    mocked: responses.RequestsMock, make_client: Make
) -> None:
    body = {"errors": [{"status": 400, "message": 'name="Ayesha Khan" is not allowed'}]}
    mocked.get(CASE_URL, status=400, json=body)

    with pytest.raises(PrimeroError) as caught:
        make_client().get_case(CASE_ID)

    assert caught.value.status == 400
    assert "Ayesha" not in str(caught.value)


def test_an_error_body_that_is_not_json_still_maps_by_status(
    mocked: responses.RequestsMock, make_client: Make
) -> None:
    mocked.get(CASE_URL, status=403, body="<html>nginx</html>")

    with pytest.raises(PrimeroForbidden):
        make_client().get_case(CASE_ID)


def test_ids_that_are_not_uuids_never_reach_a_url() -> None:
    client = PrimeroClient(BASE, username="u", password="p")
    with pytest.raises(ValueError, match="record UUID"):
        client.get_case("Ayesha Khan")
    with pytest.raises(ValueError, match="record UUID"):
        client.get_case("../users")
