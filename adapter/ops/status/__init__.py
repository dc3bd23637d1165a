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

``_queries`` reads the store; ``_report`` holds the status types, judges them (problems,
warnings) and writes the JSON document; ``_attention`` reads and judges the queues (retrying
too long, permissions missing in Primero, destinations unreachable, stalled jobs).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from adapter.clock import utcnow
from adapter.config import Settings
from adapter.jobs.pull import STREAM_CASES
from adapter.ops.status._attention import judge_attention, read_attention
from adapter.ops.status._queries import (
    KEY_AGE_WARN_DAYS,
    REGISTRY_PENDING,
    IncidentSummary,
    _host_pid,
    _incidents,
    _job_status,
    _key_ages,
    _last_ok_windows,
    _last_runs,
    _last_successes,
    _outbox_depths,
    _reviews,
    job_trigger,
    schedule_interval,
)
from adapter.ops.status._readiness import (
    judge_readiness,
    missing_store_file,
    schema_problem,
    unready_status,
)
from adapter.ops.status._report import (
    LAG_INTERVALS,
    Attention,
    GrantNeeded,
    HeldDepth,
    HousekeepingStatus,
    IncidentCounts,
    InstanceSummary,
    JobStatus,
    KeyAge,
    OutboxDepth,
    RetryingAge,
    RunSummary,
    StalledJob,
    Status,
    UnreachableDestination,
    _judge,
    format_duration,
)
from adapter.state import StateStore, schema
from adapter.state.held import HeldReferrals, HeldSummary
from adapter.state.service import Instances
from adapter.state.store import process_owner

# The runs row ``cpims-adapter audit verify`` records (adapter/cli/_privacy.py).
AUDIT_VERIFY_JOB = "audit-verify"
# Housekeeping that records runs like a job does (retention, breach handling, audit).
HOUSEKEEPING_JOBS = ("retention", "incidents", AUDIT_VERIFY_JOB)
# Where the daemon (`cpims-adapter run`) records a job's actual next fire time, so ``status``
# shows the scheduler's own answer (jitter, misfires) instead of one computed from the
# schedule. A cursor row needs no migration: (job, NEXT_RUN_STREAM) -> ISO 8601 UTC.
NEXT_RUN_STREAM = "scheduler-next-run"


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
        leases = _held_leases(conn)
        cursors = _job_cursors(conn)
        ok_windows = _last_ok_windows(conn, list(settings.jobs))
        outbox = _outbox_depths(conn)
        pending_reviews, overdue_reviews = _reviews(conn, now)
        keys = _key_ages(conn, now)
        held = HeldReferrals(store).summary(conn)
        attention = read_attention(conn, settings, now)

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
        held=_held_depths(held, settings, now),
        instances=_running_instances(store, now),
        config_file=str(settings.config_file) if settings.config_file else None,
        attention=attention,
    )
    _judge(status)
    judge_readiness(status, settings)
    judge_attention(status, attention)
    return status


def _held_leases(conn: Connection) -> dict[str, Any]:
    """Every lease a process holds, by name."""
    return {
        row.name: row
        for row in conn.execute(sa.select(schema.leases).where(schema.leases.c.owner.is_not(None)))
    }


def _job_cursors(conn: Connection) -> dict[tuple[str, str], str]:
    """The jobs' case watermarks and recorded next runs, by (job, stream)."""
    return {
        (row.job, row.stream): row.value
        for row in conn.execute(
            sa.select(schema.cursors).where(
                schema.cursors.c.stream.in_([STREAM_CASES, NEXT_RUN_STREAM])
            )
        )
    }


def _held_depths(held: list[HeldSummary], settings: Settings, now: datetime) -> list[HeldDepth]:
    """Referrals waiting for a person's decision, with the age of the oldest."""
    return [
        HeldDepth(
            h.department,
            h.awaiting,
            h.count,
            max(0.0, (now - h.oldest).total_seconds()),
            settings.decisions.attention_after_hours * 3600,
        )
        for h in held
    ]


def _running_instances(store: StateStore, now: datetime) -> list[InstanceSummary]:
    """The adapter processes that have not said they stopped."""
    return [
        InstanceSummary(_host_pid(i.owner), i.version, i.started_at, i.last_seen, i.live(now))
        for i in Instances(store).all()
        if i.stopped_at is None
    ]


def store_status(
    settings: Settings,
    *,
    now: datetime | None = None,
    incident_summary: IncidentSummary | None = None,
) -> Status:
    """What ``cpims-adapter status`` prints: :func:`collect_status` of the configured store,
    opened without changing it. A store that does not exist, is empty or has an older schema
    is reported as that one problem (nothing else can be read from it), never created or
    migrated: ``status`` is a monitoring check, and must not make a lost store look new."""
    now = now or utcnow()
    missing = missing_store_file(settings.state.url)
    if missing is not None:
        return unready_status(settings, missing, now)
    with StateStore(settings.state.url, migrate=False) as store:
        problem = schema_problem(store)
        if problem is not None:
            return unready_status(settings, problem, now)
        return collect_status(settings, store, now=now, incident_summary=incident_summary)


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


__all__ = [
    "AUDIT_VERIFY_JOB",
    "HOUSEKEEPING_JOBS",
    "KEY_AGE_WARN_DAYS",
    "LAG_INTERVALS",
    "NEXT_RUN_STREAM",
    "REGISTRY_PENDING",
    "Attention",
    "GrantNeeded",
    "HeldDepth",
    "HousekeepingStatus",
    "IncidentCounts",
    "IncidentSummary",
    "InstanceSummary",
    "JobStatus",
    "KeyAge",
    "OutboxDepth",
    "RecordedRun",
    "RetryingAge",
    "RunSummary",
    "StalledJob",
    "Status",
    "UnreachableDestination",
    "collect_status",
    "format_duration",
    "job_trigger",
    "record_next_run",
    "recorded_run",
    "schedule_interval",
    "store_status",
]
