"""Enumeration and abuse detection (privacy.md §6.6 item 7, §7 items 1-4).

Run in the transaction of every check (and of every rejected attempt), over the last
``window_days``:

* **sequential CNICs**: ``sequential_alert_count`` distinct CNICs from one establishment in one
  run of 1,000 consecutive numbers (or the runs either side) → security event, lock. Compared
  through keyed hashes of the first ten digits: no CNIC is kept to compare with;
* **mismatch rate**: more than ``mismatch_alert_rate`` of an establishment's attempts are CNIC
  hits with the wrong name/DOB or rejected requests (once there are ``mismatch_min_checks``)
  → security event, lock. A fishing establishment guesses identities; a real one copies them
  from the candidate's documents;
* **one person, many establishments**: more than ``subject_alert_establishments`` distinct
  establishments checked one subject → security event (no lock: the subject may simply be
  applying widely, which an officer can tell).

Monitoring rows (``worker_id`` set) are the registry's own doing and never count.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from adapter.privacy.events import record_security_event
from adapter.registry import _audit
from adapter.registry._context import Context
from adapter.registry._tables import registry_checks
from adapter.registry.establishments import lock
from adapter.registry.matching import Rule
from adapter.registry.models import Establishment, RegistryEventKind

REJECTED = "REJECTED"


# The statements every attempt runs, built once (parameters: establishment_id, since …).
_OWN = (
    registry_checks.c.establishment_id == sa.bindparam("establishment_id"),
    registry_checks.c.checked_at >= sa.bindparam("since"),
    registry_checks.c.worker_id.is_(None),
)
_NEAR_DISTINCT = sa.select(sa.func.count(sa.distinct(registry_checks.c.subject_mac))).where(
    *_OWN, registry_checks.c.near_mac.in_(sa.bindparam("near", expanding=True))
)
_BAD = sa.or_(
    registry_checks.c.status == REJECTED,
    registry_checks.c.rule == str(Rule.CNIC_HIT_MISMATCH),
)


def _since(name: str, also: sa.ColumnElement[bool] | None = None) -> sa.ColumnElement[int]:
    after = registry_checks.c.checked_at >= sa.bindparam(name)
    return sa.func.coalesce(
        sa.func.sum(sa.case((after & also if also is not None else after, 1), else_=0)), 0
    )


# One pass over the establishment's own attempts since the earlier of the month's start and
# the window's: the quota's two counts and the mismatch rate's two, for one range scan.
_TALLY = sa.select(
    _since("month_start"), _since("day_start"), _since("since"), _since("since", _BAD)
).where(
    registry_checks.c.establishment_id == sa.bindparam("establishment_id"),
    registry_checks.c.checked_at >= sa.bindparam("from_"),
    registry_checks.c.worker_id.is_(None),
)


@dataclass(frozen=True)
class Tally:
    """An establishment's own attempts before the current one: this month, today, in the
    detection window, and the window's mismatches (CNIC hit with the wrong name/DOB, or
    rejected)."""

    month: int
    today: int
    window: int
    bad: int


def tally(ctx: Context, conn: Connection, establishment_id: int, now: datetime) -> Tally:
    """Count in the caller's write transaction (the counts hold until it commits: writers
    take turns, and on PostgreSQL the establishment's row is locked)."""
    day_start = now.replace(hour=0, minute=0, second=0, microsecond=0)
    month_start = day_start.replace(day=1)
    since = now - timedelta(days=ctx.settings.window_days)
    month, today, window, bad = conn.execute(
        _TALLY,
        {
            "establishment_id": establishment_id,
            "from_": min(month_start, since),
            "month_start": month_start,
            "day_start": day_start,
            "since": since,
        },
    ).one()
    return Tally(int(month), int(today), int(window), int(bad))


_RECENT = (
    registry_checks.c.subject_mac == sa.bindparam("subject_mac"),
    registry_checks.c.checked_at >= sa.bindparam("since"),
    registry_checks.c.worker_id.is_(None),
)
# Both in one statement whose only conditions are on the subject (its index), however many
# checks the establishment made: the distinct establishments, and this one's earlier checks.
_EARLIER_HERE = sa.and_(
    registry_checks.c.establishment_id == sa.bindparam("establishment_id"),
    registry_checks.c.check_ref != sa.bindparam("check_ref"),
)
_SUBJECT = sa.select(
    sa.func.count(sa.distinct(registry_checks.c.establishment_id)),
    sa.func.coalesce(sa.func.sum(sa.case((_EARLIER_HERE, 1), else_=0)), 0),
).where(*_RECENT)


def after_attempt(
    ctx: Context,
    conn: Connection,
    establishment: Establishment,
    *,
    check_ref: str,
    subject_mac: str | None,
    near: tuple[str, str, str] | None,
    now: datetime,
    before: Tally,
    bad: bool,
) -> None:
    """Look for the three patterns after one attempt was recorded; lock if warranted.
    ``before`` counted the attempts before this one; ``bad``: this one is a mismatch."""
    settings = ctx.settings
    since = now - timedelta(days=settings.window_days)
    reasons: list[tuple[RegistryEventKind, str]] = []

    own = {"establishment_id": establishment.id, "since": since}
    if near is not None:
        distinct = conn.execute(_NEAR_DISTINCT, {**own, "near": list(near)}).scalar_one()
        if distinct >= settings.sequential_alert_count:
            reasons.append(
                (
                    RegistryEventKind.SEQUENTIAL_CNICS,
                    f"{distinct} distinct CNICs within one run of consecutive numbers in "
                    f"{settings.window_days} days",
                )
            )

    total, mismatches = before.window + 1, before.bad + int(bad)
    if total >= settings.mismatch_min_checks and mismatches / total > settings.mismatch_alert_rate:
        reasons.append(
            (
                RegistryEventKind.MISMATCH_RATE,
                f"{mismatches} of {total} attempts in {settings.window_days} days were "
                "mismatches or rejected",
            )
        )

    for kind, detail in reasons:
        record_security_event(
            conn,
            kind,
            department=None,
            detail=f"establishment {establishment.registration_number}: {detail}; locked",
            now=now,
        )
    if reasons:
        lock(conn, establishment.id, str(reasons[0][0]), now=now)
        _audit.record(
            conn,
            ctx.keyring,
            "registry_establishment_locked",
            now=now,
            ref=check_ref,
            establishment=establishment.registration_number,
            reason=",".join(str(k) for k, _ in reasons),
        )

    if subject_mac is not None:
        _subject_widely_checked(ctx, conn, establishment, subject_mac, check_ref, since, now)


def _subject_widely_checked(
    ctx: Context,
    conn: Connection,
    establishment: Establishment,
    subject_mac: str,
    check_ref: str,
    since: datetime,
    now: datetime,
) -> None:
    params = {
        "subject_mac": subject_mac,
        "since": since,
        "establishment_id": establishment.id,
        "check_ref": check_ref,
    }
    establishments, before = conn.execute(_SUBJECT, params).one()
    # Alert when a *new* establishment takes the count over the limit, not on every re-check.
    if establishments > ctx.settings.subject_alert_establishments and before == 0:
        record_security_event(
            conn,
            RegistryEventKind.SUBJECT_WIDELY_CHECKED,
            department=None,
            detail=(
                f"one subject was checked by {establishments} establishments in "
                f"{ctx.settings.window_days} days (latest: check {check_ref})"
            ),
            now=now,
        )
