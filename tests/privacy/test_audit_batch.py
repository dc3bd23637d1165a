"""A batch of audit entries chained in memory (``append_entries``, what a sync page uses) is the
same log, byte for byte, as appending them one by one: same sequence numbers, MACs and head. It
verifies, and two writers appending batches at once still make one unbroken chain."""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from typing import Any

import sqlalchemy as sa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy.engine import Connection

from adapter.privacy import AuditLog, KeyRing
from adapter.privacy._tables import audit_head, audit_log
from adapter.privacy.audit import append_entries, append_entry
from adapter.state import StateStore

from .conftest import NOW

_TEXT = st.text(max_size=30)  # any Unicode: canonical JSON must not depend on the batching
_VALUE = st.one_of(
    st.none(), st.booleans(), st.integers(-(2**40), 2**40), _TEXT, st.lists(_TEXT, max_size=4)
)
_ENTRY = st.dictionaries(
    st.sampled_from(["event", "department", "purpose", "reason", "fields", "count", "allowed"]),
    _VALUE,
    min_size=1,
)


def _log_after(
    store: StateStore, write: Callable[[Connection], Any]
) -> tuple[list[tuple[Any, ...]], tuple[Any, ...], Any]:
    """The whole log and head after ``write``, in a transaction rolled back afterwards."""
    with store.engine.connect() as conn:
        transaction = conn.begin()
        try:
            answer = write(conn)
            rows = [tuple(r) for r in conn.execute(sa.select(audit_log).order_by(audit_log.c.seq))]
            head = tuple(conn.execute(sa.select(audit_head)).one())
        finally:
            transaction.rollback()
    return rows, head, answer


def _one_by_one(ring: KeyRing, entries: Sequence[dict[str, Any]]) -> Callable[[Connection], Any]:
    return lambda conn: [append_entry(conn, ring, entry, now=NOW) for entry in entries]


def _in_batches(
    ring: KeyRing, batches: Sequence[Sequence[dict[str, Any]]]
) -> Callable[[Connection], Any]:
    return lambda conn: [
        seq for batch in batches for seq in append_entries(conn, ring, batch, now=NOW)
    ]


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(batches=st.lists(st.lists(_ENTRY, max_size=8), min_size=1, max_size=5))
def test_batches_chain_byte_for_byte_like_single_appends(
    shared_ring: KeyRing, batches: list[list[dict[str, Any]]]
) -> None:
    entries = [entry for batch in batches for entry in batch]
    single = _log_after(shared_ring.store, _one_by_one(shared_ring, entries))
    batched = _log_after(shared_ring.store, _in_batches(shared_ring, batches))
    assert batched == single
    rows, head, seqs = batched
    # The ring's key events come first; the batch continues their chain.
    assert seqs == [row[0] for row in rows[len(rows) - len(entries) :]]
    assert head[1] == rows[-1][0] and head[2] == rows[-1][4]


def test_a_batch_verifies_and_matches_single_appends_on_both_backends(
    store: StateStore, ring: KeyRing
) -> None:
    batch = [
        {"event": "disclosure", "department": "health", "fields": ["sex", "age"]},
        {"event": "refusal", "department": "police", "reason": "no consent — ممنوع"},
        {"event": "deletion_requested", "department": "health", "count": 3},
    ]
    single = _log_after(store, _one_by_one(ring, batch))
    batched = _log_after(store, _in_batches(ring, [batch[:1], [], batch[1:]]))
    assert batched == single

    with store.transaction() as conn:
        seqs = append_entries(conn, ring, batch, now=NOW)
    log = AuditLog(store, ring)
    report = log.verify()
    assert report.ok, report.problems
    assert report.head_seq == seqs[-1] == seqs[0] + 2
    assert [r.entry["event"] for r in log.entries(after_seq=seqs[0] - 1)] == [
        "disclosure",
        "refusal",
        "deletion_requested",
    ]


def test_concurrent_batch_writers_take_turns_on_the_head(store: StateStore, ring: KeyRing) -> None:
    """Like the inbound API appending while a sync commits a page: the head is read and moved
    under the write lock, so the chain never forks."""
    start = AuditLog(store, ring).head().seq
    errors: list[BaseException] = []

    def writer(name: str) -> None:
        try:
            for n in range(15):
                with store.transaction() as conn:
                    append_entries(
                        conn, ring, [{"event": name, "count": n}, {"event": name, "count": -n}]
                    )
        except BaseException as exc:  # noqa: BLE001 - reported by the assertion below
            errors.append(exc)

    threads = [threading.Thread(target=writer, args=(f"writer-{i}",)) for i in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors
    report = AuditLog(store, ring).verify()
    assert report.ok, report.problems
    assert report.head_seq == start + 3 * 15 * 2


def test_an_empty_batch_writes_nothing(store: StateStore, ring: KeyRing) -> None:
    before = AuditLog(store, ring).head()
    with store.transaction() as conn:
        assert append_entries(conn, ring, []) == []
    assert AuditLog(store, ring).head() == before
