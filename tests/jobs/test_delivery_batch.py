"""A batch of deliveries recorded in one transaction, on both backends: what was sent is marked
sent with its link, a failure is retried alone, and nothing is ever marked sent that was not
sent — not after a failed call, a Primero credential failure, nor a crash before the commit."""

from __future__ import annotations

import json
import secrets
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Connection

from adapter.errors import PrimeroAuthError, Retryable
from adapter.jobs.delivery import Handled, attempt, attempt_batch
from adapter.privacy import KeyRing
from adapter.state import StateStore, schema
from adapter.state.links import Links
from adapter.state.outbox import NewMessage, Outbox, OutboxMessage

DEPARTMENT = "health"


class _Receiver:
    """A destination that accepts every document except the ones it is told to refuse, and
    remembers what it accepted (an idempotent receiver keys by ``idempotency_key``)."""

    def __init__(self, refuse: dict[str, Exception] | None = None) -> None:
        self.refuse = refuse or {}
        self.accepted: list[str] = []
        self._lock = threading.Lock()

    def __call__(self, message: OutboxMessage, document: dict[str, Any]) -> Handled:
        failure = self.refuse.get(document["ref"])
        if failure is not None:
            raise failure
        with self._lock:
            self.accepted.append(document["ref"])
        external = f"ext-{document['ref']}"
        return {"external_ref": external}, {"external_ref": external}


@pytest.fixture
def keyring(store: StateStore) -> KeyRing:
    return KeyRing.init(store, secrets.token_bytes(32), [DEPARTMENT])


@pytest.fixture
def pool() -> Iterator[ThreadPoolExecutor]:
    with ThreadPoolExecutor(max_workers=4) as executor:
        yield executor


def _queue(store: StateStore, keyring: KeyRing, count: int) -> list[OutboxMessage]:
    """``count`` referrals, each with its link (made by the page that planned it) and one
    pending message; returns the batch ``Outbox.due`` hands out."""
    outbox, links = Outbox(store), Links(store)
    messages = []
    for n in range(count):
        key = f"key-{n}"
        body = json.dumps({"ref": f"ref-{n}"}).encode()
        messages.append(
            NewMessage(
                idempotency_key=key,
                job=DEPARTMENT,
                destination=DEPARTMENT,
                kind="referral",
                link_key=f"{DEPARTMENT}:ref-{n}",
                payload=keyring.encrypt_payload(body, context=key.encode()),
            )
        )
    with store.transaction() as conn:
        links.upsert_many(
            conn,
            [
                (
                    m.link_key,
                    {
                        "job": DEPARTMENT,
                        "department": DEPARTMENT,
                        "case_id": f"case-{n}",
                        "case_code": f"code-{n}",
                        "stage": "identified",
                    },
                )
                for n, m in enumerate(messages)
            ],
        )
        outbox.enqueue_many(conn, messages)
    return outbox.due(DEPARTMENT, job=DEPARTMENT, limit=1_000)


def _statuses(store: StateStore) -> dict[str, tuple[str, int]]:
    """Every message's status and failed attempts, by referral."""
    table = schema.outbox
    with store.transaction() as conn:
        rows = conn.execute(sa.select(table.c.link_key, table.c.status, table.c.attempts))
        return {row.link_key.split(":", 1)[1]: (row.status, row.attempts) for row in rows}


def _external_refs(store: StateStore, count: int) -> dict[str, str | None]:
    links = Links(store).many([f"{DEPARTMENT}:ref-{n}" for n in range(count)])
    return {link.referral_key: link.external_ref for link in links.values()}


def test_one_failure_in_a_batch_is_retried_and_the_rest_are_marked_sent(
    store: StateStore, keyring: KeyRing, pool: ThreadPoolExecutor
) -> None:
    batch = _queue(store, keyring, 8)
    receiver = _Receiver(refuse={"ref-3": Retryable("503 from the department")})

    outcomes = attempt_batch(
        batch,
        receiver,
        pool=pool,
        outbox=Outbox(store),
        links=Links(store),
        keyring=keyring,
        max_attempts=5,
    )

    assert outcomes == ["sent"] * 3 + ["retrying"] + ["sent"] * 4
    statuses = _statuses(store)
    assert statuses.pop("ref-3") == ("pending", 1)
    assert set(statuses.values()) == {("sent", 0)}
    assert sorted(receiver.accepted) == sorted(statuses)
    refs = _external_refs(store, 8)
    assert refs.pop("ref-3") is None  # the link learns nothing from a failed delivery
    assert refs == {ref: f"ext-{ref}" for ref in statuses}
    sent = Outbox(store).get(batch[0].id)
    assert sent is not None and sent.payload == b"" and sent.result == {"external_ref": "ext-ref-0"}


def test_a_crash_before_the_batch_commits_marks_nothing_and_the_batch_is_sent_again(
    store: StateStore, keyring: KeyRing, pool: ThreadPoolExecutor
) -> None:
    batch = _queue(store, keyring, 5)

    class _CrashingOutbox(Outbox):
        def mark_sent_many(
            self, conn: Connection, sent: Any
        ) -> None:  # the process dies mid-commit
            super().mark_sent_many(conn, sent)
            raise SystemExit("killed")

    with pytest.raises(SystemExit):
        attempt_batch(
            batch,
            _Receiver(),
            pool=pool,
            outbox=_CrashingOutbox(store),
            links=Links(store),
            keyring=keyring,
            max_attempts=5,
        )

    # Delivered but not recorded: every message is due again (at-least-once), none lost.
    again = Outbox(store).due(DEPARTMENT, job=DEPARTMENT, limit=1_000)
    assert [m.id for m in again] == [m.id for m in batch]
    assert set(_external_refs(store, 5).values()) == {None}
    receiver = _Receiver()
    outcomes = attempt_batch(
        again,
        receiver,
        pool=pool,
        outbox=Outbox(store),
        links=Links(store),
        keyring=keyring,
        max_attempts=5,
    )
    assert outcomes == ["sent"] * 5
    assert set(_statuses(store).values()) == {("sent", 0)}


def test_a_primero_credential_failure_stops_the_batch_but_keeps_what_was_sent(
    store: StateStore, keyring: KeyRing
) -> None:
    batch = _queue(store, keyring, 6)
    receiver = _Receiver(refuse={"ref-2": PrimeroAuthError("Primero refused the credentials")})

    # One worker: the messages before the refused one were sent, the ones after never start.
    with ThreadPoolExecutor(max_workers=1) as single, pytest.raises(PrimeroAuthError):
        attempt_batch(
            batch,
            receiver,
            pool=single,
            outbox=Outbox(store),
            links=Links(store),
            keyring=keyring,
            max_attempts=5,
        )

    statuses = _statuses(store)
    sent = {ref for ref, (status, _) in statuses.items() if status == "sent"}
    assert sent == set(receiver.accepted)
    assert {"ref-0", "ref-1"} <= sent and "ref-2" not in sent
    # The refused message is not counted as a failed attempt: the credentials were at fault.
    assert statuses["ref-2"] == ("pending", 0)


def test_a_single_attempt_still_records_at_once_for_the_inbound_api(
    store: StateStore, keyring: KeyRing
) -> None:
    (message,) = _queue(store, keyring, 1)
    outcome = attempt(
        message,
        _Receiver(),
        outbox=Outbox(store),
        links=Links(store),
        keyring=keyring,
        max_attempts=5,
    )
    assert outcome == "sent"
    assert _statuses(store) == {"ref-0": ("sent", 0)}
    assert _external_refs(store, 1) == {"ref-0": "ext-ref-0"}
