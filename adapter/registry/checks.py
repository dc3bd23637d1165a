"""The check an establishment makes (privacy.md §6.6 items 2-5, 7; issue 6 item 2).

A read snapshot, then one write transaction per check:

1. on the snapshot (no write lock: checks match side by side, in threads and processes),
   **both** stages run on every path: the exact stage (``cnic_mac`` on an indexed column) and
   the fuzzy stage (blocking keys, then scoring), and a sealed record is always opened (the
   hit's, or a dummy) — so hits and misses do the same work and take about the same time;
   :func:`adapter.registry.matching.decide` gives CLEAR, PENDING_REVIEW or DO_NOT_ENGAGE;
2. in the write transaction, taken in turns (``Context.writing``; on PostgreSQL the
   establishment's row is locked too), so no two checks count the same quota: the
   establishment is still active (another process may have locked it) and within quota,
   and the consent reference has never been used (single-use; a re-use is rejected and
   recorded);
3. the check is recorded (the submitted identity is sealed and kept only for PENDING_REVIEW),
   audited with the subject's HMAC, and the abuse patterns are evaluated.

The answer is built from the outcome, a fresh random reference and dates only. Nothing about
the entry — name, offence, whether the CNIC is known — can reach it. Nothing is cached: every
check reads the database, so a removal committed before a check begins applies to it.
"""

from __future__ import annotations

import calendar
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from adapter.errors import StateError
from adapter.instruments import instruments
from adapter.registry import _audit, abuse
from adapter.registry._context import Context, new_ref
from adapter.registry._crypto import seal, unseal
from adapter.registry._entries import effective_status, working_days_after
from adapter.registry._tables import (
    registry_checks,
    registry_entries,
    registry_establishments,
)
from adapter.registry.errors import (
    ConsentRefUsed,
    EstablishmentLocked,
    QuotaExceeded,
    RequestRejected,
    UnknownReference,
)
from adapter.registry.index import (
    CandidateScorer,
    QueryIndex,
    index_query,
    name_versions,
    near_macs,
)
from adapter.registry.matching import (
    Decision,
    ExactHit,
    FuzzyHit,
    Outcome,
    Rule,
    corroborate,
    decide,
)
from adapter.registry.models import (
    CheckAnswer,
    CheckRecord,
    CheckRequest,
    EntryStatus,
    Establishment,
    Identity,
    format_instant,
)

DUMMY_IDENTITY = Identity(
    "3520200000001", "Dummy Record", "Dummy Father", None, None, datetime(1990, 1, 1).date()
)


def dummy_record(ctx: Context) -> tuple[bytes, bytes, bytes]:
    """A sealed identity opened on every miss (see module docstring, step 3)."""
    context = b"entry|RE-DUMMY"
    sealed, wrapped = seal(ctx.keyring, {"identity": DUMMY_IDENTITY.to_json()}, context)
    return sealed, wrapped, context


def answer_for(
    ctx: Context, status: str, check_ref: str, checked_at: datetime, valid_until: datetime
) -> CheckAnswer:
    return CheckAnswer(
        status=Outcome(status),
        check_ref=check_ref,
        checked_at=format_instant(checked_at),
        valid_until=valid_until.date().isoformat(),
        how_to_appeal=ctx.settings.how_to_appeal,
    )


# --- stages ----------------------------------------------------------------------------------


def exact_stage(ctx: Context, conn: Connection, query: QueryIndex) -> list[ExactHit]:
    rows = conn.execute(
        sa.select(
            registry_entries.c.id,
            registry_entries.c.entry_ref,
            registry_entries.c.status,
            registry_entries.c.sealed,
            registry_entries.c.wrapped_dek,
        ).where(
            registry_entries.c.cnic_mac == query.cnic_mac,
            registry_entries.c.status != str(EntryStatus.REMOVED),
        )
    ).all()
    if not rows:
        # Same work as a hit: open one sealed record and compare names with it.
        sealed, wrapped, context = ctx.dummy
        identity = Identity.from_json(unseal(ctx.keyring, sealed, wrapped, context)["identity"])
        corroborate(
            query.tokens,
            query.dob,
            name_versions(identity),
            identity.date_of_birth,
            ctx.settings.jw_threshold,
        )
        return []
    hits = []
    for row in rows:
        data = unseal(
            ctx.keyring,
            bytes(row.sealed),
            bytes(row.wrapped_dek),
            b"entry|" + row.entry_ref.encode(),
        )
        identity = Identity.from_json(data["identity"])
        corroboration = corroborate(
            query.tokens,
            query.dob,
            name_versions(identity),
            identity.date_of_birth,
            ctx.settings.jw_threshold,
        )
        hits.append(ExactHit(int(row.id), row.status == EntryStatus.UNDER_APPEAL, corroboration))
    return hits


_PLACEHOLDER = {"qmark": "?", "format": "%s", "pyformat": "%s"}
_BLOCKS_SQL = (
    "SELECT block_key, entry_id, name_keys, father_keys, dob_mac FROM registry_blocks "
    "WHERE block_key IN "
)


def _block_rows(conn: Connection, keys: list[str]) -> list[tuple[str, int, str, str, str]]:
    """The blocking rows under ``keys``, as the driver's tuples.

    The hot loop of every check: at 1,000,000 entries a common name has over a thousand
    candidate rows, and SQLAlchemy's row objects cost 2-4 µs each on top of the driver's
    tuples (benchmarks/bench_registry.py). Same connection, same transaction; the SQL is
    a constant plus one placeholder per key, values are bound.
    """
    marks = ", ".join([_PLACEHOLDER[conn.dialect.paramstyle]] * len(keys))
    driver = conn.connection.dbapi_connection
    assert driver is not None
    cursor = driver.cursor()
    try:
        cursor.execute(_BLOCKS_SQL + f"({marks})", keys)
        return list(cursor.fetchall())
    finally:
        cursor.close()


def fuzzy_stage(ctx: Context, conn: Connection, query: QueryIndex) -> list[FuzzyHit]:
    if not query.blocks:
        return []
    # Removed entries have no blocking rows (removal deletes them in its transaction).
    rows = _block_rows(conn, list(query.blocks))
    return CandidateScorer(query, ctx.low_keys).best_hits(rows)


def match(ctx: Context, conn: Connection, query: QueryIndex) -> Decision:
    """Both stages, then the rule table. Exposed for the benchmark's stage timings."""
    exact = exact_stage(ctx, conn, query)
    fuzzy = fuzzy_stage(ctx, conn, query)
    return decide(
        exact,
        fuzzy,
        fuzzy_threshold=ctx.settings.fuzzy_threshold,
        name_floor=ctx.settings.name_floor,
    )


# --- quotas ----------------------------------------------------------------------------------


_INSERT_CHECK = registry_checks.insert()
_CONSENT_USED = sa.select(registry_checks.c.id).where(
    registry_checks.c.consent_ref == sa.bindparam("consent_ref")
)
# FOR UPDATE (PostgreSQL; SQLite's writers already take turns): checks of one establishment
# queue here, so two workers can never both count the last check left in its quota.
_ESTABLISHMENT = (
    sa.select(registry_establishments)
    .where(registry_establishments.c.id == sa.bindparam("id"))
    .with_for_update()
)


def _enforce_quota(tally: abuse.Tally, establishment: Any, now: datetime) -> None:
    day_start = now.replace(hour=0, minute=0, second=0, microsecond=0)
    month_start = day_start.replace(day=1)
    if tally.month >= establishment.monthly_quota:
        days = calendar.monthrange(now.year, now.month)[1]
        next_month = month_start + timedelta(days=days)
        raise QuotaExceeded(
            "the establishment's monthly quota of checks is used up.",
            retry_after=int((next_month - now).total_seconds()) + 1,
        )
    if tally.today >= establishment.daily_quota:
        raise QuotaExceeded(
            "the establishment's daily quota of checks is used up.",
            retry_after=int((day_start + timedelta(days=1) - now).total_seconds()) + 1,
        )


def _current(conn: Connection, establishment: Establishment) -> Any:
    row = conn.execute(_ESTABLISHMENT, {"id": establishment.id}).one()
    if row.status != "active":
        raise EstablishmentLocked(
            "this establishment is locked after an anomaly; ask the registry office to review "
            "and unlock it."
        )
    return row


# --- the check --------------------------------------------------------------------------------


def check(
    ctx: Context, request: CheckRequest, establishment: Establishment, *, now: datetime
) -> CheckAnswer:
    """Answer one check; see the module docstring for what happens, in order."""
    if request.purpose not in ctx.settings.purposes:
        reject(ctx, establishment, "unknown_purpose", cnic=request.cnic, now=now)
        raise RequestRejected(
            f"purpose must be one of: {', '.join(ctx.settings.purposes)}.", reason="unknown_purpose"
        )
    query = index_query(
        request.cnic, request.full_name, request.father_name, request.date_of_birth, ctx.keys
    )
    check_ref = new_ref("RC")
    valid_until = now + timedelta(days=ctx.settings.answer_valid_days)
    # Matching only reads: it runs on a snapshot, beside other checks and writers. Every
    # removal committed before this check began is in that snapshot.
    with ctx.store.read() as conn:
        decision = match(ctx, conn, query)
    # Everything that needs no lock (sealing, keyed hashes) is done before the write turn.
    values = _check_row(ctx, establishment, request, query, decision, (check_ref, now, valid_until))
    near = near_macs(request.cnic, ctx.keys)
    reused = False
    try:
        with ctx.writing() as conn:
            row = _current(conn, establishment)
            before = abuse.tally(ctx, conn, establishment.id, now)
            _enforce_quota(before, row, now)
            used = conn.execute(_CONSENT_USED, {"consent_ref": request.consent_ref}).first()
            if used:
                reused = True
            else:
                _record(ctx, conn, establishment, values, near, before)
    except StateError as exc:
        # PostgreSQL: a concurrent check (of another establishment: one establishment's
        # checks queue on its row) took the same consent reference first.
        if not isinstance(exc.__cause__, sa.exc.IntegrityError):
            raise
        reused = True
    if reused:
        reject(ctx, establishment, "consent_reused", cnic=request.cnic, now=now)
        raise ConsentRefUsed(
            "this consent reference was already used: each signed consent form allows one check.",
            reason="consent_reused",
        )
    instruments.registry_check(str(decision.outcome))
    return answer_for(ctx, decision.outcome, check_ref, now, valid_until)


def _check_row(
    ctx: Context,
    establishment: Establishment,
    request: CheckRequest,
    query: QueryIndex,
    decision: Decision,
    when: tuple[str, datetime, datetime],
) -> dict[str, Any]:
    """The ``registry_checks`` row of one answered check."""
    check_ref, now, valid_until = when
    pending = decision.outcome is Outcome.PENDING_REVIEW
    # Sealed on every path (same work); stored only when an officer will need it.
    submitted = Identity(
        request.cnic, request.full_name, request.father_name, None, None, request.date_of_birth
    )
    sealed, wrapped = seal(ctx.keyring, submitted.to_json(), b"check|" + check_ref.encode())
    return dict(
        check_ref=check_ref,
        establishment_id=establishment.id,
        subject_mac=query.cnic_mac,
        near_mac=query.near_mac,
        consent_ref=request.consent_ref,
        purpose=request.purpose,
        position=request.position,
        status=str(decision.outcome),
        rule=str(decision.rule),
        candidates=" ".join(str(i) for i in decision.entry_ids) or None,
        sealed=sealed if pending else None,
        wrapped_dek=wrapped if pending else None,
        checked_at=now,
        valid_until=valid_until,
        review_due_by=working_days_after(now, ctx.settings.review_working_days)
        if pending
        else None,
    )


def _record(
    ctx: Context,
    conn: Connection,
    establishment: Establishment,
    values: dict[str, Any],
    near: tuple[str, str, str],
    before: abuse.Tally,
) -> None:
    """Insert the check, audit it and look for abuse, in the write turn."""
    now = values["checked_at"]
    conn.execute(_INSERT_CHECK, values)
    _audit.record(
        conn,
        ctx.keyring,
        "registry_check",
        now=now,
        subject=values["subject_mac"],
        ref=values["check_ref"],
        establishment=establishment.registration_number,
        purpose=values["purpose"],
        consent_ref=values["consent_ref"],
        status=values["status"],
        rule=values["rule"],
        position=values["position"],
    )
    abuse.after_attempt(
        ctx,
        conn,
        establishment,
        check_ref=values["check_ref"],
        subject_mac=values["subject_mac"],
        near=near,
        now=now,
        before=before,
        bad=values["rule"] == str(Rule.CNIC_HIT_MISMATCH),
    )


def reject(
    ctx: Context,
    establishment: Establishment,
    reason: str,
    *,
    cnic: str | None = None,
    now: datetime,
) -> str:
    """Record a refused attempt (invalid request, re-used consent, unknown purpose): it counts
    towards the quota and the mismatch rate. Raises QuotaExceeded past the quota."""
    check_ref = new_ref("RC")
    subject = ctx.keys.cnic_mac(cnic) if cnic else None
    with ctx.writing() as conn:
        row = _current(conn, establishment)
        before = abuse.tally(ctx, conn, establishment.id, now)
        _enforce_quota(before, row, now)
        conn.execute(
            registry_checks.insert().values(
                check_ref=check_ref,
                establishment_id=establishment.id,
                subject_mac=subject,
                near_mac=ctx.keys.near_mac(int(cnic[:10])) if cnic else None,
                status=abuse.REJECTED,
                rule=reason[:40],
                checked_at=now,
                valid_until=now,
            )
        )
        _audit.record(
            conn,
            ctx.keyring,
            "registry_check_rejected",
            now=now,
            subject=subject,
            ref=check_ref,
            establishment=establishment.registration_number,
            rule=reason,
        )
        abuse.after_attempt(
            ctx,
            conn,
            establishment,
            check_ref=check_ref,
            subject_mac=subject,
            near=near_macs(cnic, ctx.keys) if cnic else None,
            now=now,
            before=before,
            bad=True,
        )
    return check_ref


def check_status(ctx: Context, check_ref: str, establishment: Establishment) -> CheckAnswer:
    """The current answer of one of this establishment's checks (after a review or appeal)."""
    with ctx.store.read() as conn:
        row = conn.execute(
            sa.select(registry_checks).where(
                registry_checks.c.check_ref == check_ref,
                registry_checks.c.establishment_id == establishment.id,
                registry_checks.c.status != abuse.REJECTED,
            )
        ).first()
    if row is None:
        raise UnknownReference("no check of this establishment has that reference.")
    return answer_for(ctx, effective_status(row), row.check_ref, row.checked_at, row.valid_until)


# --- an establishment's own record -------------------------------------------------------------


def history(ctx: Context, establishment: Establishment, *, limit: int) -> list[CheckRecord]:
    """This establishment's own checks, newest first: reference, when, purpose, position and
    the status now (after any review or appeal). Refused attempts show as ``REJECTED``;
    nothing names or identifies the person checked."""
    table = registry_checks
    with ctx.store.read() as conn:
        rows = conn.execute(
            sa.select(table)
            .where(table.c.establishment_id == establishment.id, table.c.worker_id.is_(None))
            .order_by(table.c.checked_at.desc(), table.c.id.desc())
            .limit(limit)
        ).all()
    return [
        CheckRecord(
            check_ref=row.check_ref,
            checked_at=row.checked_at,
            purpose=row.purpose,
            position=row.position,
            status=effective_status(row),
            valid_until=row.valid_until,
        )
        for row in rows
    ]


def quota_used(ctx: Context, establishment: Establishment, *, now: datetime) -> tuple[int, int]:
    """Checks counted against this establishment's quota today and this month (UTC): the
    count :func:`_enforce_quota` reads (:func:`abuse.tally`), on a snapshot."""
    with ctx.store.read() as conn:
        counted = abuse.tally(ctx, conn, establishment.id, now)
    return counted.today, counted.month
