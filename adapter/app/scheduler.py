"""Scheduling: which work runs when, and the one entry point every engine calls.

``run_job(name, settings)`` is idempotent and lease-guarded, so whatever triggers it — the
APScheduler of ``cpims-adapter run``, a Celery task, a Temporal activity, an Airflow task, a
cron line calling ``cpims-adapter sync`` — correctness never depends on the trigger
(architecture.md §2.3: "every job body is run_job(name), which takes a lease in the state
store"). A trigger that fires while another instance runs the job gets ``skipped``.

The schedule comes from the configuration, never from a persisted job store: APScheduler 3.x
cannot share a job store between processes (its FAQ: "You can't"), and it need not — every
instance registers the same schedule and the lease decides who runs (architecture.md §2.1).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from apscheduler.triggers.base import BaseTrigger
from apscheduler.triggers.cron import CronTrigger
from apscheduler.triggers.interval import IntervalTrigger

from adapter.app.jobs import open_job
from adapter.config import JobSettings, Settings
from adapter.errors import LeaseHeld
from adapter.state import StateStore

log = logging.getLogger("adapter.app.scheduler")

StopCheck = Callable[[], bool]


@dataclass(frozen=True)
class RunOutcome:
    """What one triggered run came to: ``ok``, ``interrupted`` (stopped between pages by a
    shutdown or its deadline; the next run resumes), ``skipped`` (another instance holds the
    job's lease) or ``failed``. ``stats`` are counts only."""

    job: str
    status: str
    stats: dict[str, Any] = field(default_factory=dict)
    error_class: str | None = None


def run_job(name: str, settings: Settings, *, should_stop: StopCheck | None = None) -> RunOutcome:
    """Run sync job ``name`` once. Safe to call from any engine, any number of times, from any
    number of hosts: a second concurrent call returns ``skipped``; a call after a crash resumes
    from the last committed page. Errors other than "already running" are raised, so an
    engine's own retry policy sees them (``adapter.errors.AdapterError`` subclasses carry no
    personal data)."""
    deadline = time.monotonic() + settings.job(name).deadline_seconds

    def stop() -> bool:
        return time.monotonic() > deadline or (should_stop is not None and should_stop())

    try:
        with open_job(settings, name) as job:
            report = job.run(should_stop=stop)
    except LeaseHeld:
        return RunOutcome(name, "skipped")
    return RunOutcome(name, report.status, report.stats())


def trigger_for(job: JobSettings, *, jitter_seconds: int = 0) -> BaseTrigger:
    """The APScheduler trigger of a job: its UTC crontab if set, else every ``every_seconds``."""
    if job.cron:
        return CronTrigger.from_crontab(job.cron, timezone="UTC")
    return IntervalTrigger(seconds=job.every_seconds, jitter=jitter_seconds or None, timezone="UTC")


@dataclass(frozen=True)
class Housekeeping:
    """A service task beside the sync jobs (incident checks, retention, audit verification).
    ``run`` takes the settings, the state store and a stop check; it records its own runs."""

    name: str
    trigger: Callable[[], BaseTrigger]
    run: Callable[[Settings, StateStore, StopCheck], None]
