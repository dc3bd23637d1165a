"""Helpers shared by the fault tests: short outbox backoffs, Retry-After checks."""

from __future__ import annotations

import itertools
import time
from collections import defaultdict
from collections.abc import Callable
from typing import Any

import pytest
import requests
import sqlalchemy as sa

import adapter.state.outbox as outbox_module
from adapter.app.jobs import open_job
from adapter.config import Settings
from adapter.errors import AdapterError
from adapter.jobs.sync import SyncReport
from adapter.simulator.faults import FaultInjector
from adapter.simulator.primero import PrimeroSimulator
from adapter.state import StateStore, schema

# Retry-After is whole seconds; the outbox stores the next attempt at (not before) that time,
# and clocks of two processes on one host agree, so a little slack covers timer granularity.
SLACK_SECONDS = 0.05


def short_backoff(monkeypatch: pytest.MonkeyPatch) -> None:
    """The outbox's backoff (5 s base, adapter/state/outbox.py) shrunk to tens of
    milliseconds, so a test retries many times in seconds. Retry-After is left as it is."""

    def quick(attempts: int, base: float = 0.02, cap: float = 0.1) -> float:
        return float(min(cap, base * attempts))

    monkeypatch.setattr(outbox_module, "backoff_seconds", quick)


def assert_retry_after_honoured(injector: FaultInjector) -> None:
    """After a throttle (503/429 + Retry-After) on a write with an Idempotency-Key, the same
    key came back no sooner than Retry-After said."""
    by_key: dict[str, list[tuple[float, str | None]]] = defaultdict(list)
    for at, _method, _path, key, kind in injector.events:
        if key:
            by_key[key].append((at, kind))
    retry_after = {
        rule.kind: rule.retry_after for rule in injector.plan.rules if rule.kind == "throttle"
    }
    wait = float(retry_after.get("throttle") or 0)
    early = []
    for key, seen in by_key.items():
        for (at, kind), (next_at, _) in itertools.pairwise(seen):
            if kind == "throttle" and next_at - at < wait - SLACK_SECONDS:
                early.append((key[:8], round(next_at - at, 3)))
    assert not early, f"re-sent before Retry-After ({wait}s) ran out: {early}"


MAX_RUNS = 60


class Runner:
    """Runs one sync job again and again, as a scheduler would, until it is quiescent."""

    def __init__(self, settings: Settings, job: str, sim: PrimeroSimulator) -> None:
        self.settings = settings
        self.job = job
        self.sim = sim
        self.errors: list[str] = []

    def run(self) -> SyncReport | None:
        """One run; a run stopped by trouble it could not wait out is a run like any other
        (the next one resumes from the watermark). Only AdapterErrors may stop a run."""
        try:
            with open_job(self.settings, self.job) as job:
                return job.run()
        except AdapterError as exc:
            self.errors.append(f"{type(exc).__name__}: {exc}")
            return None

    def until_quiet(self, done: Callable[[], bool] = lambda: True) -> int:
        """Re-run until a run found nothing to do, nothing is pending and ``done()`` holds."""
        report: SyncReport | None = None
        for runs in range(1, MAX_RUNS + 1):
            # Each run signs in once (session auth). Scheduled runs are minutes apart; these
            # are not, so Rack::Attack's six sign-ins a minute (primero-api.md §2) would
            # end the test: its window is reset between runs.
            with self.sim.state.lock:
                self.sim.state.rate_windows.clear()
            report = self.run()
            quiet = (
                report is not None
                and not report.enqueued
                and not report.delivered
                and not report.write_backs
                and not report.status_updates
                and not report.retrying
                and outbox_left(self.settings.state.url) == {}
            )
            if quiet and done():
                return runs
            time.sleep(0.1)  # past the shortest backoff; a Retry-After (1 s) takes some runs
        last = report.stats() if report else None
        pytest.fail(
            f"not quiescent after {MAX_RUNS} runs; outbox {outbox_left(self.settings.state.url)}"
            f"; done: {done()}; dead letters: {dead_letters(self.settings.state.url)}"
            f"; last run: {last}; last errors: {self.errors[-3:]}"
        )


def outbox_left(state_url: str) -> dict[str, int]:
    """Outbox rows not sent, by status (pending, dead)."""
    with StateStore(state_url) as store, store.transaction() as conn:
        rows = conn.execute(
            sa.select(schema.outbox.c.status, sa.func.count())
            .where(schema.outbox.c.status != "sent")
            .group_by(schema.outbox.c.status)
        ).all()
    return {status: count for status, count in rows}


def dead_letters(state_url: str) -> list[tuple[str, str, str | None, str | None]]:
    """(destination, kind, error class, error) of each dead letter: no personal data."""
    outbox = schema.outbox
    with StateStore(state_url) as store, store.transaction() as conn:
        rows = conn.execute(
            sa.select(
                outbox.c.destination, outbox.c.kind, outbox.c.last_error_class, outbox.c.last_error
            ).where(outbox.c.status == "dead")
        ).all()
    return [tuple(row) for row in rows]  # type: ignore[misc]


def install_faults(url: str, rules: list[dict[str, Any]], seed: int, **extra: Any) -> None:
    """POST a fault plan to a simulator's (or the fault proxy's) control API."""
    answer = requests.post(
        f"{url}/_sim/faults", json={"seed": seed, "rules": rules, **extra}, timeout=5
    )
    answer.raise_for_status()


def fired_and_cleared(*urls: str) -> dict[str, int]:
    """Faults fired at each simulator, added up; then every plan is removed."""
    fired: dict[str, int] = {}
    for url in urls:
        report = requests.get(f"{url}/_sim/faults", timeout=5).json()["plan"]
        if report:
            for kind, count in report["fired"].items():
                fired[kind] = fired.get(kind, 0) + count
        requests.delete(f"{url}/_sim/faults", timeout=5).raise_for_status()
    return fired
