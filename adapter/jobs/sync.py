"""One sync run of one job — the engine every department reuses (architecture.md §5.2).

    lease → pull changed cases (watermark) → route referrals → policy → map → outbox + cursor
    (one transaction per page) → deliver → poll the department's statuses → write back into
    Primero → report

Exactly-once effect comes from at-least-once delivery to idempotent receivers: every outbox
row has a content-derived idempotency key, every department document is a conditional create
or update, and every write-back is keyed and checked against Primero's current state. A crash
at any point re-does at most the work of one page or one message, and the re-do is harmless.
"""

from __future__ import annotations

import json
import logging
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any

from sqlalchemy.engine import Connection

from adapter.clock import utcnow
from adapter.config import Settings
from adapter.departments.base import Connector
from adapter.errors import (
    AdapterError,
    LeaseHeld,
    PrimeroNotPermitted,
)
from adapter.jobs.decisions import DecisionReader
from adapter.jobs.delivery import Handled, Handler, attempt_batch
from adapter.jobs.pull import PageWriter, PullReport, pull_cases
from adapter.jobs.ratelimit import RateBudget
from adapter.jobs.writeback import (
    KIND_DECISION_NOTE,
    PART_ROW,
    PRIMERO,
    WriteBack,
    apply_part,
    apply_write_back,
    last_seen_status,
    part_of,
    write_back_messages,
    write_row,
)
from adapter.mappings.base import DepartmentMapping, Document
from adapter.mappings.routing import RoutedReferral, may_have_referrals, route_referrals
from adapter.mappings.vocabulary import ACCEPTED, StatusUpdate
from adapter.primero import PrimeroClient
from adapter.primero.linked_records import linked_record_row
from adapter.privacy import (
    ConsentOverride,
    Disclosure,
    DisclosureGate,
    DisclosurePolicy,
    KeyRing,
    Stage,
)
from adapter.privacy.audit import append_entries as append_audit_entries
from adapter.privacy.decisions import (
    RecordedDecision,
    for_referral,
    held_note,
    released_note,
)
from adapter.state import StateStore
from adapter.state.held import Held, HeldReferrals, note_key
from adapter.state.links import Link, Links, link_key
from adapter.state.outbox import NewMessage, Outbox, OutboxMessage
from adapter.state.store import process_owner

log = logging.getLogger("adapter.jobs.sync")

STREAM_STATUSES = "department-statuses"
_NAMESPACE = uuid.UUID("6f1c2d64-3b0e-4d8a-9a51-1f0c6c1b7e2a")

# Cases planned together: links and consent overrides are read once per slice, while the
# referral GETs of the following slices are still in flight (_referrals_of).
_PLAN_SLICE = 100

# Department status updates applied per transaction by the poll (each batch commits with the
# poll's watermark, so a crash re-reads at most one batch, which is applied idempotently).
_POLL_BATCH = 200

# Link stages.
STAGE_PROBE, STAGE_IDENTIFIED = "probe", "identified"
STAGE_CANCELLED, STAGE_WITHDRAWN = "cancelled", "withdrawn"


# The ids among ``case_ids`` destroyed under the retention policy (policy §3.6): the retention
# engine's tombstones (adapter.retention.destroyed_cases), handed in by the wiring so that the
# two engines do not import each other.
Tombstones = Callable[[Connection, KeyRing, Iterable[str]], set[str]]


@dataclass
class SyncReport:
    """What one run did: counts and field names only, never personal data."""

    job: str
    department: str
    dry_run: bool = False
    status: str = "running"
    pull: PullReport | None = None
    cases_examined: int = 0
    # Cases whose referrals were fetched, and those the case's own summary proved had none
    # (adapter/mappings/routing.py#may_have_referrals).
    referral_lookups: int = 0
    referral_lookups_skipped: int = 0
    # Cases read again whose last save was the adapter's own (a write-back's echo): processed
    # like any other, since nothing Primero answers proves no one saved them in between
    # (docs/primero-requests.md §3); counted so that the cost shows.
    own_write_back_echoes: int = 0
    referrals_routed: int = 0
    refused: Counter[str] = field(default_factory=Counter)
    enqueued: Counter[str] = field(default_factory=Counter)
    unchanged: int = 0
    delivered: Counter[str] = field(default_factory=Counter)
    retrying: int = 0
    dead_lettered: int = 0
    status_updates: int = 0
    write_backs: int = 0  # write-backs whose linked-records row is in Primero
    # Parts of write-backs applied (status, row, fields, synced; adapter/jobs/writeback.py).
    written_back: Counter[str] = field(default_factory=Counter)
    # Primero messages (by kind) waiting for a permission, and the grant each needs.
    waiting_for_grant: Counter[str] = field(default_factory=Counter)
    grants: dict[str, str] = field(default_factory=dict)
    held: int = 0
    released: int = 0
    not_carried: set[str] = field(default_factory=set)
    duration_seconds: float = 0.0

    def stats(self) -> dict[str, Any]:
        return {
            "department": self.department,
            "dry_run": self.dry_run,
            "cases_examined": self.cases_examined,
            "referral_lookups": self.referral_lookups,
            "referral_lookups_skipped": self.referral_lookups_skipped,
            "own_write_back_echoes": self.own_write_back_echoes,
            "referrals_routed": self.referrals_routed,
            "refused": dict(self.refused),
            "enqueued": dict(self.enqueued),
            "unchanged": self.unchanged,
            "delivered": dict(self.delivered),
            "retrying": self.retrying,
            "dead_lettered": self.dead_lettered,
            "status_updates": self.status_updates,
            "write_backs": self.write_backs,
            "written_back": dict(self.written_back),
            "waiting_for_grant": dict(self.waiting_for_grant),
            "held_for_decision": self.held,
            "released_by_decision": self.released,
            "not_carried": sorted(self.not_carried),
            "pull": self.pull.stats() if self.pull else None,
        }


@dataclass(frozen=True)
class _Plan:
    """One thing a page decided to do, applied inside the page's transaction."""

    case_id: str
    referral: RoutedReferral
    decision: Disclosure | None
    document: Document | None
    stage: str | None
    case_code: str
    message: NewMessage | None = None  # the outbox row, encrypted before the write lock
    # Supervisors' decisions recorded on the case for this department, proven or refused.
    decisions: tuple[RecordedDecision, ...] = ()


class SyncJob:
    """A configured job, ready to run (see :func:`open_job` to build one from settings)."""

    def __init__(
        self,
        settings: Settings,
        name: str,
        *,
        client: PrimeroClient,
        store: StateStore,
        keyring: KeyRing,
        policy: DisclosurePolicy,
        connector: Connector,
        mapping: DepartmentMapping,
        tombstones: Tombstones,
        emit: Callable[[dict[str, Any]], None] | None = None,
    ) -> None:
        self.name = name
        self.tombstones = tombstones
        self.settings = settings
        self.job = settings.job(name)
        self.department = settings.departments[self.job.department]
        self.client = client
        self.store = store
        self.keyring = keyring
        self.gate = DisclosureGate(store, policy, keyring)
        self.connector = connector
        self.mapping = mapping
        self.outbox = Outbox(store)
        self.links = Links(store)
        self.emit = emit
        self.report = SyncReport(job=name, department=self.job.department)
        self._page_overrides: dict[str, list[ConsentOverride]] = {}
        self.decisions = DecisionReader(
            client,
            settings.decisions,
            self.job.department,
            service_user=settings.primero.username,
        )
        self.held = HeldReferrals(store)
        self._page_decisions: dict[str, list[RecordedDecision]] = {}
        # One token bucket for the job's whole life: the delivery that overlaps the pull and
        # the one after it share the department's rate (a budget per drain would not).
        self._budget = RateBudget(self.department.rate_per_second)
        self._pages_committed: Callable[[], None] | None = None
        self._grant_lock = threading.Lock()

    # -- the run --------------------------------------------------------------------------

    def run(
        self,
        *,
        dry_run: bool = False,
        since: datetime | None = None,
        should_stop: Callable[[], bool] | None = None,
    ) -> SyncReport:
        """One whole run under the job's lease. ``dry_run`` sends nothing, writes nothing and
        leaves the watermark; it emits every document that would be sent.

        ``should_stop`` (SIGTERM, the run's deadline) is asked after every page and between
        phases; once it says so the run ends with status "interrupted". Nothing is lost: each
        page committed its work with its watermark, and the next run picks up the rest."""
        started = time.monotonic()
        self.report = SyncReport(job=self.name, department=self.job.department, dry_run=dry_run)
        owner = process_owner()
        lease_seconds = self.settings.sync.lease_seconds
        lease = self.store.acquire_lease(f"job:{self.name}", owner, lease_seconds)
        if lease is None:
            raise LeaseHeld(f"job '{self.name}' is already running in another process.")
        run_id = self.store.start_run(self.name, owner)
        try:
            with self._delivering_meanwhile(enabled=not dry_run):
                self.report.pull = pull_cases(
                    self.client,
                    self.store,
                    self.name,
                    lag_seconds=self.settings.sync.lag_seconds,
                    lease_seconds=lease_seconds,
                    since=since,
                    on_page=lambda records: self._plan_page(records, dry_run),
                    dry_run=dry_run,
                    lease=lease,
                    should_stop=should_stop,
                )
            phases = (
                self.deliver,
                self.poll_statuses,
                self.advance_accepted_probes,
                self.deliver,
                self.write_back,
            )
            self.report.status = "ok"
            for phase in () if dry_run else phases:
                if should_stop is not None and should_stop():
                    break
                # A fence between phases too: an instance that lost the job's lease (its
                # advisory lock went with a dropped connection) stops before draining again.
                if self.store.renew_lease(lease, lease_seconds) is None:
                    raise LeaseHeld(f"job '{self.name}' lost its lease mid-run; stopped safely.")
                phase()
            if should_stop is not None and should_stop():
                self.report.status = "interrupted"
        except BaseException as exc:
            self.report.status = "failed"
            self.report.duration_seconds = time.monotonic() - started
            message = str(exc) if isinstance(exc, AdapterError) else None
            self.store.finish_run(
                run_id, "failed", self.report.stats(), type(exc).__name__, message
            )
            raise
        finally:
            self.store.release_lease(lease)
        self.report.duration_seconds = time.monotonic() - started
        self.store.finish_run(run_id, self.report.status, self.report.stats())
        return self.report

    # -- planning: Primero → policy → map → outbox ----------------------------------------

    def _plan_page(self, records: Sequence[Mapping[str, Any]], dry_run: bool) -> PageWriter:
        if self._pages_committed is not None:
            self._pages_committed()  # pull_cases commits a page before it reads the next
        self.report.cases_examined += len(records)
        if dry_run:  # a real run checks inside the page's transaction (_apply_plans)
            records = self._not_destroyed(records)
        # Every case's overrides in one transaction, before the referral GETs start. Read
        # slice by slice for the routed cases only, each query waited for the GIL behind the
        # fetch threads: 0.7 s per 1,000 referred cases against 0.14 s per 1,000 cases read
        # here (BENCHMARKS.md). The price is a read for cases not referred to this department
        # (cheap misses); one query per page (consent.py) would remove both costs.
        self._page_overrides = self.gate.overrides_many([str(r["id"]) for r in records])
        # Supervisors' decisions, proven from Primero's record history (only cases whose
        # "Disclosure decisions" rows name this department cost a request).
        self._page_decisions = self.decisions.for_cases(records)
        plans: list[_Plan] = []
        for cases in self._referrals_of(records):
            plans += self._plan_slice(cases)
        if dry_run:
            for plan in plans:
                if plan.document is not None and self.emit is not None:
                    self.emit(self._dry_run_line(plan))
        else:
            # Serialise and encrypt before the page's transaction, not under its write lock.
            plans = [
                replace(plan, message=self._message(plan.document, plan.referral.key))
                if plan.document is not None and plan.stage is not None
                else plan
                for plan in plans
            ]
        return lambda conn: self._apply_plans(plans, conn, dry_run)

    def _not_destroyed(self, records: Sequence[Mapping[str, Any]]) -> Sequence[Mapping[str, Any]]:
        """Drop cases destroyed under the retention policy (policy §3.6): a tombstoned case
        still in Primero is never referred again, nor anything about it kept."""
        with self.store.transaction() as conn:
            gone = self.tombstones(conn, self.keyring, [str(r["id"]) for r in records])
        if not gone:
            return records
        self.report.refused["destroyed under retention"] += len(gone)
        return [r for r in records if str(r["id"]) not in gone]

    def _plan_slice(
        self, cases: list[tuple[Mapping[str, Any], list[Mapping[str, Any]]]]
    ) -> list[_Plan]:
        """Route, look up the slice's links (one query), and plan it."""
        routed = [
            (case, ref)
            for case, referrals in cases
            for ref in route_referrals(case, referrals, self.job)
        ]
        self.report.referrals_routed += len(routed)
        links = self.links.many([link_key(self.job.department, ref.key) for _, ref in routed])
        return [
            plan
            for case, ref in routed
            if (plan := self._plan(case, ref, links.get(link_key(self.job.department, ref.key))))
        ]

    def _referrals_of(
        self, records: Sequence[Mapping[str, Any]]
    ) -> Iterator[list[tuple[Mapping[str, Any], list[Mapping[str, Any]]]]]:
        """Every case of the page with its referrals, in slices of ``_PLAN_SLICE`` cases, in
        page order. Only the cases that may carry one cost a GET (``_needs_lookup``); the GETs
        (4 in parallel) run ahead while the caller plans the slices already here: planning is
        CPU, the GETs mostly wait on Primero, so on two cores they overlap (BENCHMARKS.md,
        "Where the engine's time goes")."""
        wanted = self._needs_lookup(records)

        def referrals_of(case_id: str) -> list[Mapping[str, Any]]:
            return list(self.client.list_referrals(case_id)) if case_id in wanted else []

        with ThreadPoolExecutor(max_workers=4) as pool:
            found = pool.map(referrals_of, [str(r["id"]) for r in records])
            cases: list[tuple[Mapping[str, Any], list[Mapping[str, Any]]]] = []
            for case, referrals in zip(records, found, strict=True):
                cases.append((case, referrals))
                if len(cases) == _PLAN_SLICE:
                    yield cases
                    cases = []
            if cases:
                yield cases

    def _needs_lookup(self, records: Sequence[Mapping[str, Any]]) -> set[str]:
        """The cases of the page whose referrals must be fetched: those whose own summary
        says they may carry one, or cannot say (the listing lacks the fields); those the
        adapter already holds a link or a hold for with this department (a revoked referral
        shows nowhere on the case, and its cancellation must still go out: privacy.md); and
        those with a service row addressed to the department (a referral may claim it)."""
        ids = [str(r["id"]) for r in records]
        department = self.job.department
        known = self.links.cases_linked(department, ids) | self.held.cases_held(department, ids)
        wanted = {
            case_id
            for case_id, case in zip(ids, records, strict=True)
            if case_id in known
            or may_have_referrals(case) is not False
            or route_referrals(case, (), self.job)
        }
        self.report.referral_lookups += len(wanted)
        self.report.referral_lookups_skipped += len(ids) - len(wanted)
        own = self.settings.primero.username
        self.report.own_write_back_echoes += sum(
            1 for case in records if own is not None and case.get("last_updated_by") == own
        )
        return wanted

    def _plan(
        self, case: Mapping[str, Any], ref: RoutedReferral, link: Link | None
    ) -> _Plan | None:
        case_id = str(case["id"])
        code = link.case_code if link else ""  # a new link's code comes with the decision
        if link is not None and link.stage in (STAGE_CANCELLED, STAGE_WITHDRAWN):
            return None  # nothing more ever goes out for this referral
        if ref.revoked:
            if link is None:
                return None
            document = self.mapping.cancel(ref.key, "referral-revoked")
            return _Plan(case_id, ref, None, document, STAGE_CANCELLED, code)
        if link is not None and link.stage == STAGE_PROBE:
            stage = Stage.PROBE  # waiting for the department's answer; re-checked for consent
        elif link is None and self.department.two_stage:
            stage = Stage.PROBE
        else:
            stage = Stage.IDENTIFIED
        recorded = tuple(self._page_decisions.get(case_id, ()))
        decision = self.gate.policy.decide(
            case,
            self.job.department,
            self.job.purpose,
            stage,
            codes=self.keyring,
            overrides=self._overrides(case_id, self._page_overrides.get(case_id, []), recorded),
            referral=ref.transition,
        )
        # The decision already sealed the code of an allowed identified disclosure: sealing
        # it again (AES-SIV) was a tenth of the policy step.
        code = code or decision.case_code or self.keyring.case_code(case_id, self.job.department)
        if not decision.allowed:
            self.report.refused[_reason_class(decision.reason)] += 1
            if decision.consent_withdrawn and link is not None:
                document = self.mapping.withdraw(ref.key)
                return _Plan(case_id, ref, decision, document, STAGE_WITHDRAWN, code)
            return _Plan(case_id, ref, decision, None, None, code, decisions=recorded)
        if link is not None and link.stage == STAGE_PROBE:
            return None  # consent still holds; the probe's answer drives what comes next
        if stage is Stage.PROBE:
            document = self.mapping.probe(ref, decision)
            next_stage = STAGE_PROBE
        elif link is None:
            document = self.mapping.referral(ref, decision, after_probe=False)
            next_stage = STAGE_IDENTIFIED
        else:
            document = self.mapping.update(ref, decision)
            next_stage = STAGE_IDENTIFIED
        self.report.not_carried.update(document.not_carried)
        if link is not None and link.content_hash == document.content_hash:
            self.report.unchanged += 1  # unchanged, or the echo of our own write-back
            # Nothing to send (nor to audit), but nothing waits for a decision either: a hold
            # of this referral ends here.
            return _Plan(case_id, ref, None, None, None, code)
        return _Plan(case_id, ref, decision, document, next_stage, code, decisions=recorded)

    def _apply_plans(self, plans: list[_Plan], conn: Connection, dry_run: bool) -> None:
        if dry_run:
            return
        # Cases destroyed under retention (policy §3.6) are never referred again. Checked under
        # the page's own write lock, so a destruction committed while the page was planned
        # cannot be undone by it.
        gone = self.tombstones(conn, self.keyring, {plan.case_id for plan in plans})
        if gone:
            dropped = {plan.case_id for plan in plans if plan.case_id in gone}
            self.report.refused["destroyed under retention"] += len(dropped)
            plans = [plan for plan in plans if plan.case_id not in gone]
        # The page's decisions, links and outbox rows each in one batch (a lookup and an
        # executemany per table, the audit chain computed in memory): one statement per row
        # was a quarter of the engine's time (BENCHMARKS.md, "Where the engine's time goes").
        self.gate.record_many(
            conn,
            [(plan.decision, plan.case_id) for plan in plans if plan.decision is not None],
        )
        queued: list[NewMessage] = []
        links: list[tuple[str, dict[str, Any]]] = []
        for plan in plans:
            if plan.document is None or plan.stage is None:
                continue
            queued.append(plan.message or self._message(plan.document, plan.referral.key))
            links.append(
                (
                    link_key(self.job.department, plan.referral.key),
                    {
                        "job": self.name,
                        "department": self.job.department,
                        "case_id": plan.case_id,
                        "referral_id": plan.referral.referral_id,
                        "case_code": plan.case_code,
                        "stage": plan.stage,
                        "content_hash": plan.document.content_hash,
                        "primero_status": plan.referral.primero_status,
                    },
                )
            )
        self.links.upsert_many(conn, links)
        kinds = {m.idempotency_key: m.kind for m in queued}
        for key in self.outbox.enqueue_many(conn, queued):
            self.report.enqueued[kinds[key]] += 1
        self._settle_holds(conn, [(p.case_id, p.referral, p.decision, p.decisions) for p in plans])

    # -- decisions by people: held referrals, what the CPO sees ---------------------------

    @staticmethod
    def _overrides(
        case_id: str,
        recorded_here: Sequence[ConsentOverride],
        decisions: Sequence[RecordedDecision],
    ) -> list[ConsentOverride]:
        """The adapter's own overrides plus the supervisors' proven decisions in Primero."""
        return [*recorded_here, *(d.override(case_id) for d in decisions if d.valid)]

    def _settle_holds(
        self,
        conn: Connection,
        outcomes: Sequence[
            tuple[str, RoutedReferral, Disclosure | None, Sequence[RecordedDecision]]
        ],
    ) -> None:
        """Hold the referrals a person's decision would release, release the ones that no
        longer wait, and queue the "Linked department records" row that tells the CPO which
        (privacy.md §6.3, §6.5: a held referral is never silent). Refused decisions go to the
        audit log: who, basis, legal reference, why — never the reason's text."""
        now = utcnow()
        holds: list[Held] = []
        notes: dict[str, tuple[str, str, str]] = {}
        released: dict[str, tuple[str, Disclosure | None]] = {}
        audits: list[dict[str, Any]] = []
        for case_id, ref, decision, recorded_on_case in outcomes:
            key = link_key(self.job.department, ref.key)
            requester = ref.transition.get("transitioned_by") if ref.transition else None
            requester = requester if isinstance(requester, str) else None
            recorded = for_referral(recorded_on_case, requester)
            for refused in (d for d in recorded if d.problem):
                audits.append(
                    {
                        "event": "decision_refused",
                        "case_ref": self.gate.case_ref(case_id),
                        **refused.audit_entry(),
                    }
                )
            if decision is not None and not decision.allowed and decision.awaiting:
                holds.append(
                    Held(
                        link_key=key,
                        job=self.name,
                        department=self.job.department,
                        case_id=case_id,
                        referral_id=ref.referral_id,
                        awaiting=decision.awaiting,
                        reason=decision.reason,
                        held_since=now,
                        checked_at=now,
                    )
                )
                status, note = held_note(
                    decision.awaiting, self.decisions.approvers, requester, recorded
                )
                notes[key] = (case_id, status, note)
            else:
                released[key] = (case_id, decision)
        if audits:
            append_audit_entries(conn, self.keyring, audits, now=now)
        since = self.held.hold_many(conn, holds)
        self.report.held += len(holds)
        was_held = self.held.release_many(conn, released)
        messages = [
            self._note_message(key, case_id, status, note, generation=since[key].isoformat())
            for key, (case_id, status, note) in notes.items()
        ]
        for key in was_held:
            case_id, decision = released[key]
            said = released_note(decision.approvals) if decision is not None else None
            if said is None:
                continue
            self.report.released += 1
            status, note = said
            messages.append(self._note_message(key, case_id, status, note, generation=note))
        self.outbox.enqueue_many(conn, messages)

    def _note_message(
        self, key: str, case_id: str, status: str, text: str, *, generation: str
    ) -> NewMessage:
        """The outbox row that writes a held referral's row into the case (its own link key,
        so it never waits behind the referral's own messages)."""
        row_key = note_key(key)
        body = {
            "case_id": case_id,
            "row": linked_record_row(
                link_key=row_key,
                department=self.job.department,
                record_type="referral",
                case_code=None,
                external_reference=None,
                status=status,
                status_note=text,
                last_update=utcnow(),
            ),
        }
        idem = str(uuid.uuid5(_NAMESPACE, f"note:{row_key}:{status}:{text}:{generation}"))
        payload = json.dumps(body, separators=(",", ":")).encode()
        return NewMessage(
            idempotency_key=idem,
            job=self.name,
            destination=PRIMERO,
            kind=KIND_DECISION_NOTE,
            link_key=row_key,
            payload=self.keyring.encrypt_payload(payload, context=idem.encode()),
        )

    def _enqueue(self, conn: Connection, document: Document, referral_key: str) -> None:
        message = self._message(document, referral_key)
        if self.outbox.enqueue_many(conn, [message]):
            self.report.enqueued[document.kind] += 1

    def _message(self, document: Document, referral_key: str) -> NewMessage:
        """The outbox row of ``document``: content-derived key, payload encrypted under it."""
        key = str(uuid.uuid5(_NAMESPACE, f"{self.name}:{referral_key}:{document.content_hash}"))
        payload = json.dumps(document.body, separators=(",", ":"), default=str).encode()
        return NewMessage(
            idempotency_key=key,
            job=self.name,
            destination=self.job.department,
            kind=document.kind,
            link_key=link_key(self.job.department, referral_key),
            payload=self.keyring.encrypt_payload(payload, context=key.encode()),
        )

    def _dry_run_line(self, plan: _Plan) -> dict[str, Any]:
        assert plan.document is not None
        return {
            "job": self.name,
            "department": self.job.department,
            "kind": plan.document.kind,
            "referral_key": plan.referral.key,
            "document": plan.document.body,
        }

    # -- delivery ------------------------------------------------------------------------

    def deliver(self) -> None:
        """Drain the department's outbox: bounded concurrency, a rate budget, retries with
        backoff and Retry-After, dead letters after ``max_attempts``."""
        self._deliver_department()

    def _deliver_department(self, stop: Callable[[], bool] | None = None) -> None:
        self._drain(
            self.job.department,
            lambda message, document: self._deliver_one(message, document, self._budget),
            concurrency=self.department.concurrency,
            max_attempts=self.department.max_attempts,
            stop=stop,
        )

    @contextmanager
    def _delivering_meanwhile(self, *, enabled: bool) -> Iterator[None]:
        """Deliver the pages already committed while the pull plans the next ones.

        Planning is CPU in this thread; delivery mostly waits on the department, so on two
        cores the two overlap instead of adding up (BENCHMARKS.md). Only committed outbox
        rows are ever sent (``Outbox.due`` reads committed state), one message per link at a
        time as always, so the order and the exactly-once argument are the same as after the
        pull. On leaving, the drainer finishes its current batch and stops; the run's own
        ``deliver`` then sends the rest.
        """
        if not enabled:
            yield
            return
        wake, done = threading.Event(), threading.Event()
        failures: list[BaseException] = []

        def drain_as_pages_commit() -> None:
            try:
                while wake.wait() and not done.is_set():
                    wake.clear()
                    self._deliver_department(stop=done.is_set)
            except BaseException as exc:  # noqa: BLE001 - re-raised in the run's thread below
                failures.append(exc)

        drainer = threading.Thread(target=drain_as_pages_commit, name="sync-delivery")
        self._pages_committed = wake.set
        drainer.start()
        try:
            yield
        finally:
            self._pages_committed = None
            done.set()
            wake.set()
            drainer.join()
        if failures:
            raise failures[0]

    def write_back(self) -> None:
        """Drain the write-backs into Primero (one at a time: Primero has no bulk PATCH).
        Parts waiting for a permission are said once per kind, with the grant they need."""
        waiting_before = Counter(self.report.waiting_for_grant)
        self._drain(
            PRIMERO,
            self._write_back_one,
            concurrency=1,
            max_attempts=self.department.max_attempts,
        )
        for kind, count in sorted((self.report.waiting_for_grant - waiting_before).items()):
            log.warning(
                "job %s: %d write-back message(s) (%s) wait for a Primero permission: %s",
                self.name,
                count,
                kind,
                self.report.grants[kind],
            )

    def _drain(
        self,
        destination: str,
        handle: Handler,
        *,
        concurrency: int,
        max_attempts: int,
        stop: Callable[[], bool] | None = None,
    ) -> None:
        # Each batch ends in a barrier (the pool idles while ``due`` runs again), so batches
        # are large: 32 messages per thread rather than 8, a quarter of the stalls. The
        # batch's deliveries are recorded in one transaction at the barrier (one per message
        # was ~0.5 ms a referral, BENCHMARKS.md); ``due`` runs after that commit, so the next
        # message about a referral never overtakes the one just sent.
        with ThreadPoolExecutor(max_workers=concurrency) as pool:
            while due := self.outbox.due(destination, job=self.name, limit=concurrency * 32):
                outcomes = attempt_batch(
                    due,
                    handle,
                    pool=pool,
                    outbox=self.outbox,
                    links=self.links,
                    keyring=self.keyring,
                    max_attempts=max_attempts,
                )
                self.report.dead_lettered += outcomes.count("dead")
                self.report.retrying += outcomes.count("retrying")
                if stop is not None and stop():
                    break

    def _deliver_one(
        self, message: OutboxMessage, document: dict[str, Any], budget: RateBudget
    ) -> Handled:
        budget.wait()
        delivery = self.connector.deliver(
            message.kind, document, idempotency_key=message.idempotency_key
        )
        self.report.delivered[message.kind] += 1
        link_values = {"external_ref": delivery.external_ref} if delivery.external_ref else {}
        return {"external_ref": delivery.external_ref}, link_values

    # -- statuses: department → links → write-back ----------------------------------------

    def poll_statuses(self) -> None:
        """Apply the department's status changes since the last poll, and queue write-backs.
        The poll watermark commits with the write-backs it produced, ``_POLL_BATCH`` updates
        to a transaction (one commit per update was most of the poll's cost after a full
        sync, which reads back every Task it created)."""
        since = self.store.get_cursor(self.name, STREAM_STATUSES)
        batch: list[tuple[StatusUpdate, str]] = []
        for item in self.connector.status_updates(since):
            batch.append(item)
            if len(batch) == _POLL_BATCH:
                self._apply_statuses(batch)
                batch = []
        if batch:
            self._apply_statuses(batch)

    def _apply_statuses(self, batch: Sequence[tuple[StatusUpdate, str]]) -> None:
        with self.store.transaction() as conn:
            watermark = ""
            for update, stamp in batch:
                # Read in the transaction, update by update: a Task changed twice in one
                # batch is compared with the link as its first change left it.
                link = self.links.get(link_key(self.job.department, update.referral_key), conn)
                if link is not None and link.job == self.name and _is_news(link, update):
                    self._apply_status(conn, link, update)
                watermark = stamp or watermark
            if watermark:
                self.store.set_cursor(self.name, STREAM_STATUSES, watermark, conn)

    def _apply_status(self, conn: Connection, link: Link, update: StatusUpdate) -> None:
        self.report.status_updates += 1
        self.links.upsert(
            conn,
            link.link_key,
            remote_status=update.status,
            remote_note=update.note,
            remote_outputs=list(update.outputs),
            remote_updated_at=update.updated_at,
            remote_version=update.version,
            external_ref=update.external_ref or link.external_ref,
        )
        if not self.job.write_back:
            return
        write_back = WriteBack(
            link_key=link.link_key,
            department=link.department,
            case_id=link.case_id,
            referral_id=link.referral_id,
            case_code=link.case_code,
            status=update.status,
            reason=update.reason,
            note=update.note,
            outputs=update.outputs,
            external_ref=update.external_ref or link.external_ref,
            updated_at=update.updated_at.isoformat() if update.updated_at else None,
            mark_synced=self.job.mark_synced,
            record_type=update.record_type,
            details=dict(update.details),
            case_fields=_case_fields(self.job.primero_fields, update),
        )
        key = str(uuid.uuid5(_NAMESPACE, f"wb:{link.link_key}:{update.status}:{update.version}"))
        self.outbox.enqueue_many(
            conn,
            write_back_messages(
                write_back, idempotency_key=key, job=self.name, encrypt=self._encrypt
            ),
        )

    def _encrypt(self, plain: bytes, context: bytes) -> bytes:
        return self.keyring.encrypt_payload(plain, context=context)

    def advance_accepted_probes(self) -> None:
        """For every probe the department accepted: decide the identified disclosure on the
        case as it is now, and queue the identified referral (privacy.md §6.3 stage 3)."""
        for link in self.links.for_job(self.name, stage=STAGE_PROBE, remote_status=ACCEPTED):
            case = self.client.get_case(link.case_id)
            transitions = self.client.list_referrals(link.case_id) if link.referral_id else []
            ref = next(
                (
                    r
                    for r in route_referrals(case, transitions, self.job)
                    if r.key == link.referral_key
                ),
                None,
            )
            if ref is None:
                continue  # no longer addressed to this department
            recorded = self.decisions.for_cases([case]).get(link.case_id, [])
            decision = self.gate.policy.decide(
                case,
                self.job.department,
                self.job.purpose,
                Stage.IDENTIFIED,
                codes=self.keyring,
                overrides=self._overrides(
                    link.case_id, self.gate.overrides(link.case_id), recorded
                ),
                referral=ref.transition,
            )
            with self.store.transaction() as conn:
                self.gate.record(conn, decision, link.case_id)
                self._settle_holds(conn, [(link.case_id, ref, decision, recorded)])
                if not decision.allowed:
                    self.report.refused[_reason_class(decision.reason)] += 1
                    continue
                document = self.mapping.referral(ref, decision, after_probe=True)
                self.report.not_carried.update(document.not_carried)
                self._enqueue(conn, document, ref.key)
                self.links.upsert(
                    conn,
                    link.link_key,
                    stage=STAGE_IDENTIFIED,
                    content_hash=document.content_hash,
                )

    def _write_back_one(self, message: OutboxMessage, document: dict[str, Any]) -> Handled:
        try:
            return self._apply_write_back(message, document)
        except PrimeroNotPermitted as exc:
            # Counted here, said once per run by write_back(): the message waits for the grant.
            with self._grant_lock:
                self.report.waiting_for_grant[message.kind] += 1
                self.report.grants.setdefault(message.kind, exc.grant)
            raise

    def _apply_write_back(self, message: OutboxMessage, document: dict[str, Any]) -> Handled:
        if message.kind == KIND_DECISION_NOTE:
            write_row(self.client, str(document["case_id"]), document["row"])
            return {"status": document["row"].get("link_status")}, {}
        write_back = WriteBack.from_json(document)
        part = part_of(message.kind)
        # The referral's status as last seen (pull or previous write-back): the guess the
        # PATCH's answer checks, instead of listing the case's referrals first (writeback.py).
        known = last_seen_status(self.links, write_back, part)
        if part is None:  # queued whole by an older version
            applied = apply_write_back(self.client, write_back, known)
        else:
            applied = apply_part(self.client, write_back, part, known)
            self.report.written_back[part] += 1
        if part in (None, PART_ROW):
            self.report.write_backs += 1
        return {"status": write_back.status, "part": part or "all"}, applied


def _is_news(link: Link, update: StatusUpdate) -> bool:
    """False for an update already applied (the poll re-reads its boundary on purpose).
    Status and time alone are not enough: two different court orders can share both."""
    return not (
        link.remote_status == update.status
        and link.remote_updated_at == update.updated_at
        and update.updated_at is not None
        and (update.version is None or link.remote_version == update.version)
    )


def _case_fields(configured: Mapping[str, str], update: StatusUpdate) -> dict[str, str]:
    """The facts of ``update`` the job copies into Primero case fields."""
    prefix = f"{update.record_type}."
    return {
        field: update.details[key[len(prefix) :]]
        for key, field in configured.items()
        if key.startswith(prefix) and update.details.get(key[len(prefix) :])
    }


def _reason_class(reason: str) -> str:
    """A short, value-free label for a refusal, for counting in reports and metrics."""
    head = reason.split(":", 1)[0].strip().lower()
    return head[:40] or "refused"
