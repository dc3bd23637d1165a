"""Idempotency of inbound messages: the inbox of first answers, and the hash that tells a true
replay from a different message under a used id."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from adapter.clock import utcnow
from adapter.jobs.inbound._errors import MessageIdReused
from adapter.jobs.inbound._messages import Answer, Envelope
from adapter.state import StateStore, schema

# -- the inbox ------------------------------------------------------------------------------


class Inbox:
    """One row per accepted message; the first answer is returned to every replay."""

    def __init__(self, store: StateStore) -> None:
        self.store = store

    def replay(self, conn: Connection, envelope: Envelope) -> Answer | None:
        """The stored answer of this message, None if it is new; MessageIdReused if the id
        was used for another message."""
        table = schema.inbox
        row = conn.execute(
            sa.select(table.c.request_hash, table.c.response_status, table.c.response_body).where(
                table.c.department == envelope.department,
                table.c.message_id == envelope.message_id,
            )
        ).first()
        if row is None:
            return None
        if row.request_hash != envelope.request_hash:
            raise MessageIdReused(
                "message_id was already used by your department for a different message: "
                "send each new message with a new UUID (re-send a message only unchanged).",
                field="message_id",
            )
        return Answer(int(row.response_status), dict(row.response_body), replayed=True)

    def record(
        self, conn: Connection, envelope: Envelope, answer: Answer, link: str | None
    ) -> None:
        """Store the answer in the caller's transaction (the one that queued the work)."""
        conn.execute(
            schema.inbox.insert().values(
                department=envelope.department,
                message_id=envelope.message_id,
                route=envelope.route,
                request_hash=envelope.request_hash,
                status="accepted",
                response_status=answer.status_code,
                response_body=answer.body,
                link_key=link,
                received_at=utcnow(),
            )
        )

    def count(self, department: str | None = None) -> int:
        query = sa.select(sa.func.count()).select_from(schema.inbox)
        if department is not None:
            query = query.where(schema.inbox.c.department == department)
        with self.store.transaction() as conn:
            return int(conn.execute(query).scalar() or 0)


def request_hash(route: str, path: str, body: Mapping[str, Any]) -> str:
    """SHA-256 of a message's route, path and canonical JSON body: equal for a true replay."""
    text = json.dumps(
        {"route": route, "path": path, "body": body},
        sort_keys=True,
        separators=(",", ":"),
        ensure_ascii=False,
        default=str,
    )
    return hashlib.sha256(text.encode()).hexdigest()
