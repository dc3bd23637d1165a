"""Deletion requests: what a department is asked to erase after consent is withdrawn.

privacy.md §6.3: withdrawal stops every later disclosure and sends the receiver a deletion
request; it cannot recall what was already disclosed. The request names the case only by the
department's own case code. The sync engine delivers pending rows and marks them delivered.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from adapter.clock import utcnow
from adapter.privacy._tables import deletion_requests

CONSENT_WITHDRAWN = "consent_withdrawn"


@dataclass(frozen=True)
class DeletionRequest:
    """A queued request: erase the case known to ``department`` as ``case_code``."""

    id: int
    department: str
    case_code: str
    reason: str
    status: str
    requested_at: datetime
    delivered_at: datetime | None
    attempts: int


def queue_deletion_request(
    conn: Connection,
    department: str,
    case_code: str,
    *,
    reason: str = CONSENT_WITHDRAWN,
    now: datetime | None = None,
) -> bool:
    """Queue a request in the caller's transaction. Idempotent: False when one for this code
    is already pending, so every sync after a withdrawal does not queue another."""
    pending = conn.execute(
        sa.select(deletion_requests.c.id).where(
            deletion_requests.c.department == department,
            deletion_requests.c.case_code == case_code,
            deletion_requests.c.status == "pending",
        )
    ).first()
    if pending is not None:
        return False
    conn.execute(
        deletion_requests.insert().values(
            department=department,
            case_code=case_code,
            reason=reason,
            status="pending",
            requested_at=now or utcnow(),
            attempts=0,
        )
    )
    return True


def pending_deletion_requests(
    conn: Connection, department: str | None = None
) -> list[DeletionRequest]:
    """Requests still to deliver, oldest first."""
    query = (
        sa.select(deletion_requests)
        .where(deletion_requests.c.status == "pending")
        .order_by(deletion_requests.c.id)
    )
    if department is not None:
        query = query.where(deletion_requests.c.department == department)
    return [DeletionRequest(**row._mapping) for row in conn.execute(query)]


def mark_deletion_delivered(
    conn: Connection, request_id: int, *, now: datetime | None = None
) -> None:
    """Record that the department received the request."""
    conn.execute(
        deletion_requests.update()
        .where(deletion_requests.c.id == request_id)
        .values(status="delivered", delivered_at=now or utcnow())
    )
