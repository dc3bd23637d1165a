"""What the adapter is doing and what needs attention, read from the state store alone.

``collect_status`` is what ``cpims-adapter status`` prints and what the metrics collector
exports: per configured job its last run, its lag behind Primero, its next run and whether it
is running now (and where); outbox depth per destination, dead letters, pending registry
reviews, key ages, the last audit verification and open incidents.

Everything here is identifiers, counts and times: job and department names, run outcomes,
exception class names, host:pid of a lease holder. Never a case id, a name, a case code or an
error message (an error message may be a department's words).

Reading needs no KEK and no network: a monitoring script can run ``status`` with the state
store's URL only.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
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
from adapter.jobs.pull import STREAM_CASES
from adapter.jobs.watermark import Watermark
from adapter.privacy._tables import keys as keys_table
from adapter.registry._tables import registry_checks
from adapter.state import StateStore, schema
from adapter.state.outbox import DEAD, PENDING
from adapter.state.service import Instances
from adapter.state.store import process_owner
from adapter.state.types import utcnow

# The runs row ``cpims-adapter audit verify`` records (adapter/cli/_privacy.py).
AUDIT_VERIFY_JOB = "audit-verify"
# Housekeeping that records runs like a job does (retention, breach handling, audit).
HOUSEKEEPING_JOBS = ("retention", "incidents", AUDIT_VERIFY_JOB)
# Where the daemon (`cpims-adapter run`) records a job's actual next fire time, so ``status``
# shows the scheduler's own answer (jitter, misfires) instead of one computed from the
# schedule. A cursor row needs no migration: (job, NEXT_RUN_STREAM) -> ISO 8601 UTC.
NEXT_RUN_STREAM = "scheduler-next-run"
# privacy.md §6.2: "Rotate department keys yearly". An older active key is a warning.
KEY_AGE_WARN_DAYS = 365
# A job further behind Primero than this many of its schedule intervals needs attention.
LAG_INTERVALS = 3
REGISTRY_PENDING = "PENDING_REVIEW"


@dataclass(frozen=True)
class RunSummary:
    """One runs row, without its error message."""

    id: int
    started_at: datetime
    finished_at: datetime | None
    # ok | failed | running | abandoned | skipped | interrupted
    outcome: str
    error_class: str | None

    @property
    def duration_seconds(self) -> float | None:
        if self.finished_at is None:
            return None
        return round((self.finished_at - self.started_at).total_seconds(), 3)


@dataclass(frozen=True)
class JobStatus:
    """One configured sync job."""

    name: str
    department: str
    every_seconds: int | None
    cron: str | None
    last_run: RunSummary | None
    last_success_at: datetime | None
    # The newest Primero change the job has handled (its "cases" cursor).
    watermark: datetime | None
    lag_seconds: float | None
    lag_limit_seconds: float
    next_run_at: datetime | None
    running: bool
    # host:pid of the lease holder while running.
    running_on: str | None


@dataclass(frozen=True)
class HousekeepingStatus:
    """A housekeeping task that records runs (retention, incidents, audit verification)."""

    name: str
    last_run: RunSummary | None
    last_success_at: datetime | None


@dataclass(frozen=True)
class OutboxDepth:
    """Messages waiting for one destination: never tried, failed at least once, dead."""

    destination: str
    pending: int = 0
    retrying: int = 0
    dead: int = 0


@dataclass(frozen=True)
class KeyAge:
    """The oldest active key of one role."""

    role: str
    version: int
    age_days: int
    warn: bool


@dataclass(frozen=True)
class IncidentCounts:
    open: int
    overdue: int


@dataclass(frozen=True)
class InstanceSummary:
    """One `cpims-adapter run` process: where, which version, since when, alive or not."""

    host_pid: str
    version: str
    started_at: datetime
    last_seen: datetime
    live: bool


@dataclass(frozen=True)
class Status:
    """The whole picture; ``problems`` make ``status`` exit 1, ``warnings`` do not."""

    generated_at: datetime
    jobs: list[JobStatus]
    housekeeping: list[HousekeepingStatus]
    outbox: list[OutboxDepth]
    dead_letters: int
    pending_reviews: int
    overdue_reviews: int
    keys: list[KeyAge]
    last_audit_verification: RunSummary | None
    incidents: IncidentCounts
    instances: list[InstanceSummary] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    @property
    def healthy(self) -> bool:
        return not self.problems

    def to_json(self) -> dict[str, Any]:
        """The document ``status --format json`` prints; its keys are a stable interface
        (README, "cpims-adapter status")."""
        document: dict[str, Any] = _jsonable(
            {
                "healthy": self.healthy,
                "generated_at": self.generated_at,
                "problems": self.problems,
                "warnings": self.warnings,
                "jobs": [_job_json(job) for job in self.jobs],
                "housekeeping": [
                    {
                        "name": h.name,
                        "last_run": _run_json(h.last_run),
                        "last_success_at": h.last_success_at,
                    }
                    for h in self.housekeeping
                ],
                "outbox": [asdict(depth) for depth in self.outbox],
                "dead_letters": self.dead_letters,
                "registry": {
                    "pending_reviews": self.pending_reviews,
                    "overdue_reviews": self.overdue_reviews,
                },
                "keys": [asdict(key) for key in self.keys],
                "audit": {"last_verification": _run_json(self.last_audit_verification)},
                "incidents": asdict(self.incidents),
                "service": {"instances": [asdict(i) for i in self.instances]},
            }
        )
        return document


# Open and overdue incident counts; adapter.incidents.open_incident_summary by default.
IncidentSummary = Callable[[StateStore], Any]


def collect_status(
    settings: Settings,
    store: StateStore,
    *,
    now: datetime | None = None,
    incident_summary: IncidentSummary | None = None,
) -> Status:
    """Read the state store once and say what every job and queue is doing.

    ``incident_summary`` replaces ``adapter.incidents.open_incident_summary`` (tests, or an
    embedding service). Raises ``StateError`` if the store cannot be read.
    """
    now = now or utcnow()
    with store.transaction() as conn:
        last_runs = _last_runs(conn)
        last_ok = _last_successes(conn)
        leases = {
            row.name: row
            for row in conn.execute(
                sa.select(schema.leases).where(schema.leases.c.owner.is_not(None))
            )
        }
        cursors = {
            (row.job, row.stream): row.value
            for row in conn.execute(
                sa.select(schema.cursors).where(
                    schema.cursors.c.stream.in_([STREAM_CASES, NEXT_RUN_STREAM])
                )
            )
        }
        ok_windows = _last_ok_windows(conn, list(settings.jobs))
        outbox = _outbox_depths(conn)
        pending_reviews, overdue_reviews = _reviews(conn, now)
        keys = _key_ages(conn, now)

    jobs = [
        _job_status(
            name,
            job,
            settings,
            now=now,
            last_run=last_runs.get(name),
            last_success_at=last_ok.get(name),
            lease=leases.get(f"job:{name}"),
            cases_cursor=cursors.get((name, STREAM_CASES)),
            recorded_next_run=cursors.get((name, NEXT_RUN_STREAM)),
            checked_up_to=ok_windows.get(name),
        )
        for name, job in sorted(settings.jobs.items())
    ]
    housekeeping = [
        HousekeepingStatus(name, last_runs.get(name), last_ok.get(name))
        for name in HOUSEKEEPING_JOBS
    ]
    status = Status(
        generated_at=now,
        jobs=jobs,
        housekeeping=housekeeping,
        outbox=outbox,
        dead_letters=sum(depth.dead for depth in outbox),
        pending_reviews=pending_reviews,
        overdue_reviews=overdue_reviews,
        keys=keys,
        last_audit_verification=last_runs.get(AUDIT_VERIFY_JOB),
        incidents=_incidents(store, incident_summary, now),
        instances=[
            InstanceSummary(_host_pid(i.owner), i.version, i.started_at, i.last_seen, i.live(now))
            for i in Instances(store).all()
            if i.stopped_at is None
        ],
    )
    _judge(status)
    return status


class RecordedRun:
    """What a housekeeping run reports: counts in ``stats``, and ``fail`` for a run that
    finished but found a problem (e.g. a broken audit chain)."""

    def __init__(self) -> None:
        self.stats: dict[str, Any] = {}
        self.failed_as: str | None = None

    def fail(self, error_class: str) -> None:
        self.failed_as = error_class


@contextmanager
def recorded_run(store: StateStore, job: str) -> Iterator[RecordedRun]:
    """Record the block as a runs row named ``job`` (ok, or failed with the exception's class),
    so ``status`` and the metrics show housekeeping beside the sync jobs."""
    run = RecordedRun()
    run_id = store.start_run(job, process_owner())
    try:
        yield run
    except BaseException as exc:
        store.finish_run(run_id, "failed", run.stats, type(exc).__name__)
        raise
    store.finish_run(run_id, "failed" if run.failed_as else "ok", run.stats, run.failed_as)


def record_next_run(store: StateStore, job: str, at: datetime) -> None:
    """For the daemon: remember when the scheduler will next run ``job`` (shown by status)."""
    store.set_cursor(job, NEXT_RUN_STREAM, at.astimezone(UTC).isoformat())


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
        age = (now - _aware(created_at)).days
        oldest[role] = KeyAge(str(role), int(version), age, age > KEY_AGE_WARN_DAYS)
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


def _aware(value: datetime) -> datetime:
    return value if value.tzinfo else value.replace(tzinfo=UTC)


# -- judging --------------------------------------------------------------------------------


def _judge(status: Status) -> None:
    for job in status.jobs:
        if job.last_run and job.last_run.outcome in ("failed", "abandoned"):
            status.problems.append(
                f"job {job.name}: last run {job.last_run.outcome} "
                f"({job.last_run.error_class or 'no error class'})"
            )
        if job.lag_seconds is not None and job.lag_seconds > job.lag_limit_seconds:
            status.problems.append(
                f"job {job.name}: {format_duration(job.lag_seconds)} behind Primero "
                f"(limit {format_duration(job.lag_limit_seconds)}, {LAG_INTERVALS}x its schedule)"
            )
        if job.last_run is None:
            status.warnings.append(f"job {job.name}: never run")
    for task in status.housekeeping:
        if task.last_run and task.last_run.outcome in ("failed", "abandoned"):
            status.problems.append(
                f"{task.name}: last run {task.last_run.outcome} "
                f"({task.last_run.error_class or 'no error class'})"
            )
    for depth in status.outbox:
        if depth.dead:
            status.problems.append(
                f"{depth.dead} dead letters to {depth.destination} (cpims-adapter deadletter list)"
            )
    if status.incidents.overdue:
        status.problems.append(
            f"{status.incidents.overdue} incidents past their notification deadline"
        )
    if status.incidents.open:
        status.warnings.append(f"{status.incidents.open} open incidents")
    if status.overdue_reviews:
        status.warnings.append(
            f"{status.overdue_reviews} registry reviews past their due date "
            "(cpims-adapter registry review list)"
        )
    for key in status.keys:
        if key.warn:
            status.warnings.append(
                f"{key.role} key v{key.version} is {key.age_days} days old "
                f"(rotate yearly; privacy.md §6.2)"
            )
    if status.last_audit_verification is None:
        status.warnings.append("the audit log was never verified (cpims-adapter audit verify)")


def format_duration(seconds: float) -> str:
    """A duration as a person reads it: ``45 s``, ``12 min``, ``5 h``, ``3 days``."""
    seconds = int(seconds)
    if seconds < 120:
        return f"{seconds} s"
    if seconds < 7200:
        return f"{seconds // 60} min"
    if seconds < 172800:
        return f"{seconds // 3600} h"
    return f"{seconds // 86400} days"


# -- JSON -----------------------------------------------------------------------------------


def _run_json(run: RunSummary | None) -> dict[str, Any] | None:
    if run is None:
        return None
    return {**asdict(run), "duration_seconds": run.duration_seconds}


def _job_json(job: JobStatus) -> dict[str, Any]:
    document = asdict(job)
    document["last_run"] = _run_json(job.last_run)
    return document


def _jsonable(value: Any) -> Any:
    if isinstance(value, datetime):
        return _aware(value).astimezone(UTC).isoformat()
    if isinstance(value, dict):
        return {key: _jsonable(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(item) for item in value]
    return value
