"""``run_retention``: one pass of policy §3.6 over what the adapter holds.

1. Pull the cases Primero changed since the job ``retention``'s own watermark (``pull_cases``,
   only the fields below). For each case the adapter holds data about (a row in ``links``):
   closed and not archived → archived and counted once in the aggregates; archived but no
   longer closed (reopened) → un-archived and its count reversed; already destroyed (a
   tombstone) → never archived again, and any live row that reappeared is deleted.
2. Destroy every archive whose ``destroy_after`` has passed (crypto-shred; tombstone kept).

The run takes the lease ``job:retention`` and is recorded in ``runs`` with counts only.

A dry run is a rehearsal of the irreversible step, so its counts must be the real run's. It
pulls the same pages, keeps the records step 1 would act on (no status, held in ``links``, or
with an archive row), then replays them and step 2 in **one** transaction that is rolled back:
step 2 sees what step 1 archived or un-archived, as in the real run (a case closed more than
``retain_years`` ago is archived and destroyed in the same run). Nothing changes, not even the
watermark.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from adapter.clock import utcnow
from adapter.errors import AdapterError, LeaseHeld
from adapter.jobs.pull import CaseSource, PullReport, pull_cases
from adapter.jobs.watermark import parse_primero_time
from adapter.privacy.keys import KeyRing
from adapter.privacy.policy import PolicySet
from adapter.retention._crypto import case_ref, case_ref_key
from adapter.retention._tables import case_archives
from adapter.retention.aggregates import contribution
from adapter.retention.archive import archive_case, destroy_case, purge_case, unarchive_case
from adapter.state import Lease, StateStore
from adapter.state.schema import links
from adapter.state.store import process_owner

if TYPE_CHECKING:  # adapter.config imports this package's settings: no cycle at runtime
    from adapter.config import Settings

log = logging.getLogger("adapter.retention")

JOB = "retention"
# Only what closure detection and the aggregates need (STYLE.md: request the minimum).
FIELDS = (
    "status",
    "date_closure",
    "location_current",
    "age",
    "date_of_birth",
    "sex",
    "protection_concerns",
    "protection_concern_detail_subform_section",
    "module_id",
)
CLOSED = "closed"
_DESTROY_BATCH = 200

Progress = Callable[[str, int, int], None]


@dataclass
class RetentionReport:
    """What one run did (or, dry, would do): counts only, never a case id."""

    dry_run: bool
    cases_read: int = 0
    archived: int = 0
    unarchived: int = 0
    destroyed: int = 0
    destroyed_unreadable: int = 0
    tombstoned_seen: int = 0
    status_unknown: int = 0
    purged_links: int = 0
    links_blanked: int = 0
    payloads_archived: int = 0
    inbox_bodies_archived: int = 0
    outbox_held: int = 0
    interrupted: bool = False
    duration_seconds: float = 0.0
    run_id: int | None = None
    extra: dict[str, Any] = field(default_factory=dict, repr=False)

    def stats(self) -> dict[str, Any]:
        """The counts recorded in ``runs.stats``."""
        return {
            "dry_run": self.dry_run,
            "cases_read": self.cases_read,
            "archived": self.archived,
            "unarchived": self.unarchived,
            "destroyed": self.destroyed,
            "destroyed_unreadable": self.destroyed_unreadable,
            "tombstoned_seen": self.tombstoned_seen,
            "status_unknown": self.status_unknown,
            "purged_links": self.purged_links,
            "links_blanked": self.links_blanked,
            "payloads_archived": self.payloads_archived,
            "inbox_bodies_archived": self.inbox_bodies_archived,
            "outbox_held": self.outbox_held,
        }


class _Rollback(Exception):
    """Raised inside a dry run's transaction so that it rolls back."""


@contextmanager
def _unit(store: StateStore, dry_run: bool) -> Iterator[Connection]:
    """A transaction that commits, or (dry run) always rolls back."""
    try:
        with store.transaction() as conn:
            yield conn
            if dry_run:
                raise _Rollback
    except _Rollback:
        pass


def add_years(moment: datetime, years: int) -> datetime:
    """``moment`` plus whole calendar years (29 February becomes 28 February)."""
    try:
        return moment.replace(year=moment.year + years)
    except ValueError:
        return moment.replace(year=moment.year + years, day=28)


def closed_at(case: Mapping[str, Any]) -> datetime:
    """When the case closed: ``date_closure`` (a date, or a time), else ``last_updated_at``."""
    value = case.get("date_closure")
    if isinstance(value, str) and value:
        try:
            if len(value) == 10:
                day = date.fromisoformat(value)
                return datetime(day.year, day.month, day.day, tzinfo=UTC)
            return parse_primero_time(value)
        except ValueError:
            pass  # a malformed closure date: fall back to the record's own clock
    return parse_primero_time(str(case["last_updated_at"]))


class _Pass:
    """The per-page work, shared by real and dry runs."""

    def __init__(
        self,
        settings: Settings,
        keyring: KeyRing,
        policy: PolicySet,
        report: RetentionReport,
        now: datetime,
    ) -> None:
        self.years = settings.retention.retain_years
        self.keyring = keyring
        self.policy = policy
        self.report = report
        self.now = now

    def relevant(
        self, conn: Connection, records: Sequence[Mapping[str, Any]]
    ) -> list[Mapping[str, Any]]:
        """The records :meth:`page` would do or count more with than read: no status, held in
        ``links``, or with an archive row. A dry run keeps only these for its replay, so a
        first run over a large Primero holds the adapter's own cases in memory, not all."""
        ids = list({str(r["id"]) for r in records})
        keep = set(
            conn.execute(
                sa.select(links.c.case_id).where(links.c.case_id.in_(ids)).distinct()
            ).scalars()
        )
        key = case_ref_key(conn, self.keyring, create=False, now=self.now)
        if key is not None:
            refs = {case_ref(key, case_id): case_id for case_id in ids}
            keep.update(
                refs[ref]
                for ref in conn.execute(
                    sa.select(case_archives.c.case_ref).where(
                        case_archives.c.case_ref.in_(list(refs))
                    )
                ).scalars()
            )
        return [r for r in records if not isinstance(r.get("status"), str) or str(r["id"]) in keep]

    def page(self, conn: Connection, records: Sequence[Mapping[str, Any]]) -> None:
        self.report.cases_read += len(records)
        by_id = {str(r["id"]): r for r in records}
        held = set(
            conn.execute(
                sa.select(links.c.case_id).where(links.c.case_id.in_(list(by_id))).distinct()
            ).scalars()
        )
        key = case_ref_key(conn, self.keyring, create=False, now=self.now)
        for case_id, record in by_id.items():
            if not isinstance(record.get("status"), str):
                # No status to go by (not returned, or not readable): never guess "reopened",
                # which would un-archive a closed case.
                self.report.status_unknown += 1
                continue
            closed = record["status"] == CLOSED
            state = None
            if key is not None:
                ref = case_ref(key, case_id)
                state = conn.execute(
                    sa.select(case_archives.c.destroyed_at).where(case_archives.c.case_ref == ref)
                ).first()
            if state is not None and state.destroyed_at is not None:
                self.report.tombstoned_seen += 1
                if case_id in held:
                    self.report.purged_links += purge_case(conn, case_id)
            elif state is not None and not closed:
                unarchive_case(conn, self.keyring, ref=ref, now=self.now)
                self.report.unarchived += 1
            elif state is None and closed and case_id in held:
                key = key or case_ref_key(conn, self.keyring, create=True, now=self.now)
                assert key is not None
                when = closed_at(record)
                moved = archive_case(
                    conn,
                    self.keyring,
                    case_id=case_id,
                    ref=case_ref(key, case_id),
                    cell=contribution(record, self.policy, when),
                    closed_at=when,
                    destroy_after=add_years(when, self.years),
                    now=self.now,
                )
                self.report.archived += 1
                self.report.links_blanked += moved.links
                self.report.payloads_archived += moved.payloads
                self.report.inbox_bodies_archived += moved.inbox_bodies
                self.report.outbox_held += moved.outbox_held


def destroy_due(
    store: StateStore,
    keyring: KeyRing,
    *,
    now: datetime,
    dry_run: bool = False,
    report: RetentionReport | None = None,
    progress: Progress | None = None,
    fence: Callable[[Connection], None] | None = None,
    should_stop: Callable[[], bool] | None = None,
) -> RetentionReport:
    """Crypto-shred every archive whose ``destroy_after`` has passed (batches of 200, one
    transaction each). ``fence`` runs first in each batch's transaction (a run that lost its
    lease raises there and commits nothing); ``should_stop`` is asked between batches. Also
    what a restore runs first (see ``adapter.retention.backup``). ``dry_run`` counts in one
    transaction that is rolled back."""
    report = report or RetentionReport(dry_run=dry_run)
    if dry_run:
        with _unit(store, True) as conn:
            _destroy_in(conn, keyring, now, report, progress, should_stop)
        return report
    with store.transaction() as conn:
        due = _due(conn, now)
    for start in range(0, len(due), _DESTROY_BATCH):
        if should_stop is not None and should_stop():
            report.interrupted = True
            break
        with store.transaction() as conn:
            if fence is not None:
                fence(conn)
            _destroy(conn, keyring, due[start : start + _DESTROY_BATCH], now, report)
        if progress is not None:
            progress("destroy", min(start + _DESTROY_BATCH, len(due)), len(due))
    return report


def _due(conn: Connection, now: datetime) -> list[str]:
    return list(
        conn.execute(
            sa.select(case_archives.c.case_ref)
            .where(case_archives.c.destroyed_at.is_(None), case_archives.c.destroy_after <= now)
            .order_by(case_archives.c.destroy_after)
        ).scalars()
    )


def _destroy(
    conn: Connection, keyring: KeyRing, refs: Sequence[str], now: datetime, report: RetentionReport
) -> None:
    for ref in refs:
        if destroy_case(conn, keyring, ref=ref, now=now):
            report.destroyed += 1
        else:
            report.destroyed_unreadable += 1


def _destroy_in(
    conn: Connection,
    keyring: KeyRing,
    now: datetime,
    report: RetentionReport,
    progress: Progress | None,
    should_stop: Callable[[], bool] | None,
) -> None:
    """Step 2 inside one (dry run) transaction, batch by batch like the real run."""
    due = _due(conn, now)
    for start in range(0, len(due), _DESTROY_BATCH):
        if should_stop is not None and should_stop():
            report.interrupted = True
            break
        _destroy(conn, keyring, due[start : start + _DESTROY_BATCH], now, report)
        if progress is not None:
            progress("destroy", min(start + _DESTROY_BATCH, len(due)), len(due))


def run_retention(
    settings: Settings,
    store: StateStore,
    keyring: KeyRing,
    client: CaseSource,
    *,
    policy: PolicySet | None = None,
    now: datetime | None = None,
    dry_run: bool = False,
    progress: Progress | None = None,
    should_stop: Callable[[], bool] | None = None,
) -> RetentionReport:
    """One retention pass (see the module docstring). Raises ``LeaseHeld`` if another process
    is running it. ``now`` may be moved forward in tests to reach ``destroy_after``.
    ``should_stop`` (SIGTERM, a deadline) is asked after every page and destruction batch; an
    interrupted run loses nothing (the next one resumes from the committed watermark)."""
    started = time.monotonic()
    now = now or utcnow()
    policy = policy or PolicySet.load(settings.privacy.policy_dir)
    owner = process_owner()
    lease = store.acquire_lease(f"job:{JOB}", owner, settings.sync.lease_seconds)
    if lease is None:
        raise LeaseHeld(f"job '{JOB}' is already running in another process; this run skipped.")
    report = RetentionReport(dry_run=dry_run)
    work = _Pass(settings, keyring, policy, report, now)
    run = _Run(settings, store, keyring, work, report, lease, now, dry_run, progress, should_stop)
    try:
        if not dry_run:
            report.run_id = store.start_run(JOB, owner)
        if run.pull(client).status == "interrupted":
            report.interrupted = True
        run.destroy()
    except BaseException as exc:
        report.duration_seconds = time.monotonic() - started
        message = str(exc) if isinstance(exc, AdapterError) else None
        if report.run_id is not None:
            store.finish_run(report.run_id, "failed", report.stats(), type(exc).__name__, message)
        raise
    finally:
        store.release_lease(lease)
    report.duration_seconds = time.monotonic() - started
    if report.run_id is not None:
        store.finish_run(
            report.run_id, "interrupted" if report.interrupted else "ok", report.stats()
        )
    log.info(
        "retention: %d archived, %d un-archived, %d destroyed%s",
        report.archived,
        report.unarchived,
        report.destroyed,
        " (dry run)" if dry_run else "",
    )
    return report


@dataclass
class _Run:
    """The two steps of one pass under its lease: pull the closed cases page by page (a dry
    run keeps the pages for its one transaction), then destroy what is due."""

    settings: Settings
    store: StateStore
    keyring: KeyRing
    work: _Pass
    report: RetentionReport
    lease: Lease
    now: datetime
    dry_run: bool
    progress: Progress | None
    should_stop: Callable[[], bool] | None
    pages: int = 0
    replay: list[list[Mapping[str, Any]]] = field(default_factory=list)

    def pull(self, client: CaseSource) -> PullReport:
        return pull_cases(
            client,
            self.store,
            JOB,
            lag_seconds=self.settings.sync.lag_seconds,
            lease_seconds=self.settings.sync.lease_seconds,
            should_stop=self.should_stop,
            fields=FIELDS,
            on_page=self.on_page,
            now=self.now,
            dry_run=self.dry_run,
            lease=self.lease,
        )

    def on_page(self, records: Sequence[Mapping[str, Any]]) -> Callable[[Connection], None] | None:
        self.pages += 1
        if self.progress is not None:
            self.progress("pull", self.pages, 0)
        if self.dry_run:
            with self.store.transaction() as conn:
                kept = self.work.relevant(conn, records)
            self.report.cases_read += len(records) - len(kept)
            if kept:
                self.replay.append(kept)
            return None
        return lambda conn: self.work.page(conn, records)

    def destroy(self) -> None:
        report = self.report
        if self.dry_run:
            # One rolled-back transaction: step 2 sees what step 1 did (module docstring).
            with _unit(self.store, True) as conn:
                for records in self.replay:
                    self.work.page(conn, records)
                if not report.interrupted:
                    progress, stop = self.progress, self.should_stop
                    _destroy_in(conn, self.keyring, self.now, report, progress, stop)
        elif not report.interrupted:
            destroy_due(
                self.store,
                self.keyring,
                now=self.now,
                report=report,
                progress=self.progress,
                fence=self.fence,
                should_stop=self.should_stop,
            )

    def fence(self, conn: Connection) -> None:
        if self.store.renew_lease(self.lease, self.settings.sync.lease_seconds, conn) is None:
            raise LeaseHeld(f"job '{JOB}' lost its lease mid-run; stopped safely.")


def destroyed_cases(conn: Connection, keyring: KeyRing, case_ids: Iterable[str]) -> set[str]:
    """The ids among ``case_ids`` whose data was destroyed (tombstoned): the sync engine must
    neither refer them again nor keep anything about them."""
    key = case_ref_key(conn, keyring, create=False, now=utcnow())
    if key is None:
        return set()
    refs = {case_ref(key, case_id): case_id for case_id in case_ids}
    found: set[str] = set()
    chunk = list(refs)
    for start in range(0, len(chunk), 500):
        rows = conn.execute(
            sa.select(case_archives.c.case_ref).where(
                case_archives.c.case_ref.in_(chunk[start : start + 500]),
                case_archives.c.destroyed_at.is_not(None),
            )
        ).scalars()
        found.update(refs[ref] for ref in rows)
    return found


def is_destroyed(conn: Connection, keyring: KeyRing, case_id: str) -> bool:
    """True if ``case_id``'s data was destroyed under the retention policy (a tombstone)."""
    return bool(destroyed_cases(conn, keyring, [case_id]))
