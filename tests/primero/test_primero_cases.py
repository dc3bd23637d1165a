"""Case create/update semantics: client ids, 409 as "already there", silently dropped fields."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
import responses
from requests import PreparedRequest

from adapter.errors import PrimeroNoOp
from adapter.primero import PrimeroClient

Make = Callable[..., PrimeroClient]
BASE = "https://primero.test"
CASE_ID = "6f1c2b9e-3a4d-4e5f-8a9b-0c1d2e3f4a5b"
CASES_URL = f"{BASE}/api/v2/cases"
CASE_URL = f"{CASES_URL}/{CASE_ID}"
ROW_ID = "0b7a9a52-aaaa-4bbb-8ccc-dddddddddddd"


def body_of(call: Any) -> dict[str, Any]:
    return json.loads(call.request.body)  # type: ignore[no-any-return]


def test_create_with_a_client_id_reads_204_as_created(
    mocked: responses.RequestsMock, make_client: Make
) -> None:
    mocked.post(CASES_URL, status=204)

    result = make_client().create_case({"name": "Test", "age": 12}, id=CASE_ID)

    assert (result.id, result.created, result.data) == (CASE_ID, True, None)
    assert body_of(mocked.calls[0]) == {"data": {"name": "Test", "age": 12, "id": CASE_ID}}


def test_create_with_a_client_id_reads_409_as_already_there(
    mocked: responses.RequestsMock, make_client: Make
) -> None:
    mocked.post(CASES_URL, status=502)  # the first answer is lost...
    conflict = {
        "errors": [{"status": 409, "message": "Conflict: A record with this id already exists"}]
    }
    mocked.post(CASES_URL, status=409, json=conflict)  # ...but the case was created

    result = make_client().create_case({"name": "Test"}, id=CASE_ID)

    assert (result.id, result.created) == (CASE_ID, False)
    assert len(mocked.calls) == 2  # idempotent with a client id, so retried


def test_create_without_an_id_returns_primeros_id_and_is_not_retried(
    mocked: responses.RequestsMock, make_client: Make
) -> None:
    mocked.post(CASES_URL, json={"data": {"id": CASE_ID, "name": "Test"}})

    result = make_client().create_case({"name": "Test"})

    assert (result.id, result.created, result.data) == (
        CASE_ID,
        True,
        {"id": CASE_ID, "name": "Test"},
    )


def patch_answering(mocked: responses.RequestsMock, answer: dict[str, Any]) -> None:
    mocked.patch(CASE_URL, json={"data": {"id": CASE_ID, "enabled": True, **answer}})


def stored_case(
    mocked: responses.RequestsMock, stored: dict[str, Any], asked: list[list[str]]
) -> None:
    def callback(request: PreparedRequest) -> tuple[int, dict[str, str], str]:
        fields = parse_qs(urlsplit(request.url or "").query)["fields"][0].split(",")
        asked.append(fields)
        data = {key: value for key, value in stored.items() if key in fields}
        return 200, {}, json.dumps({"data": {"id": CASE_ID, **data}})

    mocked.add_callback(responses.GET, CASE_URL, callback=callback)


def test_no_read_back_when_every_sent_field_came_back_changed(
    mocked: responses.RequestsMock, make_client: Make
) -> None:
    patch_answering(
        mocked, {"age": 12, "sex": "female", "last_updated_at": "2026-03-01T08:00:00.000Z"}
    )

    result = make_client().update_case(CASE_ID, {"age": 12, "sex": "female"})

    assert result.dropped_fields == []
    assert len(mocked.calls) == 1


def test_a_field_primero_silently_dropped_is_named(
    mocked: responses.RequestsMock, make_client: Make
) -> None:
    patch_answering(mocked, {"age": 12})
    asked: list[list[str]] = []
    # `sex` was already "female" (unchanged), `national_id_no` is not writable: old value kept,
    # `cpims_id` is neither writable nor readable.
    stored_case(mocked, {"sex": "female", "national_id_no": "old"}, asked)

    result = make_client().update_case(
        CASE_ID,
        {"age": 12, "sex": "female", "national_id_no": "35202-1234567-1", "cpims_id": "X-1"},
    )

    assert result.dropped_fields == ["cpims_id", "national_id_no"]
    assert asked == [["sex", "national_id_no", "cpims_id"]]
    assert "35202" not in repr(result.dropped_fields)


def test_subform_rows_get_ids_and_are_compared_row_by_row(
    mocked: responses.RequestsMock, make_client: Make
) -> None:
    patch_answering(mocked, {})
    asked: list[list[str]] = []
    stored_rows = [
        {"unique_id": ROW_ID, "system": "health", "status": "sent", "url": "https://h/1"},
        {"unique_id": "other-row", "system": "police"},
    ]
    stored_case(mocked, {"external_links_section": stored_rows}, asked)
    sent = {"external_links_section": [{"unique_id": ROW_ID, "status": "sent"}]}

    result = make_client().update_case(CASE_ID, sent)

    assert result.dropped_fields == []


def test_a_new_subform_row_that_was_not_stored_is_reported(
    mocked: responses.RequestsMock, make_client: Make
) -> None:
    patch_answering(mocked, {})
    stored_case(mocked, {"external_links_section": [{"unique_id": ROW_ID, "system": "health"}]}, [])

    result = make_client().update_case(
        CASE_ID, {"external_links_section": [{"system": "courts", "status": "sent"}]}
    )

    assert result.dropped_fields == ["external_links_section"]
    row = body_of(mocked.calls[0])["data"]["external_links_section"][0]
    assert len(row["unique_id"]) == 36  # a client id: a retried PATCH cannot append it twice


def test_record_action_goes_next_to_data(mocked: responses.RequestsMock, make_client: Make) -> None:
    patch_answering(mocked, {"status": "closed"})

    make_client().update_case(CASE_ID, {"status": "closed"}, record_action="close")

    assert body_of(mocked.calls[0]) == {"data": {"status": "closed"}, "record_action": "close"}


def test_mark_synced_sends_the_three_fields_and_checks_the_permission(
    mocked: responses.RequestsMock, make_client: Make
) -> None:
    patch_answering(mocked, {})
    mocked.get(CASE_URL, json={"data": {"id": CASE_ID, "sync_status": "synced"}})

    make_client().mark_synced(CASE_ID, "https://adapter.test/inbox")

    assert body_of(mocked.calls[0]) == {
        "data": {
            "mark_synced": True,
            "mark_synced_url": "https://adapter.test/inbox",
            "mark_synced_status": "synced",
        }
    }


def test_mark_synced_without_sync_external_is_a_noop(
    mocked: responses.RequestsMock, make_client: Make
) -> None:
    patch_answering(mocked, {})
    mocked.get(CASE_URL, json={"data": {"id": CASE_ID}})

    with pytest.raises(PrimeroNoOp, match="case:sync_external"):
        make_client().mark_synced(CASE_ID, "https://adapter.test/inbox", status="failed")


def test_flags_and_sync(mocked: responses.RequestsMock, make_client: Make) -> None:
    mocked.post(f"{CASE_URL}/flags", json={"data": {"id": 5, "message": "m", "removed": False}})
    mocked.patch(f"{CASE_URL}/flags/5", json={"data": {"id": 5, "removed": True}})
    mocked.post(f"{CASE_URL}/sync", json={"data": {"record_id": CASE_ID, "sync_status": "sending"}})
    client = make_client()

    assert client.add_flag(CASE_ID, "check consent")["id"] == 5
    assert client.unflag(CASE_ID, 5, "resolved")["removed"] is True
    assert client.request_sync(CASE_ID)["sync_status"] == "sending"
    assert body_of(mocked.calls[1]) == {"data": {"unflag_message": "resolved"}}
