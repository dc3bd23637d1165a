"""Incidents as the rest of the adapter reads them: list, show, close, and the counts that
``status`` and the metrics report."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any

import sqlalchemy as sa

from adapter.clock import utcnow
from adapter.errors import AdapterError
from adapter.incidents._tables import incident_notifications, incidents
from adapter.state import StateStore


class IncidentError(AdapterError):
    """An incident command cannot be done as asked (unknown id, already closed, bad input)."""


class IncidentStatus(StrEnum):
    OPEN = "open"  # detected; the DPO has not been told yet
    NOTIFIED = "notified"  # every DPO address took the notice
    CLOSED = "closed"


@dataclass(frozen=True)
class Incident:
    """One row of ``incidents``."""

    id: int
    opened_at: datetime
    deadline_at: datetime
    kind: str
    department: str | None
    severity: str
    status: str
    first_event_id: int
    last_event_id: int
    first_event_at: datetime
    last_event_at: datetime
    event_count: int
    notice: str | None
    notified_at: datetime | None
    closed_at: datetime | None
    closed_by: str | None
    resolution: str | None

    def deadline_state(self, now: datetime | None = None) -> str:
        """``met`` / ``missed`` once the DPO was told; before that ``pending`` or ``overdue``."""
        if self.notified_at is not None:
            return "met" if self.notified_at <= self.deadline_at else "missed"
        return "overdue" if (now or utcnow()) > self.deadline_at else "pending"

    def as_dict(self, now: datetime | None = None) -> dict[str, Any]:
        """JSON-ready fields (times in ISO 8601), without the notice text."""
        out: dict[str, Any] = {}
        for name, value in self.__dict__.items():
            if name == "notice":
                continue
            out[name] = value.isoformat() if isinstance(value, datetime) else value
        out["deadline"] = self.deadline_state(now)
        return out


@dataclass(frozen=True)
class Notification:
    """One notice to one recipient."""

    id: int
    incident_id: int
    recipient: str
    channel: str
    status: str
    queued_at: datetime
    next_attempt_at: datetime
    sent_at: datetime | None
    attempts: int
    last_error: str | None


@dataclass(frozen=True)
class IncidentSummary:
    """Counts for ``status`` and the metrics: incidents not closed, and those of them whose
    notification deadline passed before the DPO was told."""

    open: int
    overdue: int

    def as_dict(self) -> dict[str, int]:
        return {"open": self.open, "overdue": self.overdue}


def list_incidents(store: StateStore, *, include_closed: bool = False) -> list[Incident]:
    """Incidents, newest first; closed ones only with ``include_closed``."""
    query = sa.select(incidents).order_by(incidents.c.id.desc())
    if not include_closed:
        query = query.where(incidents.c.status != str(IncidentStatus.CLOSED))
    with store.transaction() as conn:
        return [Incident(**row._mapping) for row in conn.execute(query)]


def get_incident(store: StateStore, incident_id: int) -> Incident:
    """One incident; IncidentError if there is none with that id."""
    with store.transaction() as conn:
        row = conn.execute(sa.select(incidents).where(incidents.c.id == incident_id)).first()
    if row is None:
        raise IncidentError(
            f"no incident {incident_id}: `cpims-adapter incidents list --all` shows every id."
        )
    return Incident(**row._mapping)


def notifications_of(store: StateStore, incident_id: int) -> list[Notification]:
    """The notifications queued for one incident, in the order they were queued."""
    query = (
        sa.select(incident_notifications)
        .where(incident_notifications.c.incident_id == incident_id)
        .order_by(incident_notifications.c.id)
    )
    with store.transaction() as conn:
        return [Notification(**row._mapping) for row in conn.execute(query)]


def close_incident(
    store: StateStore,
    incident_id: int,
    *,
    by: str,
    resolution: str,
    now: datetime | None = None,
) -> Incident:
    """Close an incident with who closed it and what was done. Queued notices are still sent:
    closing never keeps a suspected breach from the DPO."""
    by, resolution = by.strip(), resolution.strip()
    if not 2 <= len(by) <= 120:
        raise IncidentError("--by must name the officer closing the incident (2-120 characters).")
    if not 10 <= len(resolution) <= 1000:
        raise IncidentError(
            "--resolution must say what was done (10-1000 characters), e.g. 'police key "
            "rotated, crosswalk delivered, DPO informed'."
        )
    current = get_incident(store, incident_id)
    if current.status == IncidentStatus.CLOSED:
        raise IncidentError(f"incident {incident_id} is already closed.")
    with store.transaction() as conn:
        conn.execute(
            incidents.update()
            .where(incidents.c.id == incident_id, incidents.c.status != str(IncidentStatus.CLOSED))
            .values(
                status=str(IncidentStatus.CLOSED),
                closed_at=now or utcnow(),
                closed_by=by,
                resolution=resolution,
            )
        )
    return get_incident(store, incident_id)


def open_incident_summary(store: StateStore, *, now: datetime | None = None) -> IncidentSummary:
    """How many incidents are not closed, and how many of them are past their deadline
    without the DPO having been told."""
    now = now or utcnow()
    not_closed = incidents.c.status != str(IncidentStatus.CLOSED)
    overdue = sa.and_(not_closed, incidents.c.notified_at.is_(None), incidents.c.deadline_at < now)
    with store.transaction() as conn:
        row = conn.execute(
            sa.select(
                sa.func.sum(sa.case((not_closed, 1), else_=0)).label("open"),
                sa.func.sum(sa.case((overdue, 1), else_=0)).label("overdue"),
            ).select_from(incidents)
        ).one()
    return IncidentSummary(open=int(row.open or 0), overdue=int(row.overdue or 0))
