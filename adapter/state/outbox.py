"""The transactional outbox: what must be delivered, written in the same transaction as the
cursor that covers it (architecture.md §5.2 step 4), then drained with retries.

A row is one message to one destination (a department, or ``primero`` for write-backs). Its
``idempotency_key`` is derived from the content, so re-reading a page after a crash enqueues
nothing twice. Payloads are encrypted at rest by the caller (the key ring's data key); this
module stores bytes. After ``max_attempts`` failures a row becomes a dead letter: kept,
encrypted, with a redacted error, until an operator retries or drops it.

A row's ``link_key`` is its lane: messages in one lane are delivered in order, one at a time
(``due``). Most lanes are a link (one referral's messages to one destination). Parts of a
write-back that must not wait for each other travel in lanes of their own,
``<link_key>#<lane>`` (:func:`lane_key`); :func:`link_of` gives the link back.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from adapter.clock import utcnow
from adapter.state import schema
from adapter.state.store import StateStore

PENDING, SENT, DEAD, DROPPED = "pending", "sent", "dead", "dropped"
# Keys per ``IN (...)`` lookup: well under SQLite's default limit of bound parameters (32,766
# since 3.32; 999 before it), and a page (1,000 cases) takes a few round trips at most.
_KEYS_PER_LOOKUP = 500
# Built once (SQLAlchemy memoises a statement's cache key on the object): the status poll
# enqueues a write-back per Task it reads. An expanding parameter takes any number of keys.
_KNOWN_KEYS = sa.select(schema.outbox.c.idempotency_key).where(
    schema.outbox.c.idempotency_key.in_(sa.bindparam("keys", expanding=True))
)
_INSERT = schema.outbox.insert()
# The lanes a link's messages may take besides its own (adapter/jobs/writeback.py parts).
LANES = ("status", "fields", "synced")
_LANE_MARK = "#"
# A pending message that failed at least once (``status`` and ``outbox list`` call a pending
# message never tried "pending").
RETRYING = "retrying"


def lane_key(link_key: str, lane: str) -> str:
    """The outbox lane ``lane`` of the link ``link_key``."""
    if lane not in LANES:
        raise ValueError(f"unknown outbox lane {lane!r}; one of {', '.join(LANES)}")
    return f"{link_key}{_LANE_MARK}{lane}"


def link_of(key: str) -> str:
    """The link an outbox lane belongs to (a link's own lane is the link itself)."""
    base, mark, lane = key.rpartition(_LANE_MARK)
    return base if mark and lane in LANES else key


def lanes_of(link_keys: Sequence[str]) -> list[str]:
    """Every outbox lane of these links, their own included (for retention's purge)."""
    return [*link_keys, *(lane_key(k, lane) for k in link_keys for lane in LANES)]


@dataclass(frozen=True)
class NewMessage:
    """One message to enqueue with :meth:`Outbox.enqueue_many` (the columns of ``enqueue``)."""

    idempotency_key: str
    job: str
    destination: str
    kind: str
    link_key: str
    payload: bytes


@dataclass(frozen=True)
class OutboxMessage:
    id: int
    idempotency_key: str
    job: str
    destination: str
    kind: str
    link_key: str
    payload: bytes
    status: str
    attempts: int
    next_attempt_at: datetime
    created_at: datetime
    last_error_class: str | None
    last_error: str | None
    result: dict[str, Any] | None


def backoff_seconds(attempts: int, base: float = 5.0, cap: float = 3600.0) -> float:
    """Full-jitter exponential backoff: a random wait in [0, min(cap, base * 2**attempts)]."""
    return random.uniform(0, min(cap, base * (2 ** max(attempts - 1, 0))))


class Outbox:
    """Enqueue in the caller's transaction; claim, complete and fail in short ones."""

    def __init__(self, store: StateStore) -> None:
        self.store = store

    def enqueue(
        self,
        conn: Connection,
        *,
        idempotency_key: str,
        job: str,
        destination: str,
        kind: str,
        link_key: str,
        payload: bytes,
    ) -> bool:
        """Add a message unless one with this key exists. True if added."""
        message = NewMessage(idempotency_key, job, destination, kind, link_key, payload)
        return bool(self.enqueue_many(conn, [message]))

    def enqueue_many(self, conn: Connection, messages: Sequence[NewMessage]) -> set[str]:
        """:meth:`enqueue` for a page of messages: one lookup per 500 keys and one
        ``executemany`` insert, instead of two statements per message. Returns the idempotency
        keys added (a key already queued, or repeated in ``messages``, is added once)."""
        keys = list(dict.fromkeys(m.idempotency_key for m in messages))
        existing: set[str] = set()
        for start in range(0, len(keys), _KEYS_PER_LOOKUP):
            chunk = keys[start : start + _KEYS_PER_LOOKUP]
            existing.update(conn.execute(_KNOWN_KEYS, {"keys": chunk}).scalars())
        now = utcnow()
        rows: dict[str, dict[str, Any]] = {}
        for m in messages:
            if m.idempotency_key in existing or m.idempotency_key in rows:
                continue
            rows[m.idempotency_key] = {
                "idempotency_key": m.idempotency_key,
                "job": m.job,
                "destination": m.destination,
                "kind": m.kind,
                "link_key": m.link_key,
                "payload": m.payload,
                "status": PENDING,
                "attempts": 0,
                "next_attempt_at": now,
                "created_at": now,
                "updated_at": now,
            }
        if rows:
            # Insertion order is id order, and ``due`` sends oldest first per link_key.
            conn.execute(_INSERT, list(rows.values()))
        return set(rows)

    def due(
        self,
        destination: str,
        *,
        job: str | None = None,
        limit: int = 100,
        now: datetime | None = None,
    ) -> list[OutboxMessage]:
        """Pending messages ready to send, oldest first, at most one per ``link_key``: a later
        message about the same referral (an update) never overtakes an earlier one. ``job``
        keeps to one job's rows — in SQL, so other jobs' rows cannot fill the ``limit``."""
        table = schema.outbox
        now = now or utcnow()
        conditions = [table.c.destination == destination, table.c.status.in_([PENDING, DEAD])]
        if job is not None:
            conditions.append(table.c.job == job)
        earliest = sa.select(sa.func.min(table.c.id)).where(*conditions).group_by(table.c.link_key)
        query = (
            sa.select(table)
            .where(
                table.c.id.in_(earliest),
                table.c.status == PENDING,
                table.c.next_attempt_at <= now,
            )
            .order_by(table.c.id)
            .limit(limit)
        )
        with self.store.transaction() as conn:
            return [_message(row) for row in conn.execute(query)]

    def mark_sent(
        self,
        message_id: int,
        result: dict[str, Any] | None = None,
        conn: Connection | None = None,
    ) -> None:
        """Record a delivery; pass ``conn`` to commit it with what the delivery taught us."""
        if conn is None:
            with self.store.transaction() as own:
                self.mark_sent_many(own, [(message_id, result)])
            return
        self.mark_sent_many(conn, [(message_id, result)])

    def mark_sent_many(
        self, conn: Connection, sent: Sequence[tuple[int, dict[str, Any] | None]]
    ) -> None:
        """:meth:`mark_sent` for a batch of ``(message id, result)`` in the caller's
        transaction: one ``executemany`` instead of a statement and a commit per message."""
        if not sent:
            return
        table = schema.outbox
        now = utcnow()
        conn.execute(
            table.update()
            .where(table.c.id == sa.bindparam("_id"))
            .values(status=SENT, sent_at=now, updated_at=now, payload=b""),
            [{"_id": message_id, "result": result} for message_id, result in sent],
        )

    def mark_failed(
        self,
        message_id: int,
        *,
        error_class: str,
        error: str,
        retry_after: float | None,
        max_attempts: int,
        fatal: bool = False,
        hold: bool = False,
    ) -> str:
        """Record a failed attempt; returns the new status (``pending`` or ``dead``).

        ``error`` must already be free of personal data (our errors are built that way).
        ``hold``: the failure waits for a change outside the adapter (a permission an
        administrator grants), so the message stays pending however many attempts it took.
        """
        table = schema.outbox
        now = utcnow()
        with self.store.transaction() as conn:
            attempts = int(
                conn.execute(sa.select(table.c.attempts).where(table.c.id == message_id)).scalar()
                or 0
            )
            attempts += 1
            dead = not hold and (fatal or attempts >= max_attempts)
            delay = retry_after if retry_after is not None else backoff_seconds(attempts)
            conn.execute(
                table.update()
                .where(table.c.id == message_id)
                .values(
                    attempts=attempts,
                    status=DEAD if dead else PENDING,
                    next_attempt_at=now + timedelta(seconds=delay),
                    updated_at=now,
                    last_error_class=error_class,
                    last_error=error[:500],
                )
            )
        return DEAD if dead else PENDING

    # -- operators ------------------------------------------------------------------------

    def dead_letters(self, limit: int = 100) -> list[OutboxMessage]:
        query = (
            sa.select(schema.outbox)
            .where(schema.outbox.c.status == DEAD)
            .order_by(schema.outbox.c.id)
            .limit(limit)
        )
        with self.store.transaction() as conn:
            return [_message(row) for row in conn.execute(query)]

    def waiting(
        self,
        *,
        destination: str | None = None,
        status: str | None = None,
        limit: int = 1000,
    ) -> list[OutboxMessage]:
        """Messages not delivered yet, oldest first: ``status`` is ``pending`` (never tried),
        ``retrying`` (failed at least once, tried again later) or ``dead``; None for all."""
        table = schema.outbox
        conditions = []
        if destination is not None:
            conditions.append(table.c.destination == destination)
        if status == DEAD:
            conditions.append(table.c.status == DEAD)
        elif status == RETRYING:
            conditions += [table.c.status == PENDING, table.c.attempts > 0]
        elif status == PENDING:
            conditions += [table.c.status == PENDING, table.c.attempts == 0]
        elif status is None:
            conditions.append(table.c.status.in_([PENDING, DEAD]))
        else:
            raise ValueError(f"status must be {PENDING}, {RETRYING} or {DEAD}, not {status!r}")
        query = sa.select(table).where(*conditions).order_by(table.c.id).limit(limit)
        with self.store.transaction() as conn:
            return [_message(row) for row in conn.execute(query)]

    def get(self, message_id: int) -> OutboxMessage | None:
        with self.store.transaction() as conn:
            row = conn.execute(
                sa.select(schema.outbox).where(schema.outbox.c.id == message_id)
            ).first()
        return _message(row) if row else None

    def retry(self, message_ids: Sequence[int]) -> int:
        """Put dead letters back in the queue with a fresh attempt budget."""
        return self._set_dead(message_ids, status=PENDING, attempts=0, next_attempt_at=utcnow())

    def drop(self, message_ids: Sequence[int]) -> int:
        """Give up on dead letters for good; the payload is erased."""
        return self._set_dead(message_ids, status=DROPPED, payload=b"")

    def _set_dead(self, message_ids: Sequence[int], **values: Any) -> int:
        table = schema.outbox
        with self.store.transaction() as conn:
            result = conn.execute(
                table.update()
                .where(table.c.id.in_(list(message_ids)), table.c.status == DEAD)
                .values(updated_at=utcnow(), **values)
            )
            return int(result.rowcount)

    def depth(self) -> dict[str, int]:
        """Messages by status, for ``status`` and metrics."""
        table = schema.outbox
        with self.store.transaction() as conn:
            rows = conn.execute(
                sa.select(table.c.status, sa.func.count()).group_by(table.c.status)
            ).all()
        return {str(status): int(count) for status, count in rows}


def _message(row: Any) -> OutboxMessage:
    data = dict(row._mapping)
    return OutboxMessage(
        id=data["id"],
        idempotency_key=data["idempotency_key"],
        job=data["job"],
        destination=data["destination"],
        kind=data["kind"],
        link_key=data["link_key"],
        payload=bytes(data["payload"] or b""),
        status=data["status"],
        attempts=data["attempts"],
        next_attempt_at=data["next_attempt_at"],
        created_at=data["created_at"],
        last_error_class=data["last_error_class"],
        last_error=data["last_error"],
        result=data["result"],
    )
