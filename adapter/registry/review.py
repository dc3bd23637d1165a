"""Review, rights and entry life cycle (privacy.md §6.6 items 4, 6, 9; issue 6 item 3).

* **Review queue**: every PENDING_REVIEW check waits here for a registry officer, who opens it
  (audited: it shows the submitted identity and the candidate entries), confirms identity
  through NADRA Verisys where available, and resolves it CLEAR or DO_NOT_ENGAGE.
* **Subject access**: which establishments checked a person, and when (the DBS model).
* **Appeals and corrections**: of a check outcome, or of an entry itself (the entry is under
  appeal meanwhile, so checks against it give PENDING_REVIEW, never an automatic bar).
* **Removal** takes effect at once: the entry's status and its blocking rows change in one
  transaction, and every check reads the database (no cache, NSOPW lesson).
* **Three-yearly review** of each entry (KP CPW (Amendment) Act 2022 draft).
"""

from __future__ import annotations

from datetime import date, datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from adapter.privacy.normalise import normalise_cnic
from adapter.registry import _audit
from adapter.registry._context import Context, new_ref
from adapter.registry._crypto import seal, unseal
from adapter.registry._entries import effective_status
from adapter.registry._tables import (
    registry_appeals,
    registry_blocks,
    registry_checks,
    registry_entries,
    registry_establishments,
    registry_workers,
)
from adapter.registry.errors import InvalidState, UnknownReference
from adapter.registry.index import block_rows, index_entry
from adapter.registry.matching import Outcome
from adapter.registry.models import (
    AppealItem,
    Candidate,
    EntryStatus,
    Identity,
    ReviewDetail,
    ReviewItem,
    SubjectAccessRow,
    check_name,
)
from adapter.registry.monitoring import notify_officers, recheck_entry

UNSET: Any = object()  # "not given" for correct_entry's optional fields


def _candidate(ctx: Context, row: Any) -> Candidate:
    data = unseal(
        ctx.keyring, bytes(row.sealed), bytes(row.wrapped_dek), b"entry|" + row.entry_ref.encode()
    )
    return Candidate(
        entry_ref=row.entry_ref,
        status=row.status,
        source=row.source,
        source_ref=row.source_ref,
        identity=Identity.from_json(data["identity"]),
        offence_code=data["offence_code"],
        conviction_date=data["conviction_date"],
        court=data["court"],
    )


def _check_by_ref(conn: Connection, check_ref: str) -> Any:
    row = conn.execute(
        sa.select(registry_checks, registry_establishments.c.registration_number)
        .join(
            registry_establishments,
            registry_establishments.c.id == registry_checks.c.establishment_id,
        )
        .where(registry_checks.c.check_ref == check_ref)
    ).first()
    if row is None:
        raise UnknownReference("no check has that reference.")
    return row


def _item(row: Any) -> ReviewItem:
    return ReviewItem(
        check_ref=row.check_ref,
        establishment=row.registration_number,
        checked_at=row.checked_at,
        due_by=row.review_due_by,
        rule=row.rule,
        purpose=row.purpose,
        position=row.position,
        monitoring=row.worker_id is not None,
    )


# --- review queue --------------------------------------------------------------------------------


def review_queue(ctx: Context) -> list[ReviewItem]:
    """Unresolved PENDING_REVIEW checks, the most urgent first."""
    query = (
        sa.select(registry_checks, registry_establishments.c.registration_number)
        .join(
            registry_establishments,
            registry_establishments.c.id == registry_checks.c.establishment_id,
        )
        .where(
            registry_checks.c.status == str(Outcome.PENDING_REVIEW),
            registry_checks.c.resolved_at.is_(None),
        )
        .order_by(registry_checks.c.review_due_by, registry_checks.c.id)
    )
    with ctx.store.transaction() as conn:
        return [_item(r) for r in conn.execute(query)]


def review_detail(ctx: Context, check_ref: str, officer: str, *, now: datetime) -> ReviewDetail:
    """The submitted identity and the candidate entries of one queued check. Audited: an
    officer opening a case is itself a disclosure."""
    with ctx.store.transaction() as conn:
        row = _check_by_ref(conn, check_ref)
        submitted = None
        if row.sealed:
            submitted = Identity.from_json(
                unseal(
                    ctx.keyring,
                    bytes(row.sealed),
                    bytes(row.wrapped_dek),
                    b"check|" + check_ref.encode(),
                )
            )
        ids = [int(i) for i in (row.candidates or "").split()]
        entries = (
            conn.execute(sa.select(registry_entries).where(registry_entries.c.id.in_(ids))).all()
            if ids
            else []
        )
        _audit.record(
            conn,
            ctx.keyring,
            "registry_review_opened",
            now=now,
            subject=row.subject_mac,
            ref=check_ref,
            officer=officer,
        )
    return ReviewDetail(_item(row), submitted, tuple(_candidate(ctx, e) for e in entries))


def resolve(
    ctx: Context, check_ref: str, decision: Outcome, officer: str, note: str, *, now: datetime
) -> list[int]:
    """An officer's decision on a PENDING_REVIEW check; returns notification ids (a monitored
    worker resolved DO_NOT_ENGAGE notifies the establishment's two officers)."""
    if decision is Outcome.PENDING_REVIEW:
        raise InvalidState("a review is resolved CLEAR or DO_NOT_ENGAGE.")
    with ctx.store.transaction() as conn:
        row = _check_by_ref(conn, check_ref)
        if row.status != Outcome.PENDING_REVIEW or row.resolved_at is not None:
            raise InvalidState("this check is not waiting for review.")
        conn.execute(
            registry_checks.update()
            .where(registry_checks.c.id == row.id)
            .values(
                resolution=str(decision),
                resolved_by=officer[:120],
                resolved_at=now,
                resolution_note=note[:500],
                # The submitted identity was kept only for this review.
                sealed=None,
                wrapped_dek=None,
            )
        )
        _audit.record(
            conn,
            ctx.keyring,
            "registry_review_resolved",
            now=now,
            subject=row.subject_mac,
            ref=check_ref,
            establishment=row.registration_number,
            status=str(decision),
            rule=row.rule,
            officer=officer,
        )
        if decision is Outcome.DO_NOT_ENGAGE and row.worker_id is not None:
            return notify_officers(ctx, conn, int(row.id), now=now)
    return []


# --- subject access ------------------------------------------------------------------------------


def subject_access(
    ctx: Context, cnic: str, officer: str, *, now: datetime
) -> list[SubjectAccessRow]:
    """Every establishment that checked (or monitors) the person with this CNIC (DBS model).

    The officer verifies the requester's identity document first; the registry never looks
    anyone up by name.
    """
    subject = ctx.keys.cnic_mac(cnic)
    est = registry_establishments
    with ctx.store.transaction() as conn:
        checks = conn.execute(
            sa.select(registry_checks, est.c.name, est.c.registration_number)
            .join(est, est.c.id == registry_checks.c.establishment_id)
            .where(registry_checks.c.subject_mac == subject)
            .order_by(registry_checks.c.checked_at)
        ).all()
        workers = conn.execute(
            sa.select(registry_workers, est.c.name, est.c.registration_number)
            .join(est, est.c.id == registry_workers.c.establishment_id)
            .where(registry_workers.c.subject_mac == subject)
        ).all()
        _audit.record(
            conn,
            ctx.keyring,
            "registry_subject_access",
            now=now,
            subject=subject,
            count=len(checks) + len(workers),
            officer=officer,
        )
    rows = [
        SubjectAccessRow(
            c.name,
            c.registration_number,
            c.checked_at,
            "check",
            c.purpose,
            c.position,
            effective_status(c),
        )
        for c in checks
        if c.worker_id is None
    ]
    rows += [
        SubjectAccessRow(
            w.name,
            w.registration_number,
            w.registered_at,
            "monitoring",
            None,
            None,
            "ended" if w.ended_at else "monitored",
        )
        for w in workers
    ]
    return sorted(rows, key=lambda r: r.at)


# --- entries: removal, correction, three-yearly review ------------------------------------------


def _entry_by_ref(conn: Connection, entry_ref: str) -> Any:
    row = conn.execute(
        sa.select(registry_entries).where(registry_entries.c.entry_ref == entry_ref)
    ).first()
    if row is None:
        raise UnknownReference("no registry entry has that reference.")
    return row


def remove_entry(
    ctx: Context, conn: Connection, entry_id: int, reason: str, officer: str, now: datetime
) -> None:
    """Remove in the caller's transaction: status, then the blocking rows, then the audit."""
    row = conn.execute(sa.select(registry_entries).where(registry_entries.c.id == entry_id)).one()
    if row.status == EntryStatus.REMOVED:
        raise InvalidState("this entry is already removed.")
    conn.execute(
        registry_entries.update()
        .where(registry_entries.c.id == entry_id)
        .values(
            status=str(EntryStatus.REMOVED),
            removed_at=now,
            removed_by=officer[:120],
            removal_reason=reason[:500],
            updated_at=now,
        )
    )
    keys = row.block_keys.split()
    if keys:
        conn.execute(
            registry_blocks.delete().where(
                registry_blocks.c.block_key.in_(keys), registry_blocks.c.entry_id == entry_id
            )
        )
    _audit.record(
        conn,
        ctx.keyring,
        "registry_entry_removed",
        now=now,
        subject=row.cnic_mac,
        ref=row.entry_ref,
        officer=officer,
    )


def remove(ctx: Context, entry_ref: str, reason: str, officer: str, *, now: datetime) -> None:
    """Take an entry off the register now: the next check no longer finds it."""
    with ctx.store.transaction() as conn:
        remove_entry(ctx, conn, int(_entry_by_ref(conn, entry_ref).id), reason, officer, now)


def correct_entry(
    ctx: Context,
    entry_ref: str,
    officer: str,
    reason: str,
    *,
    now: datetime,
    cnic: str | None = UNSET,
    full_name: str = UNSET,
    father_name: str | None = UNSET,
    date_of_birth: date = UNSET,
) -> None:
    """Correct a registered identity (a typo in the court record, a wrong CNIC); the keys and
    blocks are recomputed in the same transaction."""
    if isinstance(cnic, str):
        cnic = normalise_cnic(cnic)
    for name in (full_name, father_name):
        if isinstance(name, str):
            check_name(name)
    with ctx.store.transaction() as conn:
        row = _entry_by_ref(conn, entry_ref)
        if row.status == EntryStatus.REMOVED:
            raise InvalidState("a removed entry cannot be corrected.")
        context = b"entry|" + entry_ref.encode()
        data = unseal(ctx.keyring, bytes(row.sealed), bytes(row.wrapped_dek), context)
        old = Identity.from_json(data["identity"])
        identity = Identity(
            old.cnic if cnic is UNSET else cnic,
            old.full_name if full_name is UNSET else full_name,
            old.father_name if father_name is UNSET else father_name,
            old.full_name_urdu,
            old.father_name_urdu,
            old.date_of_birth if date_of_birth is UNSET else date_of_birth,
        )
        changed = sorted(
            name
            for name, value in (
                ("cnic", cnic),
                ("full_name", full_name),
                ("father_name", father_name),
                ("date_of_birth", date_of_birth),
            )
            if value is not UNSET
        )
        data["identity"] = identity.to_json()
        index = index_entry(identity, ctx.keys)
        sealed, wrapped = seal(ctx.keyring, data, context)
        old_keys = row.block_keys.split()
        if old_keys:
            conn.execute(
                registry_blocks.delete().where(
                    registry_blocks.c.block_key.in_(old_keys), registry_blocks.c.entry_id == row.id
                )
            )
        if index.block_keys:
            conn.execute(registry_blocks.insert(), block_rows(index, int(row.id)))
        conn.execute(
            registry_entries.update()
            .where(registry_entries.c.id == row.id)
            .values(
                cnic_mac=index.cnic_mac,
                sealed=sealed,
                wrapped_dek=wrapped,
                block_keys=" ".join(index.block_keys),
                updated_at=now,
            )
        )
        _audit.record(
            conn,
            ctx.keyring,
            "registry_entry_corrected",
            now=now,
            subject=index.cnic_mac,
            ref=entry_ref,
            officer=officer,
            fields=",".join(changed),
            reason=reason,
        )


def entries_due_for_review(ctx: Context, *, now: datetime) -> list[tuple[str, datetime, str]]:
    """``(entry_ref, review_due, status)`` of live entries whose three-yearly review is due."""
    with ctx.store.transaction() as conn:
        rows = conn.execute(
            sa.select(
                registry_entries.c.entry_ref,
                registry_entries.c.review_due,
                registry_entries.c.status,
            )
            .where(
                registry_entries.c.status != str(EntryStatus.REMOVED),
                registry_entries.c.review_due <= now,
            )
            .order_by(registry_entries.c.review_due)
        ).all()
    return [(r.entry_ref, r.review_due, r.status) for r in rows]


def confirm_review(ctx: Context, entry_ref: str, officer: str, *, now: datetime) -> datetime:
    """Keep an entry after its periodic review; returns the next review date."""
    due = now + timedelta(days=round(365.25 * ctx.settings.entry_review_years))
    with ctx.store.transaction() as conn:
        row = _entry_by_ref(conn, entry_ref)
        if row.status == EntryStatus.REMOVED:
            raise InvalidState("a removed entry has no review.")
        conn.execute(
            registry_entries.update()
            .where(registry_entries.c.id == row.id)
            .values(review_due=due, updated_at=now)
        )
        _audit.record(
            conn, ctx.keyring, "registry_entry_reviewed", now=now, ref=entry_ref, officer=officer
        )
    return due


# --- appeals -------------------------------------------------------------------------------------


def open_appeal(
    ctx: Context,
    *,
    grounds: str,
    received_by: str,
    now: datetime,
    check_ref: str | None = None,
    entry_ref: str | None = None,
) -> str:
    """Record a subject's appeal of a check outcome or of an entry; returns the appeal ref.

    An appealed entry is ``under_appeal`` until decided, so a check that corroborates it gives
    PENDING_REVIEW rather than DO_NOT_ENGAGE.
    """
    if (check_ref is None) == (entry_ref is None):
        raise InvalidState("an appeal concerns either a check or an entry.")
    appeal_ref = new_ref("RA")
    with ctx.store.transaction() as conn:
        check_id = entry_id = None
        subject = None
        if check_ref is not None:
            check = _check_by_ref(conn, check_ref)
            check_id, subject = int(check.id), check.subject_mac
        else:
            assert entry_ref is not None
            entry = _entry_by_ref(conn, entry_ref)
            if entry.status == EntryStatus.REMOVED:
                raise InvalidState("this entry is already removed.")
            entry_id, subject = int(entry.id), entry.cnic_mac
            conn.execute(
                registry_entries.update()
                .where(registry_entries.c.id == entry_id)
                .values(status=str(EntryStatus.UNDER_APPEAL), updated_at=now)
            )
        conn.execute(
            registry_appeals.insert().values(
                appeal_ref=appeal_ref,
                check_id=check_id,
                entry_id=entry_id,
                grounds=ctx.keyring.encrypt_payload(
                    grounds.encode("utf-8"), context=b"registry-appeal|" + appeal_ref.encode()
                ),
                status="open",
                received_by=received_by[:120],
                created_at=now,
            )
        )
        _audit.record(
            conn,
            ctx.keyring,
            "registry_appeal_opened",
            now=now,
            subject=subject,
            ref=appeal_ref,
            about=check_ref or entry_ref,
            officer=received_by,
        )
    return appeal_ref


def list_appeals(ctx: Context, *, open_only: bool) -> list[AppealItem]:
    """Appeals, oldest first: what each concerns, who received it, its state; no grounds."""
    appeals, checks, entries = registry_appeals, registry_checks, registry_entries
    query = (
        sa.select(appeals, checks.c.check_ref, entries.c.entry_ref)
        .outerjoin(checks, checks.c.id == appeals.c.check_id)
        .outerjoin(entries, entries.c.id == appeals.c.entry_id)
        .order_by(appeals.c.created_at, appeals.c.id)
    )
    if open_only:
        query = query.where(appeals.c.status == "open")
    with ctx.store.transaction() as conn:
        rows = conn.execute(query).all()
    return [
        AppealItem(
            appeal_ref=row.appeal_ref,
            about=row.check_ref or row.entry_ref or "",
            kind="check" if row.check_id is not None else "entry",
            status=row.status,
            received_by=row.received_by,
            created_at=row.created_at,
            decided_by=row.decided_by,
            decided_at=row.decided_at,
        )
        for row in rows
    ]


def decide_appeal(
    ctx: Context, appeal_ref: str, *, granted: bool, officer: str, note: str, now: datetime
) -> list[int]:
    """Decide an appeal. Granted: a check becomes CLEAR, an entry is removed. Refused: an
    appealed entry is active again (and monitoring re-runs against it)."""
    notify: list[int] = []
    with ctx.store.transaction() as conn:
        appeal = conn.execute(
            sa.select(registry_appeals).where(registry_appeals.c.appeal_ref == appeal_ref)
        ).first()
        if appeal is None:
            raise UnknownReference("no appeal has that reference.")
        if appeal.status != "open":
            raise InvalidState("this appeal was already decided.")
        if appeal.check_id is not None and granted:
            conn.execute(
                registry_checks.update()
                .where(registry_checks.c.id == appeal.check_id)
                .values(
                    resolution=str(Outcome.CLEAR),
                    resolved_by=officer[:120],
                    resolved_at=now,
                    resolution_note=f"appeal {appeal_ref} granted",
                    sealed=None,
                    wrapped_dek=None,
                )
            )
        elif appeal.entry_id is not None and granted:
            reason = f"appeal {appeal_ref} granted"
            remove_entry(ctx, conn, int(appeal.entry_id), reason, officer, now)
        elif appeal.entry_id is not None:
            conn.execute(
                registry_entries.update()
                .where(registry_entries.c.id == appeal.entry_id)
                .values(status=str(EntryStatus.ACTIVE), updated_at=now)
            )
            notify = recheck_entry(ctx, conn, int(appeal.entry_id), now=now)
        decision = "granted" if granted else "refused"
        conn.execute(
            registry_appeals.update()
            .where(registry_appeals.c.id == appeal.id)
            .values(
                status=decision, decided_by=officer[:120], decided_at=now, decision_note=note[:500]
            )
        )
        _audit.record(
            conn,
            ctx.keyring,
            "registry_appeal_decided",
            now=now,
            ref=appeal_ref,
            status=decision,
            officer=officer,
        )
    return notify
