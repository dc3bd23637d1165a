"""Delivering the Primero work inbound messages queued: drain a job's outbox rows under the
job's lease, create or complete a department's referral case, apply write-backs."""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any

import sqlalchemy as sa

from adapter.clock import utcnow
from adapter.errors import PrimeroNotPermitted
from adapter.jobs.delivery import Handled, Handler, attempt
from adapter.jobs.inbound._districts import _without_unknown_location
from adapter.jobs.inbound._intake import _fill_gaps, _flag_once, case_fields, possible_matches
from adapter.jobs.inbound._messages import (
    INBOUND_JOB,
    KIND_INTAKE,
    PRIMERO,
    DrainReport,
    Intake,
    IntakeOptions,
)
from adapter.jobs.writeback import (
    WriteBack,
    apply_part,
    apply_write_back,
    last_seen_status,
    part_of,
)
from adapter.primero import PrimeroClient
from adapter.primero.linked_records import linked_record_row, write_linked_record
from adapter.privacy import KeyRing
from adapter.state import StateStore, schema
from adapter.state.links import Links
from adapter.state.outbox import DEAD, PENDING, Outbox, OutboxMessage
from adapter.state.store import process_owner

_LEASE_SECONDS = 300
log = logging.getLogger("adapter.jobs.inbound")


class _Delivery:
    """The delivering half of :class:`~adapter.jobs.inbound.InboundService` (its base)."""

    # Set by InboundService.__init__.
    store: StateStore
    keyring: KeyRing
    intake_options: IntakeOptions
    links: Links
    outbox: Outbox

    # -- delivering -----------------------------------------------------------------------

    def drain(
        self,
        client_factory: Callable[[], PrimeroClient],
        job: str = INBOUND_JOB,
        *,
        max_attempts: int = 8,
        now: datetime | None = None,
    ) -> DrainReport:
        """Deliver ``job``'s queued Primero work, under the job's lease (a running sync of
        that job delivers its rows itself: then this returns ``skipped``). No lease is taken
        and no client opened when nothing is due, so an idle drain never blocks a sync run.
        Raises PrimeroAuthError or the factory's error (nothing is lost)."""
        report = DrainReport(job)
        owner = process_owner()
        client: PrimeroClient | None = None
        grants: dict[str, str] = {}
        try:
            # A message committed while another drain held the lease finds that drain about
            # to leave: the leaving drain looks once more after releasing, so nothing waits
            # for the next timer.
            while self._due(job, now=now):
                lease = self.store.acquire_lease(f"job:{job}", owner, _LEASE_SECONDS)
                if lease is None:
                    report.skipped = True
                    break
                try:
                    while due := self._due(job, now=now):
                        client = client or client_factory()
                        dropped: set[int] = set()
                        handle = self._handler(client, dropped, report.waiting_for_grant, grants)
                        for message in due:
                            outcome = attempt(
                                message,
                                handle,
                                outbox=self.outbox,
                                links=self.links,
                                keyring=self.keyring,
                                max_attempts=max_attempts,
                            )
                            if outcome == "sent":
                                report.delivered += 1
                                if message.id in dropped:
                                    report.districts_dropped += 1
                            elif outcome == "dead":
                                report.dead_lettered += 1
                            else:
                                report.retrying += 1
                finally:
                    self.store.release_lease(lease)
        finally:
            if client is not None:
                client.close()
            # Once per drain, not once per message: the grant is the same for all of them.
            for kind, count in sorted(report.waiting_for_grant.items()):
                log.warning(
                    "job %s: %d write-back message(s) (%s) wait for a Primero permission: %s",
                    job,
                    count,
                    kind,
                    grants[kind],
                )
        return report

    def _due(self, job: str, *, now: datetime | None) -> list[OutboxMessage]:
        return self.outbox.due(PRIMERO, job=job, limit=32, now=now)

    def _handler(
        self,
        client: PrimeroClient,
        dropped: set[int],
        waiting_for_grant: Counter[str],
        grants: dict[str, str],
    ) -> Handler:
        """The delivery of one message; ``dropped`` collects the ids of intakes whose case
        was created without the department's district, ``waiting_for_grant`` the kinds of
        messages refused for want of a permission (and ``grants`` what each needs)."""

        def handle(message: OutboxMessage, document: dict[str, Any]) -> Handled:
            if message.kind == KIND_INTAKE:
                result = self._apply_intake(client, document)
                if result.get("district_dropped"):
                    dropped.add(message.id)
                return result, {}
            try:
                return self._apply_write_back(client, message, document)
            except PrimeroNotPermitted as exc:
                waiting_for_grant[message.kind] += 1
                grants.setdefault(message.kind, exc.grant)
                raise

        return handle

    def _apply_write_back(
        self, client: PrimeroClient, message: OutboxMessage, document: Mapping[str, Any]
    ) -> Handled:
        write_back = WriteBack.from_json(document)
        part = part_of(message.kind)
        known = last_seen_status(self.links, write_back, part)  # the PATCH's answer checks it
        if part is None:  # queued whole by an older version
            applied = apply_write_back(client, write_back, known)
        else:
            applied = apply_part(client, write_back, part, known)
        return {"status": write_back.status, "part": part or "all"}, applied

    def _apply_intake(self, client: PrimeroClient, document: Mapping[str, Any]) -> dict[str, Any]:
        """Create the case (or complete the one already there), flag it for the responsible
        CPO, and show the department's referral in the case's linked records."""
        intake = Intake.from_json(document["intake"])
        case_id, department = str(document["case_id"]), str(document["department"])
        now = utcnow()
        fields = case_fields(
            intake,
            department,
            module_id=self.intake_options.module_id,
            owner=self.intake_options.owner(department),
            today=now.date(),
        )
        created, district_dropped = _without_unknown_location(
            lambda data: client.create_case(data, id=case_id).created, fields
        )
        if not created:
            # 409: a re-sent referral, or a retry after the create got through: complete the
            # case, never overwrite what a CPO recorded.
            _, refused = _without_unknown_location(
                lambda data: _fill_gaps(client, case_id, data), fields
            )
            district_dropped = district_dropped or refused
        flags: list[str] = []
        if document.get("new"):
            matches = possible_matches(client, case_id, intake, today=now.date())
            if matches:
                flags.append(
                    f"Possible match with case(s) {', '.join(matches)} (similar name, same sex, "
                    "close age): review before merging. cpims-adapter merged nothing."
                )
            flags.append(
                f"New referral from {department} (urgency: {intake.urgency}): please review. "
                "Reason and referring officer: Linked department records."
            )
        else:
            flags.append(
                f"Updated referral from {department} (urgency: {intake.urgency}): please review."
            )
        if district_dropped:
            # The code is not personal data (a location code that matched schemas.District);
            # naming it lets the CPO find the district the department meant.
            flags.append(
                f"District code {intake.district} from {department} was not known to Primero: "
                "the case's current location is empty, please set it."
            )
        _flag_once(client, case_id, flags)
        row = linked_record_row(
            link_key=str(document["link_key"]),
            department=department,
            record_type="referral",
            case_code=str(document["case_code"]),
            external_reference=intake.reference,
            status="received",
            status_note=f"{intake.reason} — referred by {intake.officer}",
            last_update=now,
        )
        write_linked_record(client, case_id, row)
        self.links.update(str(document["link_key"]), written_back_status="received")
        return {"created": created, "flags": len(flags), "district_dropped": district_dropped}

    def pending(self, job: str = INBOUND_JOB) -> int:
        """Primero work of ``job`` not delivered yet (pending or dead)."""
        table = schema.outbox
        query = (
            sa.select(sa.func.count())
            .select_from(table)
            .where(
                table.c.destination == PRIMERO,
                table.c.job == job,
                table.c.status.in_([PENDING, DEAD]),
            )
        )
        with self.store.transaction() as conn:
            return int(conn.execute(query).scalar() or 0)
