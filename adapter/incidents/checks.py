"""One pass of breach handling, as the daemon runs it every minute and ``incidents scan`` runs
it now: detect, notify, count. Each pass is a row in ``runs`` (job ``incidents``)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa

from adapter.clock import utcnow
from adapter.errors import LeaseHeld
from adapter.incidents.detect import ScanResult, scan_security_events
from adapter.incidents.notify import DeliveryResult, SendMail, deliver_due_notifications
from adapter.incidents.records import IncidentError, IncidentSummary, open_incident_summary
from adapter.privacy._tables import keys as keys_table
from adapter.privacy.events import (
    SecurityEventKind,
    record_security_event,
    wait_for_detached_events,
)
from adapter.state import StateStore
from adapter.state.store import process_owner

if TYPE_CHECKING:
    from adapter.config import Settings

JOB = "incidents"
_LEASE_SECONDS = 300


@dataclass
class IncidentReport:
    """What one pass did, and what is still open."""

    run_id: int
    scan: ScanResult
    delivery: DeliveryResult
    summary: IncidentSummary
    warnings: list[str] = field(default_factory=list)

    def stats(self) -> dict[str, Any]:
        """The run's stats as stored in ``runs`` (counts and incident numbers only)."""
        return {
            "events": self.scan.events,
            "opened": list(self.scan.opened),
            "joined": self.scan.joined,
            "queued": self.scan.queued,
            "sent": self.delivery.sent,
            "failed": self.delivery.failed,
            "notified": list(self.delivery.notified),
            **self.summary.as_dict(),
        }


def run_incident_checks(
    settings: Settings,
    store: StateStore,
    *,
    now: datetime | None = None,
    owner: str | None = None,
    send: SendMail | None = None,
) -> IncidentReport:
    """Scan new security events into incidents, send the notices that are due, and count what
    is open and overdue. Raises LeaseHeld if another process is doing the same right now."""
    owner = owner or process_owner()
    lease = store.acquire_lease(f"job:{JOB}", owner, _LEASE_SECONDS)
    if lease is None:
        raise LeaseHeld("incident checks are already running in another process.")
    run_id = store.start_run(JOB, owner)
    try:
        # Key-ring anomalies are written from threads (events.py): let them land first.
        wait_for_detached_events()
        scan = scan_security_events(store, settings, now=now)
        delivery = deliver_due_notifications(store, settings, now=now, send=send)
        summary = open_incident_summary(store, now=now)
        report = IncidentReport(run_id, scan, delivery, summary)
        if summary.open and not settings.incidents.dpo_emails:
            report.warnings.append(
                "incidents.dpo_emails is empty: nobody is notified of open incidents; list the "
                "data-protection officer's address."
            )
        if delivery.failed:
            report.warnings.append(
                f"{delivery.failed} notice(s) could not be sent; they are retried "
                "(`cpims-adapter incidents show ID` shows the error)."
            )
    except Exception as exc:
        store.finish_run(run_id, "failed", {}, type(exc).__name__, None)
        store.release_lease(lease)
        raise
    store.finish_run(run_id, "ok", report.stats())
    store.release_lease(lease)
    return report


def report_key_compromise(
    store: StateStore,
    department: str,
    *,
    key_version: int | None = None,
    now: datetime | None = None,
) -> int:
    """Record that ``department``'s case-code key (``key_version``, default the active one)
    may be exposed (privacy.md §6.2 "key compromise is a breach"); the next scan opens a
    critical incident whose notice lists every code issued under that version. Returns the
    version reported."""
    with store.transaction() as conn:
        rows = conn.execute(
            sa.select(keys_table.c.version, keys_table.c.state).where(
                keys_table.c.role == "token", keys_table.c.scope == department
            )
        ).all()
        versions = {int(row.version): str(row.state) for row in rows}
        if not versions:
            raise IncidentError(
                f"department '{department[:40]}' has no case-code key: check the name against "
                "`cpims-adapter keys status`."
            )
        if key_version is None:
            active = [v for v, state in versions.items() if state == "active"]
            key_version = max(active or versions)
        elif key_version not in versions:
            known = ", ".join(str(v) for v in sorted(versions))
            raise IncidentError(
                f"--key-version {key_version} is not a version of '{department}' (known: {known})."
            )
        record_security_event(
            conn,
            SecurityEventKind.KEY_COMPROMISE_REPORTED,
            department=department,
            detail=(
                f"an officer reported the token key of '{department}' version {key_version} "
                "as possibly exposed"
            ),
            now=now or utcnow(),
        )
    return key_version
