"""What ``status`` reports and how it is judged and written: the status types, the problems
(exit 1) and warnings they raise, durations as a person reads them, and the JSON document."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any

# A job further behind Primero than this many of its schedule intervals needs attention.
LAG_INTERVALS = 3


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
    age_seconds: float = 0.0


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
class HeldDepth:
    """Referrals of one department waiting for a person's decision (``awaiting``:
    s3_approval or consent_or_override), and how long the oldest has waited."""

    department: str
    awaiting: str
    count: int
    oldest_seconds: float
    limit_seconds: float


# -- what needs attention beyond the jobs (read by _attention.py) ----------------------------


@dataclass(frozen=True)
class RetryingAge:
    """Messages to one destination that failed at least once and are tried again."""

    destination: str
    retrying: int
    oldest_seconds: float
    # Retrying longer than the limit, and their last error classes (class names only).
    over_limit: int
    limit_seconds: float
    error_classes: tuple[str, ...]


@dataclass(frozen=True)
class GrantNeeded:
    """Primero messages waiting for a permission of the integration role."""

    target: str
    change: str
    messages: int
    jobs: tuple[str, ...]


@dataclass(frozen=True)
class UnreachableDestination:
    """A destination whose latest attempts could not connect, with nothing delivered since."""

    destination: str
    messages: int
    since: datetime
    error_class: str


@dataclass(frozen=True)
class StalledJob:
    """A job whose last ``runs`` runs delivered nothing while ``waiting`` messages queued
    during them are still undelivered."""

    job: str
    runs: int
    waiting: int


@dataclass(frozen=True)
class Attention:
    retrying: list[RetryingAge]
    grants: list[GrantNeeded]
    unreachable: list[UnreachableDestination]
    stalled: list[StalledJob]


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
    held: list[HeldDepth] = field(default_factory=list)
    # The config file the settings came from; None when none was found.
    config_file: str | None = None
    # False when the store could not be read at all (missing, empty, older schema): then
    # ``problems`` says why and everything else is empty.
    store_read: bool = True
    # Retrying too long, permissions missing in Primero, destinations unreachable, stalled
    # jobs (adapter/ops/status/_attention.py).
    attention: Attention | None = None
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
                "config_file": self.config_file,
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
                "held_for_decision": [asdict(h) for h in self.held],
                "dead_letters": self.dead_letters,
                "registry": {
                    "pending_reviews": self.pending_reviews,
                    "overdue_reviews": self.overdue_reviews,
                },
                "keys": [asdict(key) for key in self.keys],
                "audit": {"last_verification": _run_json(self.last_audit_verification)},
                "incidents": asdict(self.incidents),
                "service": {"instances": [asdict(i) for i in self.instances]},
                **_attention_json(self.attention),
            }
        )
        return document


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
    for held in status.held:
        line = (
            f"{held.count} {held.department} referrals wait for a person's decision "
            f"({held.awaiting}), the oldest for {format_duration(held.oldest_seconds)} "
            "(cpims-adapter decisions held)"
        )
        if held.oldest_seconds > held.limit_seconds:
            status.problems.append(f"{line}: longer than {format_duration(held.limit_seconds)}")
        else:
            status.warnings.append(line)
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


def _attention_json(attention: Attention | None) -> dict[str, Any]:
    if attention is None:
        return {"retrying": [], "grants_needed": [], "unreachable": [], "stalled_jobs": []}
    return {
        "retrying": [asdict(age) for age in attention.retrying],
        "grants_needed": [asdict(grant) for grant in attention.grants],
        "unreachable": [asdict(place) for place in attention.unreachable],
        "stalled_jobs": [asdict(job) for job in attention.stalled],
    }


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
