"""An incremental pull of Primero cases: lease → window → pages → watermark per page → report.

This is the first half of every sync run (architecture.md §5.2); the sync engine adds policy,
mapping and the outbox inside ``on_page``. The rules that make it lose nothing:

- the window's upper bound (the *signpost*) is the run's start minus ``lag_seconds``, so a
  Primero transaction still committing cannot be skipped, and the watermark never passes it;
- the lower bound is the watermark's second, closed, and already-handled versions inside it
  are skipped (``Watermark``);
- the watermark is committed after each page, in the same transaction as the page's work, so
  a crash re-reads at most one page. ``on_page`` gets the page's new records, does its I/O
  (fetching referrals, deciding), and returns a writer that runs inside that transaction —
  so no HTTP call ever holds the state store's write lock.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

from sqlalchemy.engine import Connection

from adapter.errors import AdapterError, LeaseHeld
from adapter.jobs.watermark import Watermark, parse_primero_time
from adapter.state import StateStore
from adapter.state.store import Lease, process_owner

log = logging.getLogger("adapter.jobs")

STREAM_CASES = "cases"

PageWriter = Callable[[Connection], None]
PageHandler = Callable[[Sequence[Mapping[str, Any]]], PageWriter | None]


class CaseSource(Protocol):
    """What a pull needs from the Primero client."""

    def iter_case_pages(
        self,
        updated_since: datetime | None,
        updated_until: datetime | None = None,
        fields: Sequence[str] | None = None,
    ) -> Any: ...


@dataclass
class PullReport:
    """What one pull did, without any personal data."""

    job: str
    status: str = "running"
    window_from: datetime | None = None
    window_to: datetime | None = None
    pages: int = 0
    records_read: int = 0
    records_new: int = 0
    records_already_seen: int = 0
    newest_change: datetime | None = None
    duration_seconds: float = 0.0
    run_id: int | None = None
    new_ids: list[str] = field(default_factory=list, repr=False)

    def stats(self) -> dict[str, Any]:
        return {
            "pages": self.pages,
            "records_read": self.records_read,
            "records_new": self.records_new,
            "records_already_seen": self.records_already_seen,
            "window_from": self.window_from.isoformat() if self.window_from else None,
            "window_to": self.window_to.isoformat() if self.window_to else None,
            "newest_change": self.newest_change.isoformat() if self.newest_change else None,
        }


def pull_cases(
    client: CaseSource,
    store: StateStore,
    job: str,
    *,
    lag_seconds: float,
    lease_seconds: float = 900,
    fields: Sequence[str] | None = None,
    since: datetime | None = None,
    on_page: PageHandler | None = None,
    now: datetime | None = None,
    keep_ids: bool = False,
    dry_run: bool = False,
    lease: Lease | None = None,
    should_stop: Callable[[], bool] | None = None,
) -> PullReport:
    """Pull the cases changed since ``job``'s watermark (or ``since``) and advance it.

    Raises ``LeaseHeld`` if another process is running ``job``. With ``dry_run`` the
    watermark stays where it was (``on_page`` still runs; its writer does not). A caller that
    already holds the job's ``lease`` (the sync engine) passes it, and records the run itself.
    ``should_stop`` is asked after every committed page (SIGTERM, a run's deadline): when it
    says so the pull ends there with ``status = "interrupted"`` and loses nothing, since the
    next run resumes from the watermark that page committed.
    """
    started = time.monotonic()
    own_lease = lease is None
    if lease is None:
        lease = store.acquire_lease(f"job:{job}", process_owner(), lease_seconds)
        if lease is None:
            raise LeaseHeld(f"job '{job}' is already running in another process; this run skipped.")
    report = PullReport(job=job)
    if own_lease:
        report.run_id = store.start_run(job, lease.owner)
    try:
        watermark = (
            Watermark() if since else Watermark.from_text(store.get_cursor(job, STREAM_CASES))
        )
        signpost = (now or datetime.now(UTC)) - timedelta(seconds=lag_seconds)
        lower = since or watermark.second
        report.window_from, report.window_to = lower, signpost
        if lower is None or lower <= signpost:
            for page in client.iter_case_pages(
                updated_since=lower, updated_until=signpost, fields=fields
            ):
                fresh = _fresh(list(page.records), watermark, signpost, report, keep_ids)
                watermark = watermark.advance(fresh)
                writer = on_page(fresh) if on_page is not None and fresh else None
                _commit_page(store, job, lease, lease_seconds, writer, watermark, dry_run)
                if should_stop is not None and should_stop():
                    report.status = "interrupted"
                    break
        report.newest_change = watermark.second
        if report.status != "interrupted":
            report.status = "ok"
    except BaseException as exc:
        report.status = "failed"
        report.duration_seconds = time.monotonic() - started
        # Our own errors are written free of personal data; anything else keeps only its class.
        message = str(exc) if isinstance(exc, AdapterError) else None
        if report.run_id is not None:
            store.finish_run(report.run_id, "failed", report.stats(), type(exc).__name__, message)
        raise
    finally:
        if own_lease:
            store.release_lease(lease)
    report.duration_seconds = time.monotonic() - started
    if report.run_id is not None:
        store.finish_run(report.run_id, "ok", report.stats())
    log.info(
        "job %s pulled %d new of %d read in %d pages",
        job,
        report.records_new,
        report.records_read,
        report.pages,
    )
    return report


def _fresh(
    records: list[Mapping[str, Any]],
    watermark: Watermark,
    signpost: datetime,
    report: PullReport,
    keep_ids: bool,
) -> list[Mapping[str, Any]]:
    """The page's records the watermark has not seen and that changed before the signpost,
    counted into ``report``."""
    report.pages += 1
    report.records_read += len(records)
    fresh = [
        r
        for r in records
        if watermark.is_new(r) and parse_primero_time(r["last_updated_at"]) <= signpost
    ]
    report.records_already_seen += len(records) - len(fresh)
    report.records_new += len(fresh)
    if keep_ids:
        report.new_ids.extend(str(r["id"]) for r in fresh)
    return fresh


def _commit_page(
    store: StateStore,
    job: str,
    lease: Lease,
    lease_seconds: float,
    writer: PageWriter | None,
    watermark: Watermark,
    dry_run: bool,
) -> None:
    """Renew the lease, run the page's writer and move the watermark, in one transaction
    (a dry run only renews the lease)."""
    if not dry_run:
        with store.transaction() as conn:
            # The fence first: a run that lost its lease commits nothing more.
            if store.renew_lease(lease, lease_seconds, conn) is None:
                raise LeaseHeld(f"job '{job}' lost its lease mid-run; stopped safely.")
            if writer is not None:
                writer(conn)
            store.set_cursor(job, STREAM_CASES, watermark.to_text(), conn)
    elif store.renew_lease(lease, lease_seconds) is None:
        raise LeaseHeld(f"job '{job}' lost its lease mid-run; stopped safely.")
