"""The inbound service's plain types, as the API hands messages over and gets answers back,
and the names of the outbox work a message queues."""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from datetime import date, datetime
from typing import Any

INBOUND_JOB = "inbound"  # the outbox job of work that starts at the inbound API
PRIMERO = "primero"  # the outbox destination (the same as the sync engine's write-backs)
KIND_INTAKE = "intake"  # a department's referral to the CPU: create or complete a case

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
    # A record type the departments' mapping files declare ([record_types]), e.g. fir.
    record_type: str
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
    # Write-back messages (by kind) that wait for a Primero permission.
    waiting_for_grant: Counter[str] = field(default_factory=Counter)
