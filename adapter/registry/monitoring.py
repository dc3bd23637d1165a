"""Continuous monitoring (privacy.md §6.6 item 8; the NSW Working With Children Check model).

An establishment registers a worker it engaged after a CLEAR check. When an entry with that
worker's CNIC HMAC is registered (or becomes active again after an appeal was dismissed) the
worker is compared exactly as a check would be:

* corroborated → a DO_NOT_ENGAGE check row for the establishment and one notification row per
  named officer, handed to the notifier hook after commit (e-mail, a queue);
* not corroborated, or the entry is under appeal → a PENDING_REVIEW row in the officers' queue;
  if an officer resolves it DO_NOT_ENGAGE the notifications go out then.

Monitoring is exact-CNIC only: the worker's identity was checked (fuzzy stage included) when
they were engaged, and a later fuzzy-only similarity must not reach an employer uninvestigated.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from adapter.registry import _audit
from adapter.registry._context import Context, new_ref
from adapter.registry._crypto import seal, unseal
from adapter.registry._entries import effective_status, load_entry_identity, working_days_after
from adapter.registry._tables import (
    inserted_id,
    registry_checks,
    registry_entries,
    registry_establishments,
    registry_notifications,
    registry_workers,
)
from adapter.registry.errors import InvalidState, UnknownReference
from adapter.registry.index import name_versions
from adapter.registry.matching import ExactHit, Outcome, corroborate, decide, person_tokens
from adapter.registry.models import (
    EntryStatus,
    Establishment,
    Identity,
    Notification,
    WorkerRegistration,
)

log = logging.getLogger("adapter.registry")


@dataclass(frozen=True)
class NewEntry:
    """An entry just registered or re-activated, with its identity still in memory."""

    id: int
    entry_ref: str
    cnic_mac: str | None
    identity: Identity
    status: EntryStatus


def register_worker(
    ctx: Context, establishment: Establishment, registration: WorkerRegistration, *, now: datetime
) -> str:
    """Start monitoring a worker; returns the worker reference.

    The worker must be the subject of one of this establishment's own checks, and that check's
    current status must be CLEAR: monitoring follows a consented check, it does not replace one.
    """
    subject = ctx.keys.cnic_mac(registration.cnic)
    with ctx.store.transaction() as conn:
        check = conn.execute(
            sa.select(registry_checks).where(
                registry_checks.c.check_ref == registration.check_ref,
                registry_checks.c.establishment_id == establishment.id,
            )
        ).first()
        if check is None or check.subject_mac != subject:
            raise UnknownReference(
                "no check of this establishment has that reference for this person."
            )
        if effective_status(check) != Outcome.CLEAR:
            raise InvalidState("only a worker whose check is CLEAR can be registered.")
        worker_ref = new_ref("RW")
        identity = Identity(
            registration.cnic,
            registration.full_name,
            registration.father_name,
            None,
            None,
            registration.date_of_birth,
        )
        sealed, wrapped = seal(ctx.keyring, identity.to_json(), b"worker|" + worker_ref.encode())
        conn.execute(
            registry_workers.insert().values(
                worker_ref=worker_ref,
                establishment_id=establishment.id,
                subject_mac=subject,
                check_id=check.id,
                sealed=sealed,
                wrapped_dek=wrapped,
                registered_at=now,
            )
        )
        _audit.record(
            conn,
            ctx.keyring,
            "registry_worker_registered",
            now=now,
            subject=subject,
            ref=worker_ref,
            establishment=establishment.registration_number,
            check=check.check_ref,
        )
    return worker_ref


def end_worker(
    ctx: Context, establishment: Establishment, worker_ref: str, *, now: datetime
) -> None:
    """Stop monitoring a worker who left (their sealed identity is erased)."""
    with ctx.store.transaction() as conn:
        done = conn.execute(
            registry_workers.update()
            .where(
                registry_workers.c.worker_ref == worker_ref,
                registry_workers.c.establishment_id == establishment.id,
                registry_workers.c.ended_at.is_(None),
            )
            .values(ended_at=now, sealed=b"", wrapped_dek=b"")
        )
        if done.rowcount != 1:
            raise UnknownReference("no monitored worker of this establishment has that reference.")
        _audit.record(
            conn,
            ctx.keyring,
            "registry_worker_ended",
            now=now,
            ref=worker_ref,
            establishment=establishment.registration_number,
        )


def on_new_entries(
    ctx: Context, conn: Connection, entries: Sequence[NewEntry], *, now: datetime
) -> list[int]:
    """Compare monitored workers with entries just registered; returns notification ids."""
    by_mac = {e.cnic_mac: e for e in entries if e.cnic_mac and e.status is not EntryStatus.REMOVED}
    if not by_mac:
        return []
    workers = conn.execute(
        sa.select(registry_workers).where(
            registry_workers.c.subject_mac.in_(list(by_mac)),
            registry_workers.c.ended_at.is_(None),
        )
    ).all()
    notify: list[int] = []
    for worker in workers:
        notify.extend(_evaluate(ctx, conn, worker, by_mac[worker.subject_mac], now))
    return notify


def recheck_entry(ctx: Context, conn: Connection, entry_id: int, *, now: datetime) -> list[int]:
    """Re-run monitoring for one existing entry (after it became active again)."""
    row = conn.execute(sa.select(registry_entries).where(registry_entries.c.id == entry_id)).one()
    identity = load_entry_identity(ctx, row)
    entry = NewEntry(entry_id, row.entry_ref, row.cnic_mac, identity, EntryStatus(row.status))
    return on_new_entries(ctx, conn, [entry], now=now)


def _evaluate(
    ctx: Context,
    conn: Connection,
    worker: sa.Row[tuple[object, ...]],
    entry: NewEntry,
    now: datetime,
) -> list[int]:
    worker_ref = str(worker.worker_ref)
    identity = Identity.from_json(
        unseal(
            ctx.keyring,
            bytes(worker.sealed),
            bytes(worker.wrapped_dek),
            b"worker|" + worker_ref.encode(),
        )
    )
    tokens = person_tokens(identity.full_name, identity.father_name)
    corroboration = corroborate(
        tokens,
        identity.date_of_birth,
        name_versions(entry.identity),
        entry.identity.date_of_birth,
        ctx.settings.jw_threshold,
    )
    hit = ExactHit(entry.id, entry.status is EntryStatus.UNDER_APPEAL, corroboration)
    decision = decide(
        [hit], [], fuzzy_threshold=ctx.settings.fuzzy_threshold, name_floor=ctx.settings.name_floor
    )
    check_ref = new_ref("RC")
    pending = decision.outcome is Outcome.PENDING_REVIEW
    sealed, wrapped = (None, None)
    if pending:
        sealed, wrapped = seal(ctx.keyring, identity.to_json(), b"check|" + check_ref.encode())
    establishment = conn.execute(
        sa.select(registry_establishments).where(
            registry_establishments.c.id == worker.establishment_id
        )
    ).one()
    check_id = inserted_id(
        conn.execute(
            registry_checks.insert().values(
                check_ref=check_ref,
                establishment_id=worker.establishment_id,
                subject_mac=worker.subject_mac,
                status=str(decision.outcome),
                rule=f"monitoring_{decision.rule}",
                candidates=" ".join(str(i) for i in decision.entry_ids),
                sealed=sealed,
                wrapped_dek=wrapped,
                worker_id=worker.id,
                checked_at=now,
                valid_until=now + timedelta(days=ctx.settings.answer_valid_days),
                review_due_by=working_days_after(now, ctx.settings.review_working_days)
                if pending
                else None,
            )
        )
    )
    _audit.record(
        conn,
        ctx.keyring,
        "registry_monitoring_match",
        now=now,
        subject=worker.subject_mac,
        ref=check_ref,
        establishment=establishment.registration_number,
        status=str(decision.outcome),
        rule=str(decision.rule),
        worker=worker_ref,
        entry=entry.entry_ref,
    )
    if decision.outcome is Outcome.DO_NOT_ENGAGE:
        return notify_officers(ctx, conn, int(check_id), now=now)
    return []


def notify_officers(ctx: Context, conn: Connection, check_id: int, *, now: datetime) -> list[int]:
    """One notification row per named officer of the check's establishment (two, by rule)."""
    check = conn.execute(sa.select(registry_checks).where(registry_checks.c.id == check_id)).one()
    if check.worker_id is None:
        return []
    est = conn.execute(
        sa.select(registry_establishments).where(
            registry_establishments.c.id == check.establishment_id
        )
    ).one()
    ids: list[int] = []
    for name, email in (
        (est.officer1_name, est.officer1_email),
        (est.officer2_name, est.officer2_email),
    ):
        ids.append(
            inserted_id(
                conn.execute(
                    registry_notifications.insert().values(
                        establishment_id=est.id,
                        worker_id=check.worker_id,
                        check_ref=check.check_ref,
                        officer_name=name,
                        officer_email=email,
                        status=str(Outcome.DO_NOT_ENGAGE),
                        created_at=now,
                    )
                )
            )
        )
    _audit.record(
        conn,
        ctx.keyring,
        "registry_notification",
        now=now,
        subject=check.subject_mac,
        ref=check.check_ref,
        establishment=est.registration_number,
        count=len(ids),
    )
    return ids


def _notification_query() -> sa.Select[tuple[object, ...]]:
    n, w, e = registry_notifications, registry_workers, registry_establishments
    return (
        sa.select(
            n.c.id,
            e.c.registration_number,
            w.c.worker_ref,
            n.c.check_ref,
            n.c.officer_name,
            n.c.officer_email,
            n.c.status,
            n.c.created_at,
            n.c.delivered_at,
        )
        .join(w, w.c.id == n.c.worker_id)
        .join(e, e.c.id == n.c.establishment_id)
        .order_by(n.c.id)
    )


def _as_notification(row: sa.Row[tuple[object, ...]]) -> Notification:
    return Notification(*row)


def list_notifications(ctx: Context, *, undelivered: bool = False) -> list[Notification]:
    query = _notification_query()
    if undelivered:
        query = query.where(registry_notifications.c.delivered_at.is_(None))
    with ctx.store.transaction() as conn:
        return [_as_notification(r) for r in conn.execute(query)]


def dispatch(ctx: Context, ids: Sequence[int], *, now: datetime) -> None:
    """Hand new notifications to the notifier hook; mark the ones it took as delivered."""
    if not ids or ctx.notifier is None:
        return
    with ctx.store.transaction() as conn:
        rows = conn.execute(
            _notification_query().where(registry_notifications.c.id.in_(list(ids)))
        ).all()
    for row in rows:
        notification = _as_notification(row)
        try:
            ctx.notifier(notification)
        except Exception as exc:  # noqa: BLE001 - any hook failure: leave the row for retry
            log.warning(
                "registry notification %d: the notifier failed (%s); left undelivered",
                notification.id,
                type(exc).__name__,
            )
            continue
        with ctx.store.transaction() as conn:
            conn.execute(
                registry_notifications.update()
                .where(registry_notifications.c.id == notification.id)
                .values(delivered_at=now)
            )


def mark_delivered(ctx: Context, notification_id: int, *, now: datetime) -> None:
    """For a delivery job outside the process: record that one notification went out."""
    with ctx.store.transaction() as conn:
        conn.execute(
            registry_notifications.update()
            .where(registry_notifications.c.id == notification_id)
            .values(delivered_at=now)
        )
