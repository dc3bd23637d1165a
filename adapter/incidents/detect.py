"""Detection: new security events become incidents by the rules in ``rules.py``.

One transaction per scan: the cursor row is locked (``FOR UPDATE`` on PostgreSQL; SQLite's
``BEGIN IMMEDIATE`` serialises writers anyway), every event after it is classified, incidents
are opened or joined, their notifications queued, and the cursor moves on, all committed
together. A second scanner waits, then finds nothing new: no event opens two incidents.

Events are recorded inside their callers' transactions, and PostgreSQL makes ids visible in
commit order, not id order: a sync page still open holds id 100 while id 101 is already
visible. A scan that moved past 101 would never see 100. So the scan stops at a missing id and
waits for it (up to ``GAP_WAIT``; a rolled-back transaction leaves a gap that never fills),
then goes on. SQLite has one writer at a time, so its ids never arrive out of order.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from adapter.clock import utcnow
from adapter.incidents._tables import incident_cursor, incident_notifications, incidents
from adapter.incidents.notice import affected_departments, incident_events, known_departments
from adapter.incidents.records import Incident, IncidentStatus
from adapter.incidents.rules import rule_for
from adapter.privacy._tables import security_events
from adapter.state import StateStore

if TYPE_CHECKING:
    from adapter.config import Settings

_CURSOR_ID = 1
_BATCH = 5000
GAP_WAIT = timedelta(minutes=10)
CHANNEL_EMAIL = "email"


@dataclass
class ScanResult:
    """What one scan did: events read, incidents opened (ids), events joined to open ones."""

    events: int = 0
    opened: list[int] = field(default_factory=list)
    joined: int = 0
    queued: int = 0


def scan_security_events(
    store: StateStore, settings: Settings, *, now: datetime | None = None
) -> ScanResult:
    """Turn the security events recorded since the last scan into incidents.

    An event of a kind and group (rules.py) with an incident not yet closed joins it. Else it
    opens one when its rule's threshold is reached within the rule's window (counting the
    group's events since its last closed incident). The incident's clock starts at the event
    that opened it: ``deadline_at = opened_at + incidents.notify_within_hours``. Each new
    incident gets one queued notification per DPO address and per contact of each affected
    department (``incidents.department_contacts``).
    """
    result = ScanResult()
    now = now or utcnow()
    # A batch per transaction keeps each one short; a backlog takes several.
    while _scan_batch(store, settings, now, result):
        pass
    return result


def _scan_batch(store: StateStore, settings: Settings, now: datetime, result: ScanResult) -> bool:
    """Scan one batch; True if there may be more to scan now."""
    hours = settings.incidents.notify_within_hours
    with store.transaction() as conn:
        last_id, gap_since = _lock_cursor(conn, now)
        known = known_departments(conn, settings)
        events = conn.execute(
            sa.select(security_events)
            .where(security_events.c.id > last_id)
            .order_by(security_events.c.id)
            .limit(_BATCH)
        ).all()
        scanned, waiting = last_id, False
        for event in events:
            if event.id != scanned + 1:
                # Ids scanned+1 .. event.id-1 are not visible (yet): see the module docstring.
                gap_since = gap_since or now
                if now - gap_since < GAP_WAIT:
                    waiting = True
                    break
            gap_since = None
            scanned = int(event.id)
            result.events += 1
            rule = rule_for(event.kind)
            group = event.department if rule.group_by == "department" else None
            current = _open_incident(conn, event.kind, group)
            if current is not None:
                _join(conn, current, event)
                result.joined += 1
                # Only this event can name a department the incident did not have yet.
                named = affected_departments(current, [(event.detail, event.department)], known)
                result.queued += _queue(conn, current, named, settings, now)
                continue
            if not rule.reopen_on_same_detail and _known_condition(conn, event, group):
                continue
            since = _last_closed_event(conn, event.kind, group)
            window = sa.and_(
                _group_filter(event.kind, group, rule.group_by),
                security_events.c.id > since,
                security_events.c.id <= event.id,
                security_events.c.at > event.at - rule.window,
            )
            count, first_id, first_at = conn.execute(
                sa.select(
                    sa.func.count(),
                    sa.func.min(security_events.c.id),
                    sa.func.min(security_events.c.at),
                ).where(window)
            ).one()
            if count < rule.threshold:
                continue
            incident_id = _open(conn, event, rule.severity, group, count, first_id, first_at, hours)
            result.opened.append(incident_id)
            opened = _refresh(conn, incident_id)
            named = affected_departments(opened, incident_events(conn, opened), known)
            result.queued += _queue(conn, opened, named, settings, now)
        conn.execute(
            incident_cursor.update()
            .where(incident_cursor.c.id == _CURSOR_ID)
            .values(last_event_id=scanned, scanned_at=now, gap_since=gap_since)
        )
    return not waiting and len(events) == _BATCH


def _lock_cursor(conn: Connection, now: datetime) -> tuple[int, datetime | None]:
    query = sa.select(incident_cursor.c.last_event_id, incident_cursor.c.gap_since).where(
        incident_cursor.c.id == _CURSOR_ID
    )
    row = conn.execute(query.with_for_update()).first()
    if row is None:
        try:
            with conn.begin_nested():
                conn.execute(
                    incident_cursor.insert().values(id=_CURSOR_ID, last_event_id=0, scanned_at=now)
                )
        except sa.exc.IntegrityError:
            pass  # another scanner created it first; lock its row below
        row = conn.execute(query.with_for_update()).one()
    return int(row.last_event_id), row.gap_since


def _group_filter(kind: str, group: str | None, group_by: str) -> sa.ColumnElement[bool]:
    same_kind = security_events.c.kind == kind
    if group_by != "department":
        return same_kind
    if group is None:
        return sa.and_(same_kind, security_events.c.department.is_(None))
    return sa.and_(same_kind, security_events.c.department == group)


def _incident_group(kind: str, group: str | None) -> sa.ColumnElement[bool]:
    department = (
        incidents.c.department.is_(None) if group is None else incidents.c.department == group
    )
    return sa.and_(incidents.c.kind == kind, department)


def _open_incident(conn: Connection, kind: str, group: str | None) -> Incident | None:
    row = conn.execute(
        sa.select(incidents)
        .where(_incident_group(kind, group), incidents.c.status != str(IncidentStatus.CLOSED))
        .order_by(incidents.c.id.desc())
        .limit(1)
    ).first()
    return Incident(**row._mapping) if row is not None else None


def _last_closed_event(conn: Connection, kind: str, group: str | None) -> int:
    value = conn.execute(
        sa.select(sa.func.max(incidents.c.last_event_id)).where(_incident_group(kind, group))
    ).scalar()
    return int(value or 0)


def _known_condition(conn: Connection, event: Any, group: str | None) -> bool:
    """Whether the group's last closed incident already holds an event with this detail."""
    closed = conn.execute(
        sa.select(incidents.c.first_event_id, incidents.c.last_event_id)
        .where(_incident_group(event.kind, group), incidents.c.status == str(IncidentStatus.CLOSED))
        .order_by(incidents.c.id.desc())
        .limit(1)
    ).first()
    if closed is None:
        return False
    same = conn.execute(
        sa.select(security_events.c.id)
        .where(
            security_events.c.kind == event.kind,
            security_events.c.id.between(closed.first_event_id, closed.last_event_id),
            security_events.c.detail == event.detail,
        )
        .limit(1)
    ).first()
    return same is not None


def _join(conn: Connection, incident: Incident, event: Any) -> None:
    conn.execute(
        incidents.update()
        .where(incidents.c.id == incident.id)
        .values(
            last_event_id=int(event.id),
            last_event_at=event.at,
            event_count=incidents.c.event_count + 1,
        )
    )


def _open(
    conn: Connection,
    event: Any,
    severity: str,
    group: str | None,
    count: int,
    first_id: int,
    first_at: datetime,
    hours: int,
) -> int:
    inserted = conn.execute(
        incidents.insert().values(
            opened_at=event.at,
            deadline_at=event.at + timedelta(hours=hours),
            kind=event.kind,
            department=group,
            severity=str(severity),
            status=str(IncidentStatus.OPEN),
            first_event_id=int(first_id),
            last_event_id=int(event.id),
            first_event_at=first_at,
            last_event_at=event.at,
            event_count=int(count),
        )
    )
    key = inserted.inserted_primary_key
    assert key is not None
    return int(key[0])


def _refresh(conn: Connection, incident_id: int) -> Incident:
    row = conn.execute(sa.select(incidents).where(incidents.c.id == incident_id)).one()
    return Incident(**row._mapping)


def recipients(incident: Incident, departments: Iterable[str], settings: Settings) -> list[str]:
    """The DPO addresses, then the contacts of every affected department (no duplicates)."""
    contacts = settings.incidents.department_contacts
    ordered = list(settings.incidents.dpo_emails)
    for department in departments:
        ordered += contacts.get(department, [])
    return list(dict.fromkeys(address.strip() for address in ordered if address.strip()))


def _queue(
    conn: Connection,
    incident: Incident,
    departments: list[str],
    settings: Settings,
    now: datetime,
) -> int:
    """Queue the notifications this incident is missing (a joined event may name a new
    department); returns how many were added."""
    existing = set(
        conn.execute(
            sa.select(incident_notifications.c.recipient).where(
                incident_notifications.c.incident_id == incident.id
            )
        ).scalars()
    )
    added = 0
    for recipient in recipients(incident, departments, settings):
        if recipient in existing:
            continue
        conn.execute(
            incident_notifications.insert().values(
                incident_id=incident.id,
                recipient=recipient,
                channel=CHANNEL_EMAIL,
                status="queued",
                queued_at=now,
                next_attempt_at=now,
                attempts=0,
            )
        )
        added += 1
    return added
