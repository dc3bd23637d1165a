"""Inbound messages from departments: accept each once, queue its Primero work, deliver it.

    validated message → accept: resolve the case, update links, queue the Primero work in the
    outbox and store the answer in the inbox — all in ONE transaction → answer (202)
    → drain: deliver the queued work into Primero (outbox destination ``primero``)

Nothing is written to Primero while a request waits: a crash after the commit loses nothing
(the outbox row is there for the next drain), a crash before it leaves no trace, and the
department simply re-sends. The inbox keeps ``(department, message_id)`` with the first answer,
so a replay gets that answer again and changes nothing; a different message under a used id is
refused.

Write-backs use the sync engine's ``WriteBack`` and ``apply_write_back`` and the same outbox
rows (destination ``primero``, kind ``writeback``). A response to a referral the sync engine
sent is queued under that job's name, so the job's own drain delivers it too; everything that
starts here (a department's referral, FIR links, court orders, verifications) is queued under
the job ``inbound``. :meth:`InboundService.drain` delivers a job's rows under the job's lease,
so it never runs beside that job's sync run.
"""

from __future__ import annotations

import hashlib
import json
import logging
import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from datetime import date, datetime
from difflib import SequenceMatcher
from typing import Any, TypeVar

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from adapter.config import Settings
from adapter.departments.base import CANCELLED, COMPLETED, FAILED, REJECTED
from adapter.errors import (
    AdapterError,
    PrimeroValidationError,
    StateError,
)
from adapter.jobs.delivery import Handled, Handler, attempt
from adapter.jobs.writeback import WriteBack, apply_write_back
from adapter.primero import PrimeroClient, Record
from adapter.primero.linked_records import linked_record_row, write_linked_record
from adapter.primero.locations import LocationCatalogue
from adapter.privacy import CaseCodes, CodeRefused, KeyRing, SecurityEventKind
from adapter.privacy.audit import append_entry
from adapter.privacy.events import record_security_event
from adapter.privacy.normalise import name_key
from adapter.state import StateStore, schema
from adapter.state.links import Link, Links, link_key
from adapter.state.outbox import DEAD, PENDING, Outbox, OutboxMessage
from adapter.state.store import process_owner
from adapter.state.types import utcnow

log = logging.getLogger("adapter.jobs.inbound")
_T = TypeVar("_T")

INBOUND_JOB = "inbound"  # the outbox job of work that starts at the inbound API
PRIMERO = "primero"  # the outbox destination (the same as the sync engine's write-backs)
KIND_WRITEBACK = "writeback"
KIND_INTAKE = "intake"  # a department's referral to the CPU: create or complete a case
ACCEPTED_STATUS = 202
# Link stages of links made here (the sync engine's are probe, identified, cancelled, ...).
STAGE_INBOUND, STAGE_RECORD = "inbound", "record"
_TERMINAL = {COMPLETED, REJECTED, CANCELLED, FAILED}
_NAMESPACE = uuid.UUID("0d5c8f52-8c1e-4b7e-9a3f-5b2e7d9c4a10")
# Case ids of departments' referrals: uuid5(department:reference), so a re-sent referral maps
# to the same case and Primero's create answers 409 instead of making a second child.
CASE_NAMESPACE = uuid.UUID("b8a4c1e2-5f3d-4e6a-8c7b-2d1f0e9a6b53")
_LEASE_SECONDS = 300
_MATCH_LIMIT = 5
# The case field of the child's district: a select over Primero's locations, so a code it
# does not know is refused (422, primero-api.md §4 "Type validation"; finding F1 of
# tests/fuzz/test_api_schema.py).
LOCATION_FIELD = "location_current"


# -- errors: data the API maps to HTTP statuses -------------------------------------------


class InboundError(AdapterError):
    """A message that cannot be accepted. ``code`` is stable (clients key on it); ``field``
    names the part of the message at fault. Messages never carry a value from the request."""

    code = "inbound_refused"

    def __init__(self, message: str, *, field: str | None = None) -> None:
        super().__init__(message)
        self.field = field


class MessageIdReused(InboundError):
    """The message id was used before by this department for a different message."""

    code = "message_id_reused"


class CaseCodeRefused(InboundError):
    """The case code is not this department's (or is forged, or under a retired key)."""

    code = "case_code_refused"


class UnknownReferral(InboundError):
    """No referral with this key was sent to this department."""

    code = "unknown_referral"


class ReferralClosed(InboundError):
    """The referral is finished (or not one the department can respond to)."""

    code = "referral_closed"


class UnknownDistrict(InboundError):
    """The child's district is not a location code Primero knows."""

    code = "unknown_district"


# -- messages, as the API hands them over -------------------------------------------------


@dataclass(frozen=True)
class Envelope:
    """Who sent a message, its id, the route it came by and the hash of its content."""

    department: str
    message_id: str
    route: str
    request_hash: str


@dataclass(frozen=True)
class CaseRef:
    """How a department names a case: its case code, or the key of a referral it received."""

    case_code: str | None = None
    referral_key: str | None = None


@dataclass(frozen=True)
class Intake:
    """A department's referral of a child to the child protection unit (CPU)."""

    reference: str  # the department's own reference
    concerns: tuple[str, ...]
    reason: str
    urgency: str  # high | medium | low (Primero's risk_level)
    officer: str  # the referring officer's name and contact, one line
    name: str | None = None
    sex: str | None = None
    date_of_birth: str | None = None  # ISO date
    age: int | None = None
    age_estimated: bool = False
    district: str | None = None  # a Primero location code

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["concerns"] = list(self.concerns)
        return data

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Intake:
        values = dict(data)
        values["concerns"] = tuple(values.get("concerns") or ())
        return cls(**values)

    def known_age(self, today: date) -> int | None:
        """The age given, or the one the date of birth implies."""
        if self.age is not None:
            return self.age
        if self.date_of_birth is None:
            return None
        born = date.fromisoformat(self.date_of_birth)
        return today.year - born.year - ((today.month, today.day) < (born.month, born.day))


@dataclass(frozen=True)
class ReferralResponse:
    """A department's answer to a referral the CPU sent it (adapter status vocabulary)."""

    referral_key: str
    status: str  # accepted | rejected | completed
    reason: str | None = None
    note: str | None = None
    outputs: tuple[str, ...] = ()
    external_ref: str | None = None
    updated_at: datetime | None = None


@dataclass(frozen=True)
class DepartmentRecord:
    """An FIR link, a court order or a birth-verification result about one case."""

    case: CaseRef
    record_type: str  # fir | court_order | birth_registration (linked_records.RECORD_TYPES)
    status: str
    # Identifies the record at the department (e.g. FIR station/year/number); None keeps one
    # record of this type per case (a newer verification replaces the older one).
    natural_key: str | None
    external_ref: str | None
    note: str | None = None
    details: Mapping[str, str] = field(default_factory=dict)
    updated_at: datetime | None = None


@dataclass(frozen=True)
class Answer:
    """What the API returns: the status code and body stored in the inbox for replays, and
    the outbox jobs that now have Primero work to drain."""

    status_code: int
    body: dict[str, Any]
    replayed: bool = False
    jobs: tuple[str, ...] = ()


@dataclass(frozen=True)
class IntakeOptions:
    """Where a department's referral lands in Primero."""

    module_id: str = "primeromodule-cp"
    # The responsible CPO (a Primero user_name) of each department's referrals; the case is
    # created owned by them, so it appears in their case list, and a flag alerts them.
    owners: Mapping[str, str] = field(default_factory=dict)
    default_owner: str | None = None

    def owner(self, department: str) -> str | None:
        return self.owners.get(department, self.default_owner)


@dataclass
class DrainReport:
    """What one drain did (counts only)."""

    job: str
    skipped: bool = False
    delivered: int = 0
    retrying: int = 0
    dead_lettered: int = 0
    # Cases created without the department's district because Primero did not know the code.
    districts_dropped: int = 0


# -- the inbox ------------------------------------------------------------------------------


class Inbox:
    """One row per accepted message; the first answer is returned to every replay."""

    def __init__(self, store: StateStore) -> None:
        self.store = store

    def replay(self, conn: Connection, envelope: Envelope) -> Answer | None:
        """The stored answer of this message, None if it is new; MessageIdReused if the id
        was used for another message."""
        table = schema.inbox
        row = conn.execute(
            sa.select(table.c.request_hash, table.c.response_status, table.c.response_body).where(
                table.c.department == envelope.department,
                table.c.message_id == envelope.message_id,
            )
        ).first()
        if row is None:
            return None
        if row.request_hash != envelope.request_hash:
            raise MessageIdReused(
                "message_id was already used by your department for a different message: "
                "send each new message with a new UUID (re-send a message only unchanged).",
                field="message_id",
            )
        return Answer(int(row.response_status), dict(row.response_body), replayed=True)

    def record(
        self, conn: Connection, envelope: Envelope, answer: Answer, link: str | None
    ) -> None:
        """Store the answer in the caller's transaction (the one that queued the work)."""
        conn.execute(
            schema.inbox.insert().values(
                department=envelope.department,
                message_id=envelope.message_id,
                route=envelope.route,
                request_hash=envelope.request_hash,
                status="accepted",
                response_status=answer.status_code,
                response_body=answer.body,
                link_key=link,
                received_at=utcnow(),
            )
        )

    def count(self, department: str | None = None) -> int:
        query = sa.select(sa.func.count()).select_from(schema.inbox)
        if department is not None:
            query = query.where(schema.inbox.c.department == department)
        with self.store.transaction() as conn:
            return int(conn.execute(query).scalar() or 0)


# -- the service ----------------------------------------------------------------------------

_Work = Callable[[Connection], tuple[Answer, str | None]]


class InboundService:
    """Accept inbound messages and deliver the Primero work they queue."""

    def __init__(
        self,
        settings: Settings,
        store: StateStore,
        keyring: KeyRing,
        *,
        intake: IntakeOptions | None = None,
        locations: LocationCatalogue | None = None,
    ) -> None:
        """``locations``: Primero's location codes, to refuse a referral's unknown district
        at once (None: every district is accepted, and one Primero refuses is left out of
        the case when it is created)."""
        self.settings = settings
        self.store = store
        self.keyring = keyring
        self.intake_options = intake or IntakeOptions()
        self.locations = locations
        self.codes = CaseCodes(store, keyring)
        self.links = Links(store)
        self.outbox = Outbox(store)
        self.inbox = Inbox(store)

    # -- accepting ------------------------------------------------------------------------

    def receive_referral(self, envelope: Envelope, intake: Intake) -> Answer:
        """A department refers a child: queue the case creation, answer with the case code
        the department uses from now on. UnknownDistrict if Primero's location catalogue
        lacks the child's district (a replay still gets its first answer)."""
        if intake.district is not None and self.locations is not None:
            if (replayed := self._replay_only(envelope)) is not None:
                return replayed
            _check_district(self.locations, intake.district)
        department = envelope.department
        case_id = str(uuid.uuid5(CASE_NAMESPACE, f"{department}:{intake.reference}"))
        key = link_key(department, f"in:{intake.reference}")

        def work(conn: Connection) -> tuple[Answer, str | None]:
            link = self.links.get(key, conn)
            code = link.case_code if link else self.keyring.case_code(case_id, department)
            self.codes.record_issued(conn, department, code)
            self.links.upsert(
                conn,
                key,
                job=INBOUND_JOB,
                department=department,
                case_id=case_id,
                referral_id=None,
                case_code=code,
                stage=STAGE_INBOUND,
                external_ref=intake.reference,
                remote_status="received",
                remote_updated_at=utcnow(),
            )
            payload = {
                "case_id": case_id,
                "department": department,
                "link_key": key,
                "case_code": code,
                "new": link is None,
                "intake": intake.to_json(),
            }
            self._enqueue(conn, envelope, INBOUND_JOB, KIND_INTAKE, key, payload)
            self._audit(conn, envelope, "inbound_referral", code)
            body = {"message_id": envelope.message_id, "status": "accepted", "case_code": code}
            return Answer(ACCEPTED_STATUS, body, jobs=(INBOUND_JOB,)), key

        return self._accept(envelope, work)

    def respond(self, envelope: Envelope, response: ReferralResponse) -> Answer:
        """A department accepts, rejects or completes a referral the CPU sent it."""
        department = envelope.department
        key = link_key(department, response.referral_key)
        if (replayed := self._replay_only(envelope)) is not None:
            return replayed
        link = self._referral_link(department, response.referral_key)

        def work(conn: Connection) -> tuple[Answer, str | None]:
            current = self.links.get(key, conn) or link
            _check_open(current, response.status)
            self.links.upsert(
                conn,
                key,
                remote_status=response.status,
                remote_note=response.note,
                remote_outputs=list(response.outputs),
                remote_updated_at=response.updated_at or utcnow(),
                # The message id is the version of the department's answer (as a status
                # poll's version is for the sync engine).
                remote_version=envelope.message_id,
                external_ref=response.external_ref or current.external_ref,
            )
            job = self.settings.jobs.get(current.job)
            jobs: tuple[str, ...] = ()
            if job is None or job.write_back:
                write_back = WriteBack(
                    link_key=key,
                    department=department,
                    case_id=current.case_id,
                    referral_id=current.referral_id,
                    case_code=current.case_code,
                    status=response.status,
                    reason=response.reason,
                    note=response.note,
                    outputs=response.outputs,
                    external_ref=response.external_ref or current.external_ref,
                    updated_at=_iso(response.updated_at),
                    mark_synced=bool(job and job.mark_synced),
                )
                self._enqueue(
                    conn, envelope, current.job, KIND_WRITEBACK, key, write_back.to_json()
                )
                jobs = (current.job,)
            self._audit(conn, envelope, "inbound_response", current.case_code)
            body = {
                "message_id": envelope.message_id,
                "status": "accepted",
                "referral_status": response.status,
            }
            return Answer(ACCEPTED_STATUS, body, jobs=jobs), key

        return self._accept(envelope, work)

    def record(self, envelope: Envelope, record: DepartmentRecord) -> Answer:
        """A department posts an FIR link, a court order or a verification result."""
        department = envelope.department
        if (replayed := self._replay_only(envelope)) is not None:
            return replayed
        case_id, code = self._resolve(department, record.case)
        digest = hashlib.sha256(case_id.encode()).hexdigest()[:16]
        natural = record.natural_key
        if natural is not None and len(natural) > 100:
            natural = hashlib.sha256(natural.encode()).hexdigest()[:32]
        suffix = f"{natural}:{digest}" if natural else digest
        key = link_key(department, f"{record.record_type}:{suffix}")

        def work(conn: Connection) -> tuple[Answer, str | None]:
            self.links.upsert(
                conn,
                key,
                job=INBOUND_JOB,
                department=department,
                case_id=case_id,
                referral_id=None,
                case_code=code,
                stage=STAGE_RECORD,
                external_ref=record.external_ref,
                remote_status=record.status,
                remote_note=record.note,
                remote_updated_at=record.updated_at or utcnow(),
                remote_version=envelope.message_id,
            )
            write_back = WriteBack(
                link_key=key,
                department=department,
                case_id=case_id,
                referral_id=None,  # a record never moves the referral's own status
                case_code=code,
                status=record.status,
                reason=None,
                note=record.note,
                outputs=(),
                external_ref=record.external_ref,
                updated_at=_iso(record.updated_at),
                record_type=record.record_type,
                details=dict(record.details),
            )
            self._enqueue(conn, envelope, INBOUND_JOB, KIND_WRITEBACK, key, write_back.to_json())
            self._audit(conn, envelope, f"inbound_{record.record_type}", code)
            body = {
                "message_id": envelope.message_id,
                "status": "accepted",
                "record_type": record.record_type,
            }
            return Answer(ACCEPTED_STATUS, body, jobs=(INBOUND_JOB,)), key

        return self._accept(envelope, work)

    def receive_conviction(
        self, envelope: Envelope, ingest: Callable[[], tuple[str, str | None]]
    ) -> Answer:
        """A court's conviction order, for the offender registry: ``ingest`` registers it
        (``Registry.ingest_conviction``, idempotent per order) and gives (status, reference).

        A replay answers from the inbox without calling ``ingest``. Nothing goes to Primero,
        and nothing of the identity is stored here: the inbox keeps the answer only.
        """
        if (replayed := self._replay_only(envelope)) is not None:
            return replayed
        # The registry writes in its own transaction. A twin of this message racing us ingests
        # the same order again, which changes nothing; the first answer stored wins below.
        status, reference = ingest()

        def work(conn: Connection) -> tuple[Answer, str | None]:
            append_entry(
                conn,
                self.keyring,
                {
                    "event": "inbound_conviction",
                    "department": envelope.department,
                    "stage": status,
                },
            )
            body = {"message_id": envelope.message_id, "status": status, "reference": reference}
            return Answer(200, body), None

        return self._accept(envelope, work)

    def _replay_only(self, envelope: Envelope) -> Answer | None:
        # Checked before resolving: a replay must not record a second security event or
        # depend on a link that changed since the first answer.
        with self.store.transaction() as conn:
            return self.inbox.replay(conn, envelope)

    def _accept(self, envelope: Envelope, work: _Work) -> Answer:
        try:
            with self.store.transaction() as conn:
                # Re-checked under the write lock: a concurrent twin may have committed.
                replayed = self.inbox.replay(conn, envelope)
                if replayed is not None:
                    return replayed
                answer, key = work(conn)
                self.inbox.record(conn, envelope, answer, key)
        except StateError as exc:
            if not isinstance(exc.__cause__, sa.exc.IntegrityError):
                raise
            # PostgreSQL: a twin committed between our check and our insert; its answer wins.
            with self.store.transaction() as conn:
                replayed = self.inbox.replay(conn, envelope)
            if replayed is None:
                raise
            return replayed
        return answer

    def _enqueue(
        self,
        conn: Connection,
        envelope: Envelope,
        job: str,
        kind: str,
        key: str,
        payload: Mapping[str, Any],
    ) -> None:
        idempotency_key = str(
            uuid.uuid5(_NAMESPACE, f"in:{envelope.department}:{envelope.message_id}")
        )
        body = json.dumps(payload, separators=(",", ":"), default=str).encode()
        self.outbox.enqueue(
            conn,
            idempotency_key=idempotency_key,
            job=job,
            destination=PRIMERO,
            kind=kind,
            link_key=key,
            payload=self.keyring.encrypt_payload(body, context=idempotency_key.encode()),
        )

    def _audit(self, conn: Connection, envelope: Envelope, event: str, code: str) -> None:
        # What a department told us is processing of personal data too: record that it
        # arrived (names and codes only), beside the disclosures in the same chain.
        append_entry(
            conn,
            self.keyring,
            {"event": event, "department": envelope.department, "case_code": code},
        )

    # -- resolving ------------------------------------------------------------------------

    def _resolve(self, department: str, ref: CaseRef) -> tuple[str, str]:
        """(case id, the department's case code) for a case code or a referral key."""
        if ref.case_code is not None:
            try:
                return self.codes.resolve(ref.case_code, department), ref.case_code
            except CodeRefused as refused:
                # CaseCodes.resolve has recorded the security event in its own transaction.
                raise CaseCodeRefused(_refusal_text(refused.kind), field="case_code") from None
        assert ref.referral_key is not None
        link = self._referral_link(department, ref.referral_key)
        return link.case_id, link.case_code

    def _referral_link(self, department: str, referral_key: str) -> Link:
        link = self.links.get(link_key(department, referral_key))
        if link is not None and link.stage == STAGE_INBOUND:
            raise ReferralClosed(
                "this referral_key names your own referral to the child protection unit; "
                "responses are for referrals the unit sent you.",
                field="referral_key",
            )
        if link is not None:
            return link
        others = [d for d in self.keyring.departments if d != department]
        if any(self.links.get(link_key(other, referral_key)) for other in others):
            # Same answer as for an unknown key (the other department's referral stays
            # invisible), but the attempt is a security event.
            with self.store.transaction() as conn:
                record_security_event(
                    conn,
                    SecurityEventKind.WRONG_DEPARTMENT,
                    department=department,
                    detail=f"referral key of another department presented by '{department}'",
                )
        raise UnknownReferral(
            f"no referral with this referral_key was sent to department '{department}'. "
            "Use the key from the referral the adapter delivered to you.",
            field="referral_key",
        )

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
                        handle = self._handler(client, dropped)
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
        return report

    def _due(self, job: str, *, now: datetime | None) -> list[OutboxMessage]:
        return self.outbox.due(PRIMERO, job=job, limit=32, now=now)

    def _handler(self, client: PrimeroClient, dropped: set[int]) -> Handler:
        """The delivery of one message; ``dropped`` collects the ids of intakes whose case
        was created without the department's district."""

        def handle(message: OutboxMessage, document: dict[str, Any]) -> Handled:
            if message.kind == KIND_INTAKE:
                result = self._apply_intake(client, document)
                if result.get("district_dropped"):
                    dropped.add(message.id)
                return result, {}
            return self._apply_write_back(client, message, document)

        return handle

    def _apply_write_back(
        self, client: PrimeroClient, message: OutboxMessage, document: Mapping[str, Any]
    ) -> Handled:
        write_back = WriteBack.from_json(document)
        applied = apply_write_back(client, write_back)
        return {"status": write_back.status}, {"written_back_status": write_back.status, **applied}

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


# -- Primero side of a department's referral (pure helpers and small calls) ----------------


def case_fields(
    intake: Intake, department: str, *, module_id: str, owner: str | None, today: date
) -> dict[str, Any]:
    """The Primero case fields of a department's referral (primero-api.md §6 field names)."""
    data: dict[str, Any] = {
        "module_id": module_id,
        "status": "open",
        "registration_date": today.isoformat(),
        "protection_concerns": list(intake.concerns),
        "risk_level": intake.urgency,
        "urgent_protection_concern": "true" if intake.urgency == "high" else "false",
        # The department's own reference, searchable through Primero's `query`
        # (filterable_id_fields, primero-api.md §3), so a CPO can find the case by it.
        "other_agency_id": intake.reference,
        "other_agency_name": department,
    }
    optional: dict[str, Any] = {
        "name": intake.name,
        "sex": intake.sex,
        "date_of_birth": intake.date_of_birth,
        "age": intake.known_age(today),
        "location_current": intake.district,
    }
    data.update({k: v for k, v in optional.items() if v is not None})
    if intake.age_estimated:
        data["estimated"] = True
    if owner:
        # owned_by is a core field Primero takes on create (permitted_field_service.rb):
        # the case lands in the responsible CPO's own list.
        data["owned_by"] = owner
    return data


def possible_matches(
    client: PrimeroClient, case_id: str, intake: Intake, *, today: date
) -> list[str]:
    """``case_id_display`` of open cases that may be the same child: same sex, a similar
    name (each name searched with Primero's phonetic search, then compared here) and an age
    within a year. Display ids only: the flag must not repeat another child's name."""
    if not intake.name:
        return []
    tokens = [t for t in name_key(intake.name).split() if len(t) >= 3][:3]
    found: dict[str, Record] = {}
    for token in tokens:
        params: dict[str, Any] = {"query": token, "phonetic": True, "per": 100}
        if intake.sex:
            params["sex"] = intake.sex
        records, _ = client.list_cases(params)
        found.update({str(r.get("id")): r for r in records})
    found.pop(case_id, None)
    age = intake.known_age(today)
    matches = {
        str(r["case_id_display"])
        for r in found.values()
        if r.get("case_id_display") and _similar(intake, r, age)
    }
    return sorted(matches)[:_MATCH_LIMIT]


def _similar(intake: Intake, record: Record, age: int | None) -> bool:
    if intake.sex and record.get("sex") not in (None, intake.sex):
        return False
    other_age = record.get("age")
    if age is not None and isinstance(other_age, int) and abs(other_age - age) > 1:
        return False
    name = record.get("name")
    if not isinstance(name, str) or intake.name is None:
        return False
    mine = name_key(intake.name).split()
    theirs = name_key(name).split()
    matched = sum(1 for token in mine if any(_same_name(token, t) for t in theirs))
    return bool(mine) and matched >= min(2, len(mine))


def _same_name(a: str, b: str) -> bool:
    """Spelling variants of one name: a close match, or the same consonant skeleton
    (Ayesha/Aisha, Muhammad/Mohd — privacy.md §2.2 lists such variants)."""
    if a == b or SequenceMatcher(None, a, b).ratio() >= 0.8:
        return True
    skeleton_a, skeleton_b = _skeleton(a), _skeleton(b)
    return len(skeleton_a) >= 2 and skeleton_a == skeleton_b


def _skeleton(token: str) -> str:
    # First letter, then consonants without the ones transliteration adds or drops freely
    # (vowels, h, w, y), repeats collapsed.
    if not token:
        return ""
    out = [token[0]]
    for ch in token[1:]:
        if ch in "aeiouhwy" or ch == out[-1]:
            continue
        out.append(ch)
    return "".join(out)


def _without_unknown_location(
    call: Callable[[dict[str, Any]], _T], fields: Mapping[str, Any]
) -> tuple[_T, bool]:
    """``call(fields)``; if Primero refuses (422) naming the district field, ``call`` again
    without it: the case lands without its district rather than as a dead letter. Returns
    (call's result, whether the district was left out).

    The refusal wrote nothing (the record's JSON schema is checked before it is saved, the
    "Type validation" row of primero-api.md §4: selects are checked against their enum), so
    the second call is the first write. Any other refusal stays fatal.
    """
    try:
        return call(dict(fields)), False
    except PrimeroValidationError as refused:
        if LOCATION_FIELD not in refused.fields or LOCATION_FIELD not in fields:
            raise
    # Only the field's name is logged: never the case or the child (house rules).
    log.warning(
        "Primero refused %s (an unknown location code from a department): writing the case "
        "without it",
        LOCATION_FIELD,
    )
    return call({k: v for k, v in fields.items() if k != LOCATION_FIELD}), True


def _fill_gaps(client: PrimeroClient, case_id: str, fields: Mapping[str, Any]) -> None:
    current = client.get_case(case_id, fields=list(fields))
    patch: dict[str, Any] = {}
    for key, value in fields.items():
        have = current.get(key)
        if key == "protection_concerns":
            union = sorted(set(have or []) | set(value))
            if union != sorted(have or []):
                patch[key] = union
        elif key not in ("owned_by", "module_id", "status") and have in (None, "", []):
            patch[key] = value
    if patch:
        client.update_case(case_id, patch, verify=False)


def _flag_once(client: PrimeroClient, case_id: str, messages: Iterable[str]) -> None:
    # add_flag is not idempotent: a retried delivery must not flag the case twice.
    current = {f.get("message") for f in client.list_flags(case_id) if not f.get("removed")}
    for message in messages:
        if message not in current:
            client.add_flag(case_id, message)


# -- small helpers ----------------------------------------------------------------------------


def _check_district(locations: LocationCatalogue, district: str) -> None:
    # None (the catalogue cannot be loaded) accepts: a child's referral is never refused
    # because Primero is unreachable; the write path leaves out a code Primero refuses.
    if locations.knows(district) is False:
        raise UnknownDistrict(
            "child.district is not a location code Primero knows: use a Primero location code "
            "(such as PK-SD-KHI), or leave district out. Your CPU's IT officer can list the "
            "codes with `cpims-adapter primero locations`.",
            field="child.district",
        )


def _check_open(link: Link, status: str) -> None:
    if link.stage in ("cancelled", "withdrawn"):
        raise ReferralClosed(
            f"this referral was {link.stage} by the child protection unit: nothing more can be "
            "recorded for it.",
            field="referral_key",
        )
    if link.remote_status in _TERMINAL and link.remote_status != status:
        raise ReferralClosed(
            f"this referral is already {link.remote_status}: it cannot become {status}. "
            "Contact the child protection unit if it must be reopened.",
            field="action",
        )


def _refusal_text(kind: str) -> str:
    if kind == SecurityEventKind.RETIRED_KEY:
        return (
            "case_code is under a retired key version: use the current code from the crosswalk "
            "the adapter sent your department."
        )
    return (
        "case_code was not issued to your department (or is not valid): refused. Use the code "
        "the adapter sent your department for this case."
    )


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def request_hash(route: str, path: str, body: Mapping[str, Any]) -> str:
    """SHA-256 of a message's route, path and canonical JSON body: equal for a true replay."""
    text = json.dumps(
        {"route": route, "path": path, "body": body},
        sort_keys=True,
        separators=(",", ":"),
        ensure_ascii=False,
        default=str,
    )
    return hashlib.sha256(text.encode()).hexdigest()


__all__: Sequence[str] = [
    "INBOUND_JOB",
    "Answer",
    "CaseCodeRefused",
    "CaseRef",
    "DepartmentRecord",
    "DrainReport",
    "Envelope",
    "InboundError",
    "InboundService",
    "Inbox",
    "Intake",
    "IntakeOptions",
    "MessageIdReused",
    "ReferralClosed",
    "ReferralResponse",
    "UnknownDistrict",
    "UnknownReferral",
    "case_fields",
    "possible_matches",
    "request_hash",
]
