"""What the sync engine needs from any department connector, whatever its transport.

A connector delivers *documents* the department mapping built (pure, in ``adapter/mappings``)
and reports the department's status changes as ``StatusUpdate``s in the adapter's own status
vocabulary. The engine, the outbox and the Primero write-back never see a transport detail.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol

# The adapter's referral status vocabulary (a department's own statuses are mapped onto it).
REQUESTED = "requested"
ACCEPTED = "accepted"
REJECTED = "rejected"
IN_PROGRESS = "in_progress"
COMPLETED = "completed"
CANCELLED = "cancelled"
FAILED = "failed"
STATUSES = (REQUESTED, ACCEPTED, REJECTED, IN_PROGRESS, COMPLETED, CANCELLED, FAILED)

# Kinds of outbound document, in the order a referral can go through them.
PROBE = "probe"  # anonymous capacity check
REFERRAL = "referral"  # identified referral, after the probe was accepted
UPDATE = "update"  # the case changed after the referral was sent
CANCEL = "cancel"  # the CPO revoked the referral
WITHDRAW = "withdraw"  # consent withdrawn: stop, and ask the department to erase


@dataclass(frozen=True)
class Delivery:
    """What a department said when it took a document."""

    external_ref: str | None = None


@dataclass(frozen=True)
class StatusUpdate:
    """One change of a referral's status at the department, with no personal data."""

    referral_key: str
    status: str
    external_ref: str | None = None
    # True once the identified referral is attached (two-stage flows).
    linked: bool = False
    reason: str | None = None  # a coded reason (rejection, cancellation)
    note: str | None = None  # the provider's short note, shown to the CPO
    outputs: tuple[str, ...] = ()  # references to results (e.g. a medico-legal report)
    updated_at: datetime | None = None
    version: str | None = None
    # What the department's record is: referral, or a record type its mapping file declares.
    record_type: str = "referral"
    # Short, department-defined facts shown to the CPO in the linked record (e.g. FIR
    # sections, investigating officer's rank); keys are field names, values are text.
    details: Mapping[str, str] = field(default_factory=dict)


class Connector(Protocol):
    """A department system, as the engine sees it."""

    @property
    def department(self) -> str: ...

    def deliver(self, kind: str, document: Mapping[str, Any], *, idempotency_key: str) -> Delivery:
        """Deliver one document; idempotent for the same document (``idempotency_key`` is
        stable across re-sends: send it where the transport has a place for it). Raises
        ``Retryable``, ``RateLimited`` or ``Fatal`` (adapter.errors)."""
        ...

    def check(self) -> str:
        """Reach the department with a harmless request (``cpims-adapter check``): what was
        reached, in one line, or an AdapterError saying what failed and where."""
        ...

    def status_updates(self, since: str | None) -> Iterator[tuple[StatusUpdate, str]]:
        """Status changes since the watermark ``since``; each with the watermark after it."""
        ...

    def close(self) -> None: ...
