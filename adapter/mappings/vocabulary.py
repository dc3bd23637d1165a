"""The adapter's own vocabulary of referrals, shared by the mappings, the connectors and the
engines: the statuses a department's own are mapped onto, the kinds of outbound document, and
``StatusUpdate``, one change of a referral's status at a department. Data only, no behaviour,
so every floor from the parts up may import it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime

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
