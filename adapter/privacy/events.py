"""Security events: the raw material issue 7 turns into incidents (privacy.md §6.7 "breach
detection": failed SIV decryptions, wrong-department codes, retired keys).

``detail`` is composed by the adapter from fixed phrases, department names and key versions. It
never carries a presented code, a case id or anything taken from a request body.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from adapter.clock import utcnow
from adapter.privacy._tables import security_events
from adapter.state import StateStore
from adapter.state.store import create_state_engine

log = logging.getLogger("adapter.privacy.events")
_pending: list[threading.Thread] = []
_pending_lock = threading.Lock()


class SecurityEventKind(StrEnum):
    """What went wrong. Stable strings: incidents and dashboards key on them."""

    WRONG_DEPARTMENT = "wrong_department_code"
    FORGED_CODE = "forged_code"
    MALFORMED_CODE = "malformed_code"
    RETIRED_KEY = "retired_key_version"
    UNKNOWN_KEY = "unknown_key_version"
    UNKNOWN_SHORT_CODE = "unknown_short_code"
    KEY_DESTROYED = "key_destroyed"
    # Breach detection (privacy.md §6.7): each opens an incident at once (adapter/incidents).
    AUDIT_CHAIN_BROKEN = "audit_chain_broken"
    KEY_ACCESS_ANOMALY = "key_access_anomaly"
    ALLOW_LIST_VIOLATION = "allow_list_violation"
    KEY_COMPROMISE_REPORTED = "key_compromise_reported"


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


def record_security_event_detached(
    store: StateStore,
    kind: SecurityEventKind | str,
    *,
    department: str | None,
    detail: str,
) -> threading.Thread:
    """Append one event in its own transaction, from a thread, for code that may be running
    inside a caller's transaction (the key ring): on SQLite a second writer in the same
    thread would wait for a lock its own caller holds. The thread is not a daemon, so the
    event is written before the process exits even when the caller's error ends it."""

    def write() -> None:
        # An engine of its own, disposed at once: the caller may close the store meanwhile,
        # and a connection left in its pool would outlive it.
        engine = create_state_engine(store.url)
        try:
            with engine.begin() as conn:
                record_security_event(conn, kind, department=department, detail=detail)
        except Exception:  # noqa: BLE001 - a lost event must not hide the caller's error
            log.warning("could not record security event %s", str(kind))
        finally:
            engine.dispose()

    thread = threading.Thread(target=write, name="security-event", daemon=False)
    thread.start()
    with _pending_lock:
        _pending[:] = [t for t in _pending if t.is_alive()] + [thread]
    return thread


def wait_for_detached_events(timeout: float = 60.0) -> None:
    """Wait until every event recorded with :func:`record_security_event_detached` is written
    (the incident scan calls this first, and so do tests)."""
    with _pending_lock:
        threads = list(_pending)
    for thread in threads:
        thread.join(timeout)


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
