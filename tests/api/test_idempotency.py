"""Replays: the same message returns the first answer and changes nothing; another message under
a used id is refused. Run on SQLite and PostgreSQL (the inbox's uniqueness is the guard)."""

from __future__ import annotations

import threading
from typing import Any

from tests.api.conftest import World, fir_body, referral_body


def test_a_replayed_referral_gets_the_first_answer_and_changes_nothing(
    world_on_each_backend: World,
) -> None:
    world = world_on_each_backend
    body = referral_body()
    first = world.post("/v1/referrals", body)
    assert first.status_code == 202 and "Idempotent-Replayed" not in first.headers
    after_first = world.snapshot()

    again = world.post("/v1/referrals", body)
    assert again.status_code == 202
    assert again.json() == first.json()
    assert again.headers["Idempotent-Replayed"] == "true"
    assert world.snapshot() == after_first  # no case, flag, outbox row or inbox row added

    # Key order and whitespace do not make a different message.
    reordered = dict(reversed(list(body.items())))
    assert world.post("/v1/referrals", reordered).json() == first.json()


def test_a_different_message_under_a_used_id_is_409(world_on_each_backend: World) -> None:
    world = world_on_each_backend
    case_id = world.new_case(name="Synthetic Child", sex="male", age=11)
    body = fir_body(world.code(case_id))
    assert world.post("/v1/fir-links", body).status_code == 202
    before = world.snapshot()

    changed = {**body, "fir": {**body["fir"], "status": "challan_submitted"}}
    response = world.post("/v1/fir-links", changed)
    assert response.status_code == 409
    assert response.json()["error"]["code"] == "message_id_reused"
    assert response.json()["error"]["field"] == "message_id"
    # The same id on another route is another message too.
    response = world.post("/v1/referrals", referral_body(message_id=body["message_id"]))
    assert response.status_code == 409
    assert world.snapshot() == before
    (row,) = world.linked_rows(case_id)
    assert row["link_status"] == "under_investigation"


def test_message_ids_are_per_department(world: World) -> None:
    case_id = world.new_case(name="Synthetic Child", sex="male", age=11)
    police = fir_body(world.code(case_id, "police"))
    courts = {
        "message_id": police["message_id"],  # the courts happened to pick the same UUID
        "case_code": world.code(case_id, "courts"),
        "order": {
            "court": {"type": "juvenile", "name": "Juvenile Court Karachi", "district": "Karachi"},
            "case_number": "JC-77",
            "case_year": 2026,
            "order_number": "1",
            "order_date": "2026-02-01",
            "order_type": "diversion",
            "status": "active",
        },
    }
    assert world.post("/v1/fir-links", police, "police").status_code == 202
    assert world.post("/v1/court-orders", courts, "courts").status_code == 202


def test_concurrent_twins_make_one_message(world_on_each_backend: World) -> None:
    world = world_on_each_backend
    body = referral_body()
    answers: list[Any] = []

    def send() -> None:
        answers.append(world.post("/v1/referrals", body))

    threads = [threading.Thread(target=send) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert {a.status_code for a in answers} == {202}
    assert len({a.text for a in answers}) == 1
    assert sum(a.headers.get("Idempotent-Replayed") == "true" for a in answers) == 3
    assert world.app.state.service.inbox.count() == 1
