"""Prometheus metrics: the state store read at scrape time, plus two in-process counters.

Scrape-time metrics come from :func:`adapter.ops.status.collect_status` and the runs table, so
every process (daemon, CLI runs from cron, the inbound API) is counted wherever it ran, and a
restarted daemon loses nothing. The in-process counters (failed delivery attempts, registry
checks) count what this process did; Prometheus handles their reset at a restart.

Labels are only ``job``, ``destination``, ``outcome`` and ``kind``: names from the
configuration, run outcomes and exception class names. Never a case, a person or a code.

Build a registry per app with :func:`build_registry` (never the global default registry), so
tests and embedded servers are isolated from each other.
"""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import sqlalchemy as sa
from prometheus_client import CollectorRegistry
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector

from adapter.config import Settings
from adapter.errors import StateError
from adapter.instruments import Histogram, Instruments, instruments
from adapter.ops.status import IncidentSummary, Status, collect_status
from adapter.state import StateStore, schema

PREFIX = "cpims_adapter"
PRIMERO = "primero"  # the outbox destination of write-backs (adapter/jobs/sync.py)
# The SyncReport.stats() counters summed into records_total{outcome} (adapter/jobs/sync.py).
RECORD_OUTCOMES = ("enqueued", "delivered", "refused", "dead_lettered")
STUCK_RUN = timedelta(days=2)
# Upper bounds (seconds) of the run duration histogram: a quiet run takes seconds, a backfill
# of 100k cases an hour or two.
RUN_BUCKETS = (1.0, 5.0, 15.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1800.0, 3600.0, 7200.0)


class _RecordTotals:
    """Running sums of the runs' record counters. Each finished run is read once: a scrape
    reads only runs newer than every run it has already fully counted."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._totals: Counter[tuple[str, str]] = Counter()
        self._durations: dict[str, Histogram] = {}
        self._done_below = 0  # every run with a smaller id is counted
        self._counted: set[int] = set()  # finished runs at or above it, counted

    def read(self, store: StateStore, now: datetime) -> dict[tuple[str, str], int]:
        runs = schema.runs
        # A run "running" for longer than this (its process died and no one took its lease
        # over) stops holding the window back; if it is ever finished it is not counted.
        stale = now - STUCK_RUN
        with self._lock:
            with store.transaction() as conn:
                rows = conn.execute(
                    sa.select(
                        runs.c.id, runs.c.job, runs.c.started_at, runs.c.finished_at, runs.c.stats
                    )
                    .where(runs.c.id >= self._done_below)
                    .order_by(runs.c.id)
                ).all()
            unfinished: list[int] = []
            for run_id, job, started_at, finished_at, stats in rows:
                if finished_at is None:
                    if started_at > stale:
                        unfinished.append(int(run_id))
                    continue
                if run_id in self._counted:
                    continue
                self._counted.add(int(run_id))
                seconds = (finished_at - started_at).total_seconds()
                self._durations.setdefault(str(job), Histogram(RUN_BUCKETS)).observe(
                    max(0.0, seconds)
                )
                for outcome, count in _record_counts(stats).items():
                    self._totals[(str(job), outcome)] += count
            if rows:
                highest = int(rows[-1][0]) + 1
                self._done_below = min([*unfinished, highest])
                self._counted = {i for i in self._counted if i >= self._done_below}
            return dict(self._totals)

    def durations(self) -> dict[str, Histogram]:
        """Run durations by job, of the runs :meth:`read` has counted."""
        with self._lock:
            return {job: h.copy() for job, h in self._durations.items()}


def _record_counts(stats: Any) -> dict[str, int]:
    if not isinstance(stats, dict) or stats.get("dry_run"):
        return {}
    counts: dict[str, int] = {}
    for outcome in RECORD_OUTCOMES:
        value = stats.get(outcome)
        if isinstance(value, dict):
            counts[outcome] = sum(int(v) for v in value.values() if isinstance(v, int))
        elif isinstance(value, int):
            counts[outcome] = value
    return counts


class StateCollector(Collector):
    """Reads the state store at every scrape. If the store cannot be read, it says so with
    ``cpims_adapter_state_store_up 0`` and the in-process counters, rather than failing the
    whole scrape."""

    def __init__(
        self,
        settings: Settings,
        store: StateStore,
        *,
        process: Instruments | None = None,
        incident_summary: IncidentSummary | None = None,
    ) -> None:
        self.settings = settings
        self.store = store
        self.process = process or instruments
        self.incident_summary = incident_summary
        self._records = _RecordTotals()

    def describe(self) -> list[Metric]:
        # Empty: registering must not scrape the store (prometheus_client calls describe()).
        return []

    def collect(self) -> Iterator[Metric]:
        up = GaugeMetricFamily(f"{PREFIX}_state_store_up", "1 if the state store could be read.")
        try:
            families = list(self._from_store())
        except StateError:
            up.add_metric([], 0)
            families = []
        else:
            up.add_metric([], 1)
        yield up
        yield from families
        yield from self._in_process()

    def _from_store(self) -> Iterator[Metric]:
        now = datetime.now(UTC)
        status = collect_status(
            self.settings, self.store, now=now, incident_summary=self.incident_summary
        )
        yield from self._job_metrics(status)
        yield from self._record_metrics(now)
        yield from self._outbox_metrics(status)
        yield from self._decision_metrics(status)
        yield from _review_and_incident_metrics(status)
        yield from _key_metrics(status)

    def _job_metrics(self, status: Status) -> Iterator[Metric]:
        """Runs by outcome; per job its last success, lag and lease."""
        runs = CounterMetricFamily(
            f"{PREFIX}_runs", "Runs recorded in the state store.", labels=["job", "outcome"]
        )
        for (name, outcome), count in sorted(_run_counts(self.store).items()):
            runs.add_metric([name, outcome], count)
        yield runs

        last_success = GaugeMetricFamily(
            f"{PREFIX}_last_success_timestamp_seconds",
            "When the job's last successful run finished (Unix time).",
            labels=["job"],
        )
        lag = GaugeMetricFamily(
            f"{PREFIX}_lag_seconds",
            "How far behind Primero the job is: now minus the newest change it has seen.",
            labels=["job"],
        )
        running = GaugeMetricFamily(
            f"{PREFIX}_job_running", "1 while a process holds the job's lease.", labels=["job"]
        )
        for job in status.jobs:
            if job.last_success_at:
                last_success.add_metric([job.name], job.last_success_at.timestamp())
            if job.lag_seconds is not None:
                lag.add_metric([job.name], job.lag_seconds)
            running.add_metric([job.name], 1 if job.running else 0)
        for task in status.housekeeping:
            if task.last_success_at:
                last_success.add_metric([task.name], task.last_success_at.timestamp())
        yield from (last_success, lag, running)

    def _record_metrics(self, now: datetime) -> Iterator[Metric]:
        """Records by outcome and run durations, per job."""
        records = CounterMetricFamily(
            f"{PREFIX}_records",
            "Records handled by sync runs, by outcome (enqueued, delivered, refused, "
            "dead_lettered).",
            labels=["job", "outcome"],
        )
        for (name, outcome), count in sorted(self._records.read(self.store, now).items()):
            records.add_metric([name, outcome], count)
        yield records

        durations = HistogramMetricFamily(
            f"{PREFIX}_run_duration_seconds",
            "How long finished runs took, by job (housekeeping included).",
            labels=["job"],
        )
        for name, histogram in sorted(self._records.durations().items()):
            durations.add_metric([name], _buckets(histogram), histogram.total)
        yield durations

    def _outbox_metrics(self, status: Status) -> Iterator[Metric]:
        """Outbox depth, dead letters and the oldest retry, per destination."""
        outbox = GaugeMetricFamily(
            f"{PREFIX}_outbox_messages",
            "Messages waiting in the outbox, by destination and outcome (pending, retrying, dead).",
            labels=["destination", "outcome"],
        )
        dead = GaugeMetricFamily(
            f"{PREFIX}_dead_letters",
            "Messages that failed max_attempts times and wait for an operator.",
            labels=["destination"],
        )
        # Every configured destination has a sample, zero included, so an alert on it never
        # sees "no data" for a healthy department.
        dead_by_destination = dict.fromkeys([*self.settings.departments, PRIMERO], 0)
        for depth in status.outbox:
            outbox.add_metric([depth.destination, "pending"], depth.pending)
            outbox.add_metric([depth.destination, "retrying"], depth.retrying)
            outbox.add_metric([depth.destination, "dead"], depth.dead)
            dead_by_destination[depth.destination] = depth.dead
        for destination, count in sorted(dead_by_destination.items()):
            dead.add_metric([destination], count)
        yield from (outbox, dead)

        oldest = GaugeMetricFamily(
            f"{PREFIX}_outbox_oldest_retrying_age_seconds",
            "Age of the oldest message retrying to each destination (0 when none retries).",
            labels=["destination"],
        )
        ages = dict.fromkeys([*self.settings.departments, PRIMERO], 0.0)
        for age in status.attention.retrying if status.attention else []:
            ages[age.destination] = age.oldest_seconds
        for destination, seconds in sorted(ages.items()):
            oldest.add_metric([destination], seconds)
        yield oldest

    def _decision_metrics(self, status: Status) -> Iterator[Metric]:
        """Referrals held for a person's decision, per department."""
        held = GaugeMetricFamily(
            f"{PREFIX}_referrals_awaiting_decision",
            "Referrals held until a person decides (an S3 approval, or an override of "
            "consent), by department.",
            labels=["department"],
        )
        held_age = GaugeMetricFamily(
            f"{PREFIX}_referral_decision_wait_seconds",
            "How long the oldest referral held for a person's decision has waited, by "
            "department (0 when none waits).",
            labels=["department"],
        )
        count_by_department = dict.fromkeys(self.settings.departments, 0)
        oldest_by_department = dict.fromkeys(self.settings.departments, 0.0)
        for waiting in status.held:
            count_by_department[waiting.department] = (
                count_by_department.get(waiting.department, 0) + waiting.count
            )
            oldest_by_department[waiting.department] = max(
                oldest_by_department.get(waiting.department, 0.0), waiting.oldest_seconds
            )
        for department in sorted(count_by_department):
            held.add_metric([department], count_by_department[department])
            held_age.add_metric([department], oldest_by_department[department])
        yield from (held, held_age)

    def _in_process(self) -> Iterator[Metric]:
        errors = CounterMetricFamily(
            f"{PREFIX}_delivery_errors",
            "Failed delivery attempts in this process, by destination and error class (kind).",
            labels=["destination", "kind"],
        )
        for (destination, kind), count in sorted(self.process.delivery_errors().items()):
            errors.add_metric([destination, kind], count)
        yield errors
        checks = CounterMetricFamily(
            f"{PREFIX}_registry_checks",
            "Registry checks answered by this process, by outcome.",
            labels=["outcome"],
        )
        for outcome, count in sorted(self.process.registry_checks().items()):
            checks.add_metric([outcome], count)
        yield checks
        latency = HistogramMetricFamily(
            f"{PREFIX}_http_request_duration_seconds",
            "HTTP calls of this process to Primero and the departments, by destination and "
            "outcome (2xx..5xx, or error when no answer came).",
            labels=["destination", "outcome"],
        )
        for (destination, outcome), histogram in sorted(self.process.http_requests().items()):
            latency.add_metric([destination, outcome], _buckets(histogram), histogram.total)
        yield latency


def _buckets(histogram: Histogram) -> list[tuple[str, float]]:
    """prometheus_client's cumulative buckets: ``(upper bound, count)``, ``+Inf`` last."""
    bounds = [*(str(b) for b in histogram.bounds), "+Inf"]
    counts = histogram.buckets or [0] * len(bounds)
    return list(zip(bounds, (float(c) for c in counts), strict=True))


def _run_counts(store: StateStore) -> dict[tuple[str, str], int]:
    runs = schema.runs
    with store.transaction() as conn:
        # Finished runs only: a counter must never go down, and a running run changes outcome.
        rows = conn.execute(
            sa.select(runs.c.job, runs.c.status, sa.func.count())
            .where(runs.c.finished_at.is_not(None))
            .group_by(runs.c.job, runs.c.status)
        ).all()
    return {(str(job), str(status)): int(count) for job, status, count in rows}


def _review_and_incident_metrics(status: Status) -> Iterator[Metric]:
    """Registry reviews and breach incidents: pending or open, and overdue."""
    reviews = GaugeMetricFamily(
        f"{PREFIX}_registry_pending_reviews",
        "Registry checks waiting for an officer's review, and those past their due date.",
        labels=["outcome"],
    )
    reviews.add_metric(["pending"], status.pending_reviews)
    reviews.add_metric(["overdue"], status.overdue_reviews)
    yield reviews

    incidents = GaugeMetricFamily(
        f"{PREFIX}_incidents",
        "Open breach incidents, and those past their notification deadline.",
        labels=["outcome"],
    )
    incidents.add_metric(["open"], status.incidents.open)
    incidents.add_metric(["overdue"], status.incidents.overdue)
    yield incidents


def _key_metrics(status: Status) -> Iterator[Metric]:
    """The age of the oldest active key of each role."""
    key_age = GaugeMetricFamily(
        f"{PREFIX}_key_age_days",
        "Age of the oldest active key of each role (kind).",
        labels=["kind"],
    )
    key_age_seconds = GaugeMetricFamily(
        f"{PREFIX}_key_age_seconds",
        "Age of the oldest active key of each role (kind).",
        labels=["kind"],
    )
    for key in status.keys:
        key_age.add_metric([key.role], key.age_days)
        key_age_seconds.add_metric([key.role], key.age_seconds)
    yield key_age
    yield key_age_seconds


def build_registry(
    settings: Settings,
    store: StateStore,
    *,
    process: Instruments | None = None,
    incident_summary: IncidentSummary | None = None,
) -> CollectorRegistry:
    """A fresh registry with the state collector (and this process's counters) in it."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(
        StateCollector(settings, store, process=process, incident_summary=incident_summary)
    )
    return registry
