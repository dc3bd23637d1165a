"""Requests, answers and records of the registry (pydantic at the edges, extra keys forbidden).

Identity fields are ``repr=False``: a model printed in a traceback or a debugger shows no CNIC,
name or date of birth. Validation messages describe the shape of a problem, never the value.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from datetime import date, datetime
from enum import StrEnum
from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, field_validator

from adapter.privacy.normalise import normalise_cnic, script_profile
from adapter.registry.matching import Outcome, canonical_tokens

REF_PATTERN = r"^[A-Z]{2}-[0-9A-Z]{16}$"
_ISO_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")


def _iso_date(value: Any) -> Any:
    # Lax pydantic would take an integer as a Unix timestamp; a DOB must be written out.
    if isinstance(value, date):
        return value
    if not isinstance(value, str) or not _ISO_DATE.match(value.strip()):
        raise ValueError("must be a date written YYYY-MM-DD")
    return value.strip()


IsoDate = Annotated[date, BeforeValidator(_iso_date)]


def check_name(value: str) -> str:
    """A person's name as entered: one script, some letters, no lookalike letters.

    privacy.md §7 item 16: a Cyrillic ``а`` inside "Muhаmmad" is refused, not silently folded;
    invisible controls (bidi overrides, ZWJ) are allowed here and stripped from every key.
    """
    # Plain ASCII can hold neither lookalike letters nor hidden controls: skip the per-letter
    # Unicode scan (an import checks two names per row).
    profile = None if value.isascii() else script_profile(value)
    if profile is not None and (profile.confusables or profile.mixed):
        raise ValueError(
            "mixes scripts (e.g. a Cyrillic or Greek letter in a Latin name): write it in one "
            "script, Latin or Urdu"
        )
    if not canonical_tokens(value):
        raise ValueError("has no letters")
    return value


def _cnic(value: Any) -> Any:
    if not isinstance(value, str):
        raise ValueError("must be text")
    return normalise_cnic(value)


Name = Annotated[str, Field(min_length=1, max_length=200, repr=False)]
Cnic = Annotated[str, Field(max_length=64, repr=False), BeforeValidator(_cnic)]


class CheckRequest(BaseModel):
    """What an establishment sends (privacy.md §6.6 item 2). Every field is required: a CNIC
    alone is refused (DBS, WWCC)."""

    model_config = ConfigDict(
        extra="forbid", frozen=True, str_strip_whitespace=True, hide_input_in_errors=True
    )

    cnic: Cnic
    full_name: Name
    father_name: Name
    date_of_birth: Annotated[IsoDate, Field(repr=False)]
    # From the subject's signed consent form; single-use.
    consent_ref: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9._/-]{5,63}$")
    position: str = Field(min_length=2, max_length=80, pattern=r"^[\w .,&'()/-]+$")
    purpose: str = Field(pattern=r"^[a-z][a-z0-9_]{1,39}$")

    _names = field_validator("full_name", "father_name")(check_name)

    @field_validator("date_of_birth")
    @classmethod
    def _plausible_dob(cls, value: date) -> date:
        if value.year < 1900 or value > date.today():
            raise ValueError("must be a real date of birth (after 1900, not in the future)")
        return value


class WorkerRegistration(BaseModel):
    """Continuous monitoring (privacy.md §6.6 item 8): a worker the establishment engaged after
    a CLEAR check, identified as in that check."""

    model_config = ConfigDict(
        extra="forbid", frozen=True, str_strip_whitespace=True, hide_input_in_errors=True
    )

    check_ref: str = Field(pattern=REF_PATTERN)
    cnic: Cnic
    full_name: Name
    father_name: Name
    date_of_birth: Annotated[IsoDate, Field(repr=False)]

    _names = field_validator("full_name", "father_name")(check_name)


class CheckAnswer(BaseModel):
    """The whole answer (privacy.md §6.6 item 5): a status, a reference, dates, how to appeal.

    :meth:`to_json` pads it to a fixed byte length, so CLEAR, PENDING_REVIEW and DO_NOT_ENGAGE
    cannot be told apart by size.
    """

    model_config = ConfigDict(extra="forbid", frozen=True, hide_input_in_errors=True)

    status: Outcome
    check_ref: str
    checked_at: str  # YYYY-MM-DDTHH:MM:SSZ, always 20 characters
    valid_until: str  # YYYY-MM-DD
    how_to_appeal: str

    def to_json(self, size: int) -> bytes:
        """Compact JSON padded with a ``pad`` member to exactly ``size`` bytes."""
        body: dict[str, str] = {**self.model_dump(mode="json"), "pad": ""}
        raw = json.dumps(body, separators=(",", ":"), ensure_ascii=True).encode("ascii")
        if len(raw) > size:
            raise ValueError(f"answer is {len(raw)} bytes, more than answer_bytes = {size}")
        body["pad"] = " " * (size - len(raw))
        return json.dumps(body, separators=(",", ":"), ensure_ascii=True).encode("ascii")


def format_instant(value: datetime) -> str:
    return value.strftime("%Y-%m-%dT%H:%M:%SZ")


class ConvictionOrder(BaseModel):
    """A court's conviction order as the court connector delivers it.

    ``appeal_state`` carries later orders about the same conviction: ``under_appeal`` while an
    appeal is pending, ``overturned`` when it succeeded (the entry is removed at once), back to
    ``none`` when it was dismissed. Delivering the same order twice changes nothing.
    """

    model_config = ConfigDict(
        extra="forbid", frozen=True, str_strip_whitespace=True, hide_input_in_errors=True
    )

    court: str = Field(pattern=r"^[a-z0-9][a-z0-9_-]{1,39}$")
    order_ref: str = Field(min_length=1, max_length=100, pattern=r"^[\w./:-]+$")
    order_date: IsoDate
    offence_code: str = Field(pattern=r"^[a-z0-9_]{2,40}$")
    cnic: Annotated[str | None, Field(max_length=64, repr=False)] = None
    full_name: Name
    father_name: Annotated[str | None, Field(max_length=200, repr=False)] = None
    full_name_urdu: Annotated[str | None, Field(max_length=200, repr=False)] = None
    father_name_urdu: Annotated[str | None, Field(max_length=200, repr=False)] = None
    date_of_birth: Annotated[IsoDate, Field(repr=False)]
    appeal_state: Literal["none", "under_appeal", "overturned"] = "none"

    @field_validator("cnic")
    @classmethod
    def _norm_cnic(cls, value: str | None) -> str | None:
        return normalise_cnic(value) if value else None

    @field_validator("full_name", "father_name", "full_name_urdu", "father_name_urdu")
    @classmethod
    def _one_script(cls, value: str | None) -> str | None:
        return check_name(value) if value else None


# --- records the library returns -----------------------------------------------------------


class RegistryEventKind(StrEnum):
    """Security-event kinds the registry records (``security_events.kind``)."""

    SEQUENTIAL_CNICS = "registry_sequential_cnics"
    MISMATCH_RATE = "registry_mismatch_rate"
    SUBJECT_WIDELY_CHECKED = "registry_subject_widely_checked"
    BAD_API_KEY = "registry_bad_api_key"
    IMPORT_SIGNATURE = "registry_import_signature_invalid"


class EntryStatus(StrEnum):
    ACTIVE = "active"
    UNDER_APPEAL = "under_appeal"
    REMOVED = "removed"


@dataclass(frozen=True)
class Identity:
    """A registered person as sealed in an entry (never leaves the registry except to an
    officer's review screen)."""

    cnic: str | None
    full_name: str
    father_name: str | None
    full_name_urdu: str | None
    father_name_urdu: str | None
    date_of_birth: date

    def to_json(self) -> dict[str, Any]:
        return {
            "cnic": self.cnic,
            "full_name": self.full_name,
            "father_name": self.father_name,
            "full_name_urdu": self.full_name_urdu,
            "father_name_urdu": self.father_name_urdu,
            "date_of_birth": self.date_of_birth.isoformat(),
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Identity:
        return cls(
            data.get("cnic"),
            data["full_name"],
            data.get("father_name"),
            data.get("full_name_urdu"),
            data.get("father_name_urdu"),
            date.fromisoformat(data["date_of_birth"]),
        )


@dataclass(frozen=True)
class EntryDraft:
    """One entry to register, from a conviction order or an import row."""

    source: str
    source_ref: str
    identity: Identity
    offence_code: str
    conviction_date: date
    court: str
    status: EntryStatus = EntryStatus.ACTIVE


@dataclass(frozen=True)
class IngestResult:
    """What :meth:`Registry.ingest_conviction` did: ``created``, ``unchanged``,
    ``status_changed``, ``removed`` or ``not_registrable`` (offence not configured)."""

    action: str
    entry_ref: str | None


@dataclass(frozen=True)
class ImportResult:
    """What a signed import did."""

    batch_ref: str
    rows: int
    created: int
    unchanged: int
    seconds: float


@dataclass(frozen=True)
class Establishment:
    """A registered establishment (privacy.md §6.6 item 1)."""

    id: int
    registration_number: str
    name: str
    officers: tuple[tuple[str, str], tuple[str, str]]  # (name, e-mail) × 2
    daily_quota: int
    monthly_quota: int
    status: str
    status_reason: str | None


@dataclass(frozen=True)
class ReviewItem:
    """One PENDING_REVIEW check in the officers' queue (no identity: see review_detail)."""

    check_ref: str
    establishment: str
    checked_at: datetime
    due_by: datetime | None
    rule: str
    purpose: str | None
    position: str | None
    monitoring: bool


@dataclass(frozen=True)
class Candidate:
    """A registry entry an officer compares with a submitted identity."""

    entry_ref: str
    status: str
    source: str
    source_ref: str
    identity: Identity
    offence_code: str
    conviction_date: str
    court: str


@dataclass(frozen=True)
class ReviewDetail:
    """What a registry officer sees to resolve one check (audited when opened)."""

    item: ReviewItem
    submitted: Identity | None
    candidates: tuple[Candidate, ...]


@dataclass(frozen=True)
class CheckRecord:
    """One of an establishment's own checks, as its history shows it (no person named)."""

    check_ref: str
    checked_at: datetime
    purpose: str | None
    position: str | None
    status: str  # CLEAR | PENDING_REVIEW | DO_NOT_ENGAGE | REJECTED (after any review)
    valid_until: datetime


@dataclass(frozen=True)
class AppealItem:
    """An appeal as the registry office lists it (never its grounds: they stay sealed)."""

    appeal_ref: str
    about: str  # the check or entry reference appealed
    kind: str  # check | entry
    status: str  # open | granted | refused
    received_by: str
    created_at: datetime
    decided_by: str | None
    decided_at: datetime | None


@dataclass(frozen=True)
class SubjectAccessRow:
    """One establishment's check (or monitoring registration) of the subject (DBS model)."""

    establishment: str
    registration_number: str
    at: datetime
    kind: str  # check | monitoring
    purpose: str | None
    position: str | None
    status: str


@dataclass(frozen=True)
class Notification:
    """One officer to tell that a monitored worker became DO_NOT_ENGAGE (NSW model)."""

    id: int
    establishment: str
    worker_ref: str
    check_ref: str
    officer_name: str
    officer_email: str
    status: str
    created_at: datetime
    delivered_at: datetime | None

    def message(self, how_to_appeal: str) -> str:
        """The e-mail body: references and status only, never a name or an offence."""
        return (
            f"Worker {self.worker_ref} registered by {self.establishment} for monitoring is now "
            f"{self.status} (check {self.check_ref}). Do not engage this worker in work with "
            f"children. {how_to_appeal}"
        )
