"""Security events: the raw material issue 7 turns into incidents (privacy.md §6.7 "breach
detection": failed SIV decryptions, wrong-department codes, retired keys).

``detail`` is composed by the adapter from fixed phrases, department names and key versions. It
never carries a presented code, a case id or anything taken from a request body.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from adapter.privacy._tables import security_events
from adapter.state import StateStore
from adapter.state.types import utcnow


class SecurityEventKind(StrEnum):
    """What went wrong. Stable strings: incidents and dashboards key on them."""

    WRONG_DEPARTMENT = "wrong_department_code"
    FORGED_CODE = "forged_code"
    MALFORMED_CODE = "malformed_code"
    RETIRED_KEY = "retired_key_version"
    UNKNOWN_KEY = "unknown_key_version"
    UNKNOWN_SHORT_CODE = "unknown_short_code"
    KEY_DESTROYED = "key_destroyed"


@dataclass(frozen=True)
class SecurityEvent:
    """One recorded event, as ``list_security_events`` returns it."""

    id: int
    at: datetime
    kind: str
    department: str | None
    detail: str


def record_security_event(
    conn: Connection,
    kind: SecurityEventKind | str,
    *,
    department: str | None,
    detail: str,
    now: datetime | None = None,
) -> None:
    """Append one event in the caller's transaction. ``detail`` must be adapter-written text."""
    conn.execute(
        security_events.insert().values(
            at=now or utcnow(), kind=str(kind), department=department, detail=detail[:500]
        )
    )


def list_security_events(
    store: StateStore, *, since: datetime | None = None, kind: str | None = None
) -> list[SecurityEvent]:
    """Events in the order they were recorded, optionally from ``since`` and of one ``kind``."""
    query = sa.select(security_events).order_by(security_events.c.id)
    if since is not None:
        query = query.where(security_events.c.at >= since)
    if kind is not None:
        query = query.where(security_events.c.kind == kind)
    with store.transaction() as conn:
        return [SecurityEvent(**row._mapping) for row in conn.execute(query)]
