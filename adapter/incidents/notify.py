"""Delivery of incident notices over SMTP, retried until the server takes them.

The notice is generated when it is sent (so it carries the counts as they stand) and kept on
the incident. The subject line carries the incident number, severity, kind and deadline only.
SMTP failures are classified as in ``adapter/departments/email.py`` (4xx and network errors
transient, 5xx and refused credentials permanent), but a breach notice is never given up: a
permanent failure is retried too, at the longest interval, and stays visible in ``incidents
show`` until someone fixes the mail settings.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from email.message import EmailMessage
from email.utils import formatdate
from typing import TYPE_CHECKING

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from adapter.clock import utcnow
from adapter.config.incidents import IncidentSettings
from adapter.errors import Fatal, Retryable
from adapter.incidents._tables import incident_notifications, incidents
from adapter.incidents.detect import CHANNEL_EMAIL
from adapter.incidents.notice import build_notice, known_departments
from adapter.incidents.records import Incident, IncidentStatus
from adapter.smtp import SmtpServer
from adapter.state import StateStore

if TYPE_CHECKING:
    from adapter.config import Settings

log = logging.getLogger("adapter.incidents")

_MAX_BACKOFF_MINUTES = 60

# The seam tests and other transports use: send one message to one recipient, or raise
# Retryable / Fatal.
SendMail = Callable[[EmailMessage, str], None]


@dataclass
class DeliveryResult:
    """Notifications sent and failed in one pass, and the incidents now notified."""

    sent: int = 0
    failed: int = 0
    notified: list[int] = field(default_factory=list)


class SmtpNotices:
    """Sends notices through the ``[incidents]`` mail server (STARTTLS when configured)."""

    def __init__(self, settings: IncidentSettings, *, timeout: float = 30.0) -> None:
        self.settings = settings
        self.timeout = timeout

    @property
    def where(self) -> str:
        return f"{self.settings.smtp_host}:{self.settings.smtp_port}"

    def __call__(self, message: EmailMessage, recipient: str) -> None:
        settings = self.settings
        server = SmtpServer(
            settings.smtp_host,
            settings.smtp_port,
            settings.smtp_starttls,
            settings.smtp_username,
            settings.smtp_secret(),
            label="incidents mail",
            keys="incidents.smtp_username / smtp_password",
            senders="incidents.sender and the recipient addresses",
        )
        refused = server.send(message, settings.sender, [recipient], timeout=self.timeout)
        if refused:
            raise Retryable(f"incidents mail {self.where}: the server refused the recipient.")


def notice_message(incident: Incident, notice: str, settings: IncidentSettings) -> EmailMessage:
    """The e-mail for one notice. Headers name the incident, never a case."""
    message = EmailMessage()
    message["From"] = settings.sender
    message["Subject"] = (
        f"[cpims-adapter] incident {incident.id} ({incident.severity}): {incident.kind}; "
        f"notify the DPO by {incident.deadline_at.strftime('%Y-%m-%d %H:%M UTC')}"
    )
    message["Date"] = formatdate(usegmt=True)
    message["X-CPIMS-Incident"] = str(incident.id)
    message.set_content(notice)
    return message


def render_notice(store: StateStore, incident: Incident, settings: Settings) -> str:
    """The notice for ``incident`` as the database stands now (``incidents notice ID``)."""
    with store.transaction() as conn:
        return build_notice(
            conn,
            incident,
            known=known_departments(conn, settings),
            notify_within_hours=settings.incidents.notify_within_hours,
        )


def deliver_due_notifications(
    store: StateStore,
    settings: Settings,
    *,
    now: datetime | None = None,
    send: SendMail | None = None,
) -> DeliveryResult:
    """Send every queued notification that is due; reschedule the failures. An incident
    becomes ``notified`` (``notified_at`` = when the last DPO address took it) once every
    address in ``incidents.dpo_emails`` has its notice."""
    now = now or utcnow()
    send = send or SmtpNotices(settings.incidents)
    result = DeliveryResult()
    with store.transaction() as conn:
        _queue_missing_dpo(conn, settings.incidents.dpo_emails, now)
        due = conn.execute(
            sa.select(incident_notifications)
            .where(
                incident_notifications.c.status == "queued",
                incident_notifications.c.next_attempt_at <= now,
            )
            .order_by(incident_notifications.c.id)
        ).all()
    messages: dict[int, tuple[Incident, EmailMessage]] = {}
    for row in due:
        if row.incident_id not in messages:
            incident, notice = _current_notice(store, row.incident_id, settings)
            messages[row.incident_id] = (
                incident,
                notice_message(incident, notice, settings.incidents),
            )
        incident, message = messages[row.incident_id]
        try:
            send(message, row.recipient)
        except (Retryable, Fatal) as exc:
            result.failed += 1
            _reschedule(store, row.id, int(row.attempts) + 1, str(exc), settings, now)
            log.warning(
                "incident %s notice not sent (%s); will retry", incident.id, type(exc).__name__
            )
            continue
        with store.transaction() as conn:
            conn.execute(
                incident_notifications.update()
                .where(incident_notifications.c.id == row.id)
                .values(status="sent", sent_at=now, attempts=int(row.attempts) + 1, last_error=None)
            )
        result.sent += 1
    for incident_id in messages:
        if _mark_notified(store, incident_id, settings.incidents.dpo_emails, now):
            result.notified.append(incident_id)
    return result


def _current_notice(
    store: StateStore, incident_id: int, settings: Settings
) -> tuple[Incident, str]:
    with store.transaction() as conn:
        row = conn.execute(sa.select(incidents).where(incidents.c.id == incident_id)).one()
        incident = Incident(**row._mapping)
        notice = build_notice(
            conn,
            incident,
            known=known_departments(conn, settings),
            notify_within_hours=settings.incidents.notify_within_hours,
        )
        conn.execute(incidents.update().where(incidents.c.id == incident_id).values(notice=notice))
    return incident, notice


def _queue_missing_dpo(conn: Connection, dpo_emails: Iterable[str], now: datetime) -> None:
    # An address added to incidents.dpo_emails after an incident opened (or the first one,
    # when the list was empty) still gets the notice of every incident not yet notified.
    dpo = [address.strip() for address in dpo_emails if address.strip()]
    if not dpo:
        return
    waiting = conn.execute(
        sa.select(incidents.c.id).where(
            incidents.c.notified_at.is_(None),
            incidents.c.status != str(IncidentStatus.CLOSED),
        )
    ).scalars()
    for incident_id in list(waiting):
        queued = set(
            conn.execute(
                sa.select(incident_notifications.c.recipient).where(
                    incident_notifications.c.incident_id == incident_id
                )
            ).scalars()
        )
        for recipient in dict.fromkeys(dpo):
            if recipient not in queued:
                conn.execute(
                    incident_notifications.insert().values(
                        incident_id=incident_id,
                        recipient=recipient,
                        channel=CHANNEL_EMAIL,
                        status="queued",
                        queued_at=now,
                        next_attempt_at=now,
                        attempts=0,
                    )
                )


def _reschedule(
    store: StateStore, row_id: int, attempts: int, error: str, settings: Settings, now: datetime
) -> None:
    minutes = min(settings.incidents.retry_minutes * 2 ** (attempts - 1), _MAX_BACKOFF_MINUTES)
    with store.transaction() as conn:
        conn.execute(
            incident_notifications.update()
            .where(incident_notifications.c.id == row_id)
            .values(
                attempts=attempts,
                last_error=error[:500],
                next_attempt_at=now + timedelta(minutes=minutes),
            )
        )


def _mark_notified(
    store: StateStore, incident_id: int, dpo_emails: Iterable[str], now: datetime
) -> bool:
    dpo = {address.strip() for address in dpo_emails if address.strip()}
    if not dpo:
        return False  # nobody to tell: the incident stays open and turns overdue
    with store.transaction() as conn:
        sent = set(
            conn.execute(
                sa.select(incident_notifications.c.recipient).where(
                    incident_notifications.c.incident_id == incident_id,
                    incident_notifications.c.status == "sent",
                )
            ).scalars()
        )
        if not dpo <= sent:
            return False
        updated = conn.execute(
            incidents.update()
            .where(incidents.c.id == incident_id, incidents.c.notified_at.is_(None))
            .values(
                notified_at=now,
                status=sa.case(
                    (incidents.c.status == str(IncidentStatus.OPEN), str(IncidentStatus.NOTIFIED)),
                    else_=incidents.c.status,
                ),
            )
        )
    return updated.rowcount == 1
