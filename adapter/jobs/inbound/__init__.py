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

Where each part lives: ``_messages`` (the plain types the API hands over), ``_errors`` (refusals),
``_inbox`` (idempotency), ``_service`` (accepting), ``_delivery`` (the drain into Primero),
``_intake`` (the Primero side of a department's referral) and ``_districts`` (unknown districts).
"""

from collections.abc import Sequence

from adapter.jobs.inbound._errors import (
    CaseCodeRefused,
    InboundError,
    MessageIdReused,
    ReferralClosed,
    UnknownDistrict,
    UnknownReferral,
)
from adapter.jobs.inbound._inbox import Inbox, request_hash
from adapter.jobs.inbound._intake import case_fields, possible_matches
from adapter.jobs.inbound._messages import (
    INBOUND_JOB,
    Answer,
    CaseRef,
    DepartmentRecord,
    DrainReport,
    Envelope,
    Intake,
    IntakeOptions,
    ReferralResponse,
)
from adapter.jobs.inbound._service import CASE_NAMESPACE, InboundService

__all__: Sequence[str] = [
    "CASE_NAMESPACE",
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
