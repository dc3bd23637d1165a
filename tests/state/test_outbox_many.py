"""A page's outbox rows in one batch, on both backends: each key once, in order, and a
re-read page (after a crash) adds nothing."""

from __future__ import annotations

from adapter.state import StateStore
from adapter.state.outbox import NewMessage, Outbox


def _message(n: int, link: int | None = None) -> NewMessage:
    return NewMessage(
        idempotency_key=f"key-{n}",
        job="health",
        destination="health",
        kind="referral",
        link_key=f"health:ref-{n if link is None else link}",
        payload=f"payload-{n}".encode(),
    )


def test_a_page_is_queued_once_in_order_and_a_replay_adds_nothing(store: StateStore) -> None:
    outbox = Outbox(store)
    # More keys than one lookup takes (500), so the chunked lookup is exercised too.
    page = [_message(n) for n in range(1_200)]
    with store.transaction() as conn:
        added = outbox.enqueue_many(conn, page)
    assert added == {m.idempotency_key for m in page}
    due = outbox.due("health", job="health", limit=2_000)
    assert [m.idempotency_key for m in due] == [m.idempotency_key for m in page]
    assert due[0].payload == b"payload-0"

    # The same page re-read after a crash, plus one new message: only the new one is added.
    with store.transaction() as conn:
        again = outbox.enqueue_many(conn, [*page, _message(5_000)])
    assert again == {"key-5000"}
    assert outbox.depth() == {"pending": 1_201}


def test_a_key_repeated_in_one_batch_is_queued_once(store: StateStore) -> None:
    outbox = Outbox(store)
    with store.transaction() as conn:
        outbox.enqueue(
            conn,
            idempotency_key="key-0",
            job="health",
            destination="health",
            kind="referral",
            link_key="health:ref-0",
            payload=b"x",
        )
        added = outbox.enqueue_many(conn, [_message(0), _message(1), _message(1)])
    assert added == {"key-1"}
    assert outbox.depth() == {"pending": 2}


def test_an_update_queued_behind_its_referral_waits_for_it(store: StateStore) -> None:
    """Two messages about one referral in one batch: ``due`` offers the first only."""
    outbox = Outbox(store)
    with store.transaction() as conn:
        outbox.enqueue_many(conn, [_message(1, link=7), _message(2, link=7)])
    assert [m.idempotency_key for m in outbox.due("health", job="health")] == ["key-1"]
