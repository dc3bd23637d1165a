"""The outbox on both backends: one job's messages are never starved by another's."""

from __future__ import annotations

import pytest
from sqlalchemy.engine import Connection

from adapter.state import StateStore
from adapter.state.outbox import (
    DEAD,
    LANES,
    PENDING,
    RETRYING,
    Outbox,
    lane_key,
    lanes_of,
    link_of,
)


def test_due_keeps_to_one_job_even_when_other_jobs_fill_the_limit(store: StateStore) -> None:
    outbox = Outbox(store)
    with store.transaction() as conn:
        for n in range(5):  # the inbound API's write-backs, queued first
            outbox.enqueue(
                conn,
                idempotency_key=f"in-{n}",
                job="inbound",
                destination="primero",
                kind="writeback",
                link_key=f"police:ref-{n}",
                payload=b"x",
            )
        outbox.enqueue(
            conn,
            idempotency_key="health-1",
            job="health",
            destination="primero",
            kind="writeback",
            link_key="health:ref-1",
            payload=b"x",
        )
    due = outbox.due("primero", job="health", limit=3)
    assert [m.idempotency_key for m in due] == ["health-1"]
    assert len(outbox.due("primero", limit=3)) == 3


def enqueue(outbox: Outbox, conn: Connection, key: str, link_key: str, kind: str) -> None:
    outbox.enqueue(
        conn,
        idempotency_key=key,
        job="health",
        destination="primero",
        kind=kind,
        link_key=link_key,
        payload=b"x",
    )


def test_a_lane_is_ordered_on_its_own_and_belongs_to_its_link(store: StateStore) -> None:
    outbox = Outbox(store)
    link = "courts:fir:PS-12#2026:abc"  # a '#' of the department's own is not a lane
    with store.transaction() as conn:
        enqueue(outbox, conn, "row-1", link, "writeback.row")
        enqueue(outbox, conn, "row-2", link, "writeback.row")
        enqueue(outbox, conn, "status-1", lane_key(link, "status"), "writeback.status")
        enqueue(outbox, conn, "status-2", lane_key(link, "status"), "writeback.status")
    # One message per lane: the first row and the first status, not the second of either.
    assert [m.idempotency_key for m in outbox.due("primero")] == ["row-1", "status-1"]
    assert link_of(lane_key(link, "status")) == link and link_of(link) == link
    assert set(lanes_of([link])) == {link, *(lane_key(link, lane) for lane in LANES)}
    with pytest.raises(ValueError, match="unknown outbox lane"):
        lane_key(link, "elsewhere")


def test_a_held_failure_is_never_a_dead_letter_and_shows_as_retrying(store: StateStore) -> None:
    outbox = Outbox(store)
    with store.transaction() as conn:
        enqueue(outbox, conn, "row-1", "health:ref-1", "writeback.row")
        enqueue(outbox, conn, "row-2", "health:ref-2", "writeback.row")
    first, second = outbox.due("primero")
    for _ in range(5):
        status = outbox.mark_failed(
            first.id,
            error_class="PrimeroNotPermitted",
            error="no grant",
            retry_after=60,
            max_attempts=2,
            hold=True,
        )
        assert status == PENDING
    assert (
        outbox.mark_failed(
            second.id, error_class="PrimeroNoOp", error="x", retry_after=0, max_attempts=1
        )
        == DEAD
    )
    assert [m.id for m in outbox.waiting(status=RETRYING)] == [first.id]
    assert [m.id for m in outbox.waiting(status=DEAD)] == [second.id]
    assert outbox.waiting(status=PENDING) == []
    assert [m.id for m in outbox.waiting(destination="police")] == []
    assert [m.attempts for m in outbox.waiting()] == [5, 1]
