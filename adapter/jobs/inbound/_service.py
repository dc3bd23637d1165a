"""Accepting inbound messages: resolve the case, update links, queue the Primero work in the
outbox and store the answer in the inbox, all in one transaction."""

from __future__ import annotations

import hashlib
import json
import uuid
from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from adapter.clock import utcnow
from adapter.config import Settings
from adapter.errors import StateError
from adapter.jobs.inbound._delivery import _Delivery
from adapter.jobs.inbound._districts import _check_district
from adapter.jobs.inbound._errors import CaseCodeRefused, ReferralClosed, UnknownReferral
from adapter.jobs.inbound._inbox import Inbox
from adapter.jobs.inbound._messages import (
    INBOUND_JOB,
    KIND_INTAKE,
    PRIMERO,
    Answer,
    CaseRef,
    DepartmentRecord,
    Envelope,
    Intake,
    IntakeOptions,
    ReferralResponse,
)
from adapter.jobs.writeback import WriteBack, write_back_messages
from adapter.mappings.vocabulary import CANCELLED, COMPLETED, FAILED, REJECTED
from adapter.primero.locations import LocationCatalogue
from adapter.privacy import CaseCodes, CodeRefused, KeyRing, SecurityEventKind
from adapter.privacy.audit import append_entry
from adapter.privacy.events import record_security_event
from adapter.state import StateStore
from adapter.state.links import Link, Links, link_key
from adapter.state.outbox import Outbox

ACCEPTED_STATUS = 202
# Link stages of links made here (the sync engine's are probe, identified, cancelled, ...).
STAGE_INBOUND, STAGE_RECORD = "inbound", "record"
_TERMINAL = {COMPLETED, REJECTED, CANCELLED, FAILED}
_NAMESPACE = uuid.UUID("0d5c8f52-8c1e-4b7e-9a3f-5b2e7d9c4a10")
# Case ids of departments' referrals: uuid5(department:reference), so a re-sent referral maps
# to the same case and Primero's create answers 409 instead of making a second child.
CASE_NAMESPACE = uuid.UUID("b8a4c1e2-5f3d-4e6a-8c7b-2d1f0e9a6b53")


# -- the service ----------------------------------------------------------------------------

_Work = Callable[[Connection], tuple[Answer, str | None]]


class InboundService(_Delivery):
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
                self._enqueue_write_back(conn, envelope, current.job, write_back)
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
            self._enqueue_write_back(conn, envelope, INBOUND_JOB, write_back)
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
        idempotency_key = self._idempotency_key(envelope)
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

    def _enqueue_write_back(
        self, conn: Connection, envelope: Envelope, job: str, write_back: WriteBack
    ) -> None:
        """Queue a write-back part by part (adapter/jobs/writeback.py): one part Primero
        refuses never holds another back."""
        self.outbox.enqueue_many(
            conn,
            write_back_messages(
                write_back,
                idempotency_key=self._idempotency_key(envelope),
                job=job,
                encrypt=lambda plain, context: self.keyring.encrypt_payload(plain, context=context),
            ),
        )

    @staticmethod
    def _idempotency_key(envelope: Envelope) -> str:
        return str(uuid.uuid5(_NAMESPACE, f"in:{envelope.department}:{envelope.message_id}"))

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
        owners = [
            other
            for other in self.keyring.departments
            if other != department and self.links.get(link_key(other, referral_key))
        ]
        if owners:
            # Same answer as for an unknown key (the other department's referral stays
            # invisible), but the attempt is a security event. The detail names the owner, so
            # the incident's notice reaches the department whose key leaked (runbook-breach §5).
            named = ", ".join(f"'{owner}'" for owner in owners)
            with self.store.transaction() as conn:
                record_security_event(
                    conn,
                    SecurityEventKind.WRONG_DEPARTMENT,
                    department=department,
                    detail=f"referral key of department {named} presented by '{department}'",
                )
        raise UnknownReferral(
            f"no referral with this referral_key was sent to department '{department}'. "
            "Use the key from the referral the adapter delivered to you.",
            field="referral_key",
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
