"""Referral life-cycle, Primero's silent 200 no-op, and partial bulk failures."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime
from email.utils import format_datetime
from typing import Any

import pytest
import responses

from adapter.errors import PrimeroNoOp, PrimeroValidationError
from adapter.primero import PrimeroClient

Make = Callable[..., PrimeroClient]
BASE = "https://primero.test"
CASE_ID = "6f1c2b9e-3a4d-4e5f-8a9b-0c1d2e3f4a5b"
OTHER_ID = "9d8c7b6a-5f4e-4d3c-8b2a-1f0e9d8c7b6a"
THIRD_ID = "1a2b3c4d-5e6f-4a7b-8c9d-0e1f2a3b4c5d"
REFERRAL_ID = "749e9c6e-1111-4222-8333-944455556666"
REFERRAL_URL = f"{BASE}/api/v2/cases/{CASE_ID}/referrals/{REFERRAL_ID}"


def referral(status: str, **extra: Any) -> dict[str, Any]:
    return {"data": {"id": REFERRAL_ID, "type": "Referral", "status": status, **extra}}


def test_accept_checks_that_the_status_moved(
    mocked: responses.RequestsMock, make_client: Make
) -> None:
    mocked.patch(REFERRAL_URL, json=referral("accepted", responded_at="2026-03-01T08:00:00Z"))

    answer = make_client().accept_referral(CASE_ID, REFERRAL_ID)

    assert answer["status"] == "accepted"
    assert json.loads(mocked.calls[0].request.body) == {"data": {"status": "accepted"}}


def test_a_disallowed_transition_answered_200_raises_noop(
    mocked: responses.RequestsMock, make_client: Make
) -> None:
    mocked.patch(REFERRAL_URL, json=referral("in_progress"))  # done is only allowed from accepted

    with pytest.raises(
        PrimeroNoOp, match=r"still 'in_progress', not 'done'.*from 'accepted'"
    ) as caught:
        make_client().complete_referral(CASE_ID, REFERRAL_ID, "seen by the doctor")

    assert caught.value.status == 200
    assert "doctor" not in str(caught.value)
    sent = json.loads(mocked.calls[0].request.body)
    assert sent == {"data": {"status": "done", "rejection_note": "seen by the doctor"}}


def test_a_retry_that_finds_the_target_status_is_fine(
    mocked: responses.RequestsMock, make_client: Make
) -> None:
    mocked.patch(REFERRAL_URL, json=referral("rejected"))

    assert (
        make_client().reject_referral(CASE_ID, REFERRAL_ID, "no capacity")["status"] == "rejected"
    )


def test_revoke_is_a_delete_that_must_end_revoked(
    mocked: responses.RequestsMock, make_client: Make
) -> None:
    mocked.delete(REFERRAL_URL, json=referral("revoked"))

    assert make_client().revoke_referral(CASE_ID, REFERRAL_ID)["status"] == "revoked"


def test_create_referral_sends_only_permitted_keys(
    mocked: responses.RequestsMock, make_client: Make
) -> None:
    mocked.post(f"{BASE}/api/v2/cases/{CASE_ID}/referrals", json=referral("in_progress"))

    make_client().create_referral(
        CASE_ID, remote=True, service="health_medical_service", transitioned_to_agency="DHQ Lahore"
    )

    assert json.loads(mocked.calls[0].request.body) == {
        "data": {
            "remote": True,
            "consent_overridden": False,
            "service": "health_medical_service",
            "transitioned_to_agency": "DHQ Lahore",
        }
    }


def test_an_internal_referral_needs_a_recipient(make_client: Make) -> None:
    with pytest.raises(ValueError, match="transitioned_to"):
        make_client().create_referral(CASE_ID, notes="x")


def test_a_bulk_422_names_the_cases_already_referred(
    mocked: responses.RequestsMock, make_client: Make
) -> None:
    now = datetime.now(UTC).replace(microsecond=0)
    stamp = now.strftime("%Y-%m-%dT%H:%M:%S.000Z")
    error = {
        "errors": [{"status": 422, "detail": "consent", "message": ["transition.errors.consent"]}]
    }
    mocked.post(
        f"{BASE}/api/v2/cases/referrals",
        status=422,
        json=error,
        headers={"Date": format_datetime(now, usegmt=True)},
    )
    saved = {"id": REFERRAL_ID, "transitioned_to": "doc1", "notes": "n", "created_at": stamp}
    old = {**saved, "created_at": "2025-01-01T00:00:00.000Z"}
    mocked.get(f"{BASE}/api/v2/cases/{CASE_ID}/referrals", json={"data": [saved]})
    mocked.get(f"{BASE}/api/v2/cases/{OTHER_ID}/referrals", json={"data": [old]})
    mocked.get(f"{BASE}/api/v2/cases/{THIRD_ID}/referrals", json={"data": []})

    with pytest.raises(PrimeroValidationError) as caught:
        make_client().create_referrals_bulk(
            [CASE_ID, OTHER_ID, THIRD_ID], transitioned_to="doc1", notes="n"
        )

    message = str(caught.value)
    assert f"1 of 3 cases were saved before the rejection: {CASE_ID}" in message
    assert caught.value.fields == ["consent"]
    bulk = json.loads(mocked.calls[0].request.body)
    assert bulk["data"]["ids"] == [CASE_ID, OTHER_ID, THIRD_ID]


def test_bulk_success_returns_the_referrals(
    mocked: responses.RequestsMock, make_client: Make
) -> None:
    answer = {"data": [{"id": "r1", "record_id": CASE_ID}, {"id": "r2", "record_id": OTHER_ID}]}
    mocked.post(f"{BASE}/api/v2/cases/referrals", json=answer)

    made = make_client().create_referrals_bulk([CASE_ID, OTHER_ID], transitioned_to="doc1")

    assert [item["record_id"] for item in made] == [CASE_ID, OTHER_ID]


def test_refer_each_reports_every_case(mocked: responses.RequestsMock, make_client: Make) -> None:
    mocked.post(f"{BASE}/api/v2/cases/{CASE_ID}/referrals", json=referral("in_progress"))
    error = {
        "errors": [{"status": 422, "detail": "consent", "message": ["transition.errors.consent"]}]
    }
    mocked.post(f"{BASE}/api/v2/cases/{OTHER_ID}/referrals", status=422, json=error)

    outcomes = make_client().refer_each([CASE_ID, OTHER_ID], transitioned_to="doc1")

    assert outcomes[0].referral is not None and outcomes[0].error is None
    assert isinstance(outcomes[1].error, PrimeroValidationError)
    assert outcomes[1].error.fields == ["consent"]


def test_listing_referrals_and_transitions(
    mocked: responses.RequestsMock, make_client: Make
) -> None:
    mocked.get(f"{BASE}/api/v2/cases/{CASE_ID}/referrals", json={"data": [{"id": "r1"}]})
    mocked.get(f"{BASE}/api/v2/cases/{CASE_ID}/transitions", json={"data": [{"id": "t1"}]})
    client = make_client()

    assert client.list_referrals(CASE_ID) == [{"id": "r1"}]
    assert client.list_transitions(CASE_ID, ("Referral", "Transfer")) == [{"id": "t1"}]
    assert mocked.calls[1].request.url.endswith("types=Referral%2CTransfer")
