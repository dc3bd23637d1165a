"""Reading the state store for ``status``: last runs, signposts, outbox depths, registry
reviews, key ages, incidents, and each job's schedule, lag and next run built from them."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

import sqlalchemy as sa
from apscheduler.triggers.base import BaseTrigger
from apscheduler.triggers.cron import CronTrigger
from apscheduler.triggers.interval import IntervalTrigger
from sqlalchemy.engine import Connection

from adapter.config import JobSettings, Settings
from adapter.errors import StateError
from adapter.incidents import open_incident_summary
from adapter.jobs.watermark import Watermark
from adapter.ops.status._report import (
    LAG_INTERVALS,
    IncidentCounts,
    JobStatus,
    KeyAge,
    OutboxDepth,
    RunSummary,
    _aware,
)
from adapter.privacy._tables import keys as keys_table
from adapter.registry._tables import registry_checks
from adapter.state import StateStore, schema
from adapter.state.outbox import DEAD, PENDING

# privacy.md §6.2: "Rotate department keys yearly". An older active key is a warning.
KEY_AGE_WARN_DAYS = 365
REGISTRY_PENDING = "PENDING_REVIEW"

# Open and overdue incident counts; adapter.incidents.open_incident_summary by default.
IncidentSummary = Callable[[StateStore], Any]


def job_trigger(job: JobSettings, *, start: datetime) -> BaseTrigger:
    """The APScheduler trigger of a job's schedule: its crontab (UTC) if set, else every
    ``every_seconds`` from ``start``."""
    if job.cron:
        return CronTrigger.from_crontab(job.cron, timezone=UTC)
    return IntervalTrigger(seconds=job.every_seconds, start_date=start, timezone=UTC)


def schedule_interval(job: JobSettings, *, now: datetime) -> float:
    """Seconds between two runs: ``every_seconds``, or the gap between a crontab's next two
    fire times."""
    if not job.cron:
        return float(job.every_seconds)
    trigger = CronTrigger.from_crontab(job.cron, timezone=UTC)
    first = trigger.get_next_fire_time(None, now)
    second = trigger.get_next_fire_time(first, first + timedelta(seconds=1)) if first else None
    if first is None or second is None:
        return float(job.every_seconds)
    return float((second - first).total_seconds())


# -- reading --------------------------------------------------------------------------------


def _summary(row: Any) -> RunSummary:
    return RunSummary(
        id=int(row.id),
        started_at=row.started_at,
        finished_at=row.finished_at,
        outcome=str(row.status),
        error_class=row.error_class,
    )


def _last_runs(conn: Connection) -> dict[str, RunSummary]:
    runs = schema.runs
    latest = sa.select(sa.func.max(runs.c.id)).group_by(runs.c.job)
    rows = conn.execute(
        sa.select(
            runs.c.id,
            runs.c.job,
            runs.c.started_at,
            runs.c.finished_at,
            runs.c.status,
            runs.c.error_class,
        ).where(runs.c.id.in_(latest))
    )
    return {str(row.job): _summary(row) for row in rows}


def _last_successes(conn: Connection) -> dict[str, datetime]:
    runs = schema.runs
    rows = conn.execute(
        sa.select(runs.c.job, sa.func.max(runs.c.finished_at))
        .where(runs.c.status == "ok")
        .group_by(runs.c.job)
    )
    return {str(job): _aware(at) for job, at in rows if at is not None}


def _last_ok_windows(conn: Connection, jobs: list[str]) -> dict[str, datetime]:
    """How far each job's last successful run looked into Primero (its pull's signpost)."""
    runs = schema.runs
    found: dict[str, datetime] = {}
    for job in jobs:
        recent = conn.execute(
            sa.select(runs.c.stats)
            .where(runs.c.job == job, runs.c.status == "ok")
            .order_by(runs.c.id.desc())
            .limit(5)
        ).scalars()
        for stats in recent:
            window_to = _window_to(stats)
            if window_to is not None:
                found[job] = window_to
                break
    return found


def _window_to(stats: Any) -> datetime | None:
    # A dry run reads Primero but handles nothing: it does not bring the job up to date.
    if not isinstance(stats, dict) or stats.get("dry_run"):
        return None
    # A sync run keeps the pull's stats under "pull"; a pull-only run keeps them at the top.
    pull = stats.get("pull") if "pull" in stats else stats
    window_to = pull.get("window_to") if isinstance(pull, dict) else None
    if not isinstance(window_to, str):
        return None
    try:
        return _aware(datetime.fromisoformat(window_to))
    except ValueError:
        return None


def _outbox_depths(conn: Connection) -> list[OutboxDepth]:
    table = schema.outbox
    retried = sa.case((table.c.attempts > 0, "retrying"), else_="pending")
    rows = conn.execute(
        sa.select(table.c.destination, table.c.status, retried, sa.func.count())
        .where(table.c.status.in_([PENDING, DEAD]))
        .group_by(table.c.destination, table.c.status, retried)
    )
    counts: dict[str, dict[str, int]] = {}
    for destination, status, retry_state, count in rows:
        slot = "dead" if status == DEAD else str(retry_state)
        per = counts.setdefault(str(destination), {})
        per[slot] = per.get(slot, 0) + int(count)
    return [OutboxDepth(destination, **per) for destination, per in sorted(counts.items())]


def _reviews(conn: Connection, now: datetime) -> tuple[int, int]:
    checks = registry_checks
    waiting = sa.and_(checks.c.status == REGISTRY_PENDING, checks.c.resolved_at.is_(None))
    pending = conn.execute(sa.select(sa.func.count()).where(waiting)).scalar() or 0
    overdue = (
        conn.execute(
            sa.select(sa.func.count()).where(waiting, checks.c.review_due_by < now)
        ).scalar()
        or 0
    )
    return int(pending), int(overdue)


def _key_ages(conn: Connection, now: datetime) -> list[KeyAge]:
    rows = conn.execute(
        sa.select(keys_table.c.role, keys_table.c.version, keys_table.c.created_at)
        .where(keys_table.c.state == "active")
        .order_by(keys_table.c.role, keys_table.c.created_at)
    )
    oldest: dict[str, KeyAge] = {}
    for role, version, created_at in rows:
        if role in oldest:
            continue
        age = now - _aware(created_at)
        oldest[role] = KeyAge(
            str(role),
            int(version),
            age.days,
            age.days > KEY_AGE_WARN_DAYS,
            round(age.total_seconds(), 3),
        )
    return list(oldest.values())


def _incidents(
    store: StateStore, override: IncidentSummary | None, now: datetime
) -> IncidentCounts:
    found = override(store) if override else open_incident_summary(store, now=now)
    if isinstance(found, Mapping):
        return IncidentCounts(int(found.get("open", 0)), int(found.get("overdue", 0)))
    return IncidentCounts(int(found.open), int(found.overdue))


def _job_status(
    name: str,
    job: JobSettings,
    settings: Settings,
    *,
    now: datetime,
    last_run: RunSummary | None,
    last_success_at: datetime | None,
    lease: Any,
    cases_cursor: str | None,
    recorded_next_run: str | None,
    checked_up_to: datetime | None,
) -> JobStatus:
    try:
        watermark = Watermark.from_text(cases_cursor).second
    except StateError:
        watermark = None
    # Lag is how far behind Primero the job's view is. The watermark alone overstates it when
    # Primero is quiet (no change to advance it), so a successful run's signpost counts too:
    # that run saw every change up to it (architecture.md §5.2 "signpost").
    seen_up_to = max((t for t in (watermark, checked_up_to) if t is not None), default=None)
    lag = round((now - seen_up_to).total_seconds(), 3) if seen_up_to else None
    # sync.lag_seconds is a deliberate delay (the signpost trails the run by it).
    limit = LAG_INTERVALS * schedule_interval(job, now=now) + settings.sync.lag_seconds
    running = lease is not None and (lease.expires_at is None or _aware(lease.expires_at) > now)
    return JobStatus(
        name=name,
        department=job.department,
        every_seconds=None if job.cron else job.every_seconds,
        cron=job.cron,
        last_run=last_run,
        last_success_at=last_success_at,
        watermark=watermark,
        lag_seconds=lag,
        lag_limit_seconds=limit,
        next_run_at=_next_run(job, now, last_run, recorded_next_run),
        running=running,
        running_on=_host_pid(str(lease.owner)) if running else None,
    )


def _next_run(
    job: JobSettings, now: datetime, last_run: RunSummary | None, recorded: str | None
) -> datetime | None:
    if recorded:
        try:
            at = _aware(datetime.fromisoformat(recorded))
        except ValueError:
            at = None  # unreadable: fall back to the schedule
        # A time before the last run is left over from a daemon that has stopped since.
        if at is not None and (last_run is None or at >= last_run.started_at):
            return at
    # Anchored on the last run's start, as the scheduler fires: a time in the past means
    # the daemon has missed it (not running, or the run overran).
    previous = last_run.started_at if last_run else None
    trigger = job_trigger(job, start=previous or now)
    found: datetime | None = trigger.get_next_fire_time(previous, now)
    return found


def _host_pid(owner: str) -> str:
    # process_owner() is host:pid:start-time:nonce; the last two mean nothing to a person.
    return ":".join(owner.split(":")[:2])
