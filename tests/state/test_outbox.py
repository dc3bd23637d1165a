"""The outbox on both backends: one job's messages are never starved by another's."""

from __future__ import annotations

from adapter.state import StateStore
from adapter.state.outbox import Outbox


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
