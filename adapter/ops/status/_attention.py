"""What a queue's state says needs attention, beyond a job's last run (issue 13: every run
exited 0 and ``status`` printed healthy while 37 messages retried for want of a permission).

Four questions, read from the outbox and the runs, answered with names, counts and ages only:

- **retrying too long**: a message still retrying ``ops.retrying_attention_minutes`` after it
  was queued (per destination, the oldest and the error classes);
- **a permission missing in Primero**: write-back messages that failed with
  ``PrimeroNotPermitted``, with the Primero form, field or permission and the role change
  (adapter/jobs/writeback.py ``needed_grant``: from the message's kind, never its error text);
- **a destination unreachable**: its latest failed attempts could not connect, and nothing
  was delivered to it since;
- **a job stalled**: its last ``ops.stalled_after_runs`` runs delivered nothing while messages
  queued during them still wait.

Kept apart from ``_report._judge`` (the runs, lag and incidents), so each reads on its own.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from adapter.config import Settings
from adapter.jobs.writeback import PRIMERO, needed_grant
from adapter.ops.status._report import (
    Attention,
    GrantNeeded,
    RetryingAge,
    StalledJob,
    Status,
    UnreachableDestination,
    _aware,
    format_duration,
)
from adapter.state import schema
from adapter.state.outbox import DEAD, PENDING

NOT_PERMITTED = "PrimeroNotPermitted"
# Exception classes of an attempt that never reached its destination (no connection).
UNREACHABLE_CLASSES = ("Unreachable", "PrimeroUnreachable", "PrimeroTimeout")


def read_attention(conn: Connection, settings: Settings, now: datetime) -> Attention:
    """Read what :func:`judge_attention` judges, in the caller's transaction."""
    limit = timedelta(minutes=settings.ops.retrying_attention_minutes)
    return Attention(
        retrying=_retrying(conn, now, limit),
        grants=_grants(conn, settings),
        unreachable=_unreachable(conn),
        stalled=_stalled(conn, settings),
    )


def judge_attention(status: Status, attention: Attention) -> None:
    """Add a problem line for each finding: names, counts and ages, never an error text."""
    for grant in attention.grants:
        status.problems.append(
            f"write-back to Primero waits for a permission ({grant.messages} messages, job "
            f"{', '.join(grant.jobs)}): the integration role may not write {grant.target}: "
            f"{grant.change}"
        )
    for place in attention.unreachable:
        fix = "primero.url" if place.destination == PRIMERO else "its base_url"
        status.problems.append(
            f"{place.destination} unreachable: {place.messages} messages cannot connect, "
            f"nothing delivered since {place.since:%Y-%m-%d %H:%M}Z ({place.error_class}; check "
            f"{fix}, the network and that the server runs)"
        )
    for age in attention.retrying:
        if age.over_limit:
            status.problems.append(
                f"{age.over_limit} messages to {age.destination} retrying for more than "
                f"{format_duration(age.limit_seconds)}, the oldest for "
                f"{format_duration(age.oldest_seconds)} ({', '.join(age.error_classes)}; "
                f"cpims-adapter outbox list --destination {age.destination} --status retrying)"
            )
    for job in attention.stalled:
        status.problems.append(
            f"job {job.job}: its last {job.runs} runs delivered nothing while {job.waiting} "
            "messages queued meanwhile wait (cpims-adapter outbox list)"
        )


def _retrying(conn: Connection, now: datetime, limit: timedelta) -> list[RetryingAge]:
    table = schema.outbox
    retrying = sa.and_(table.c.status == PENDING, table.c.attempts > 0)
    oldest: dict[str, Any] = _pairs(
        conn.execute(
            sa.select(table.c.destination, sa.func.min(table.c.created_at))
            .where(retrying)
            .group_by(table.c.destination)
        ).all()
    )
    counts: dict[str, Any] = _pairs(
        conn.execute(
            sa.select(table.c.destination, sa.func.count())
            .where(retrying)
            .group_by(table.c.destination)
        ).all()
    )
    # Over the limit, a missing permission is said by its own line (with the fix) instead.
    late: dict[str, dict[str, int]] = {}
    for destination, error_class, count in conn.execute(
        sa.select(table.c.destination, table.c.last_error_class, sa.func.count())
        .where(
            retrying,
            table.c.created_at < now - limit,
            sa.func.coalesce(table.c.last_error_class, "") != NOT_PERMITTED,
        )
        .group_by(table.c.destination, table.c.last_error_class)
    ):
        late.setdefault(str(destination), {})[str(error_class or "unknown")] = int(count)
    return [
        RetryingAge(
            destination=str(destination),
            retrying=int(counts[destination]),
            oldest_seconds=max(0.0, (now - _aware(created)).total_seconds()),
            over_limit=sum(late.get(str(destination), {}).values()),
            limit_seconds=limit.total_seconds(),
            error_classes=tuple(sorted(late.get(str(destination), {}))),
        )
        for destination, created in sorted(oldest.items())
    ]


def _grants(conn: Connection, settings: Settings) -> list[GrantNeeded]:
    table = schema.outbox
    rows = conn.execute(
        sa.select(table.c.job, table.c.kind, sa.func.count())
        .where(
            table.c.destination == PRIMERO,
            table.c.status.in_([PENDING, DEAD]),
            table.c.last_error_class == NOT_PERMITTED,
        )
        .group_by(table.c.job, table.c.kind)
        .order_by(table.c.job, table.c.kind)
    )
    found: dict[tuple[str, str], tuple[int, list[str]]] = {}
    for job, kind, count in rows:
        configured = settings.jobs.get(str(job))
        fields = list(configured.primero_fields.values()) if configured else []
        grant = needed_grant(str(kind), fields)
        if grant is None:
            continue
        messages, jobs = found.get((grant.target, grant.change), (0, []))
        found[(grant.target, grant.change)] = (
            messages + int(count),
            [*jobs, str(job)] if str(job) not in jobs else jobs,
        )
    return [
        GrantNeeded(target, change, messages, tuple(jobs))
        for (target, change), (messages, jobs) in found.items()
    ]


def _unreachable(conn: Connection) -> list[UnreachableDestination]:
    table = schema.outbox
    failing = conn.execute(
        sa.select(
            table.c.destination,
            table.c.last_error_class,
            sa.func.count(),
            sa.func.min(table.c.updated_at),
            sa.func.max(table.c.updated_at),
        )
        .where(
            table.c.status == PENDING,
            table.c.attempts > 0,
            table.c.last_error_class.in_(UNREACHABLE_CLASSES),
        )
        .group_by(table.c.destination, table.c.last_error_class)
    ).all()
    if not failing:
        return []
    # The latest failed attempt that did reach the destination (any other error class).
    reached: dict[str, Any] = _pairs(
        conn.execute(
            sa.select(table.c.destination, sa.func.max(table.c.updated_at))
            .where(
                table.c.attempts > 0,
                table.c.last_error_class.is_not(None),
                table.c.last_error_class.not_in(UNREACHABLE_CLASSES),
                table.c.status == PENDING,
            )
            .group_by(table.c.destination)
        ).all()
    )
    delivered: dict[str, Any] = _pairs(
        conn.execute(
            sa.select(table.c.destination, sa.func.max(table.c.sent_at))
            .where(table.c.sent_at.is_not(None))
            .group_by(table.c.destination)
        ).all()
    )
    per: dict[str, UnreachableDestination] = {}
    for destination, error_class, count, first, last in failing:
        name = str(destination)
        answered = [
            _aware(at) for at in (reached.get(destination), delivered.get(destination)) if at
        ]
        if answered and max(answered) >= _aware(last):
            continue  # it answered after the last failed connection
        previous = per.get(name)
        per[name] = UnreachableDestination(
            destination=name,
            messages=int(count) + (previous.messages if previous else 0),
            since=min(_aware(first), previous.since) if previous else _aware(first),
            error_class=str(error_class) if previous is None else previous.error_class,
        )
    return [per[name] for name in sorted(per)]


def _stalled(conn: Connection, settings: Settings) -> list[StalledJob]:
    runs, table = schema.runs, schema.outbox
    count = settings.ops.stalled_after_runs
    found: list[StalledJob] = []
    for job in sorted(settings.jobs):
        recent = conn.execute(
            sa.select(runs.c.started_at, runs.c.stats)
            .where(runs.c.job == job, runs.c.finished_at.is_not(None))
            .order_by(runs.c.id.desc())
            .limit(count)
        ).all()
        recent = [r for r in recent if not _dry_run(r.stats)]
        if len(recent) < count or any(_delivered(r.stats) for r in recent):
            continue
        since = min(_aware(r.started_at) for r in recent)
        waiting = int(
            conn.execute(
                sa.select(sa.func.count())
                .select_from(table)
                .where(
                    table.c.job == job,
                    table.c.status.in_([PENDING, DEAD]),
                    table.c.created_at >= since,
                )
            ).scalar()
            or 0
        )
        if waiting:
            found.append(StalledJob(job, count, waiting))
    return found


def _pairs(rows: Any) -> dict[str, Any]:
    """``{first column: second column}`` of a two-column result."""
    return {str(key): value for key, value in rows}


def _dry_run(stats: Any) -> bool:
    return isinstance(stats, dict) and bool(stats.get("dry_run"))


def _delivered(stats: Any) -> int:
    """What a run delivered: to the department, and into Primero."""
    if not isinstance(stats, dict):
        return 0
    total = 0
    for key in ("delivered", "written_back"):
        value = stats.get(key)
        if isinstance(value, dict):
            total += sum(int(v) for v in value.values() if isinstance(v, int))
    write_backs = stats.get("write_backs")
    return total + (write_backs if isinstance(write_backs, int) else 0)
