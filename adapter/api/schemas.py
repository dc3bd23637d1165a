"""The inbound API's messages: strict JSON, unknown fields refused, nothing the CPU must not hold.

Every model forbids unknown fields and validates strictly (a number sent as a string, or a
boolean as ``"true"``, is an error, not a guess). Free text is bounded, refuses control
characters and refuses anything shaped like a CNIC: no route accepts parents' CNICs
(privacy.md §6.4: NADRA keeps them), whether as a field or inside a note. Shapes follow
departments.md §3 (birth verification), §4 (FIR link), §5 (court order).

The one exception is ``POST /v1/convictions`` (courts only): a conviction order names the
convicted adult by CNIC, names and date of birth for the offender registry; it never reaches
Primero.

Each message converts itself to the inbound service's plain types (``adapter.jobs.inbound``);
the service never sees the wire format.
"""

from __future__ import annotations

import hashlib
import re
from datetime import UTC, date, datetime, timedelta
from typing import Annotated, Any, Literal
from uuid import UUID

from pydantic import (
    AfterValidator,
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    model_validator,
)
from pydantic_core import PydanticCustomError

from adapter.clock import utcnow
from adapter.jobs.inbound import CaseRef, DepartmentRecord, Intake, ReferralResponse
from adapter.mappings.vocabulary import ACCEPTED, COMPLETED, REJECTED
from adapter.privacy.errors import IdentifierError
from adapter.privacy.normalise import ascii_digits, normalise_cnic
from adapter.registry.models import ConvictionOrder, check_name
from adapter.vocabulary import CourtOrderStatus, CourtOrderType, ProtectionConcern

# 5-7-1 digits with optional separators, in any digit script (ascii_digits folds them first).
_CNIC = re.compile(r"(?<!\d)\d{5}[-\s‐-―−]?\d{7}[-\s‐-―−]?\d(?!\d)")
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")
_CONTROL_ONE_LINE = re.compile(r"[\x00-\x1f\x7f]")


def _plain(value: str) -> str:
    if _CONTROL_ONE_LINE.search(value):
        raise PydanticCustomError(
            "control_characters", "must be one line without control characters."
        )
    return _no_cnic(value)


def _text(value: str) -> str:
    if _CONTROL.search(value):
        raise PydanticCustomError(
            "control_characters", "must not contain control characters (line breaks are fine)."
        )
    return _no_cnic(value)


def _no_cnic(value: str) -> str:
    if _CNIC.search(ascii_digits(value)):
        raise PydanticCustomError(
            "cnic_refused",
            "contains what looks like a CNIC number: CNICs are never accepted by this API "
            "(privacy policy). Remove it.",
        )
    return value


def _not_future(value: date) -> date:
    # A day of slack: a department's clock in PKT may already be on tomorrow's date.
    if value > utcnow().date() + timedelta(days=1):
        raise PydanticCustomError("future_date", "must not be in the future.")
    return value


# A department's clock may run ahead; nothing it reports happened before Pakistan existed.
_EARLIEST = datetime(1947, 8, 14, tzinfo=UTC)


def _real_instant(value: datetime) -> datetime:
    # Without bounds, 9999-12-31T23:00-05:00 overflowed the state store's UTC conversion (a
    # 5xx) and year 5 became a date Primero refuses (a dead letter): tests/fuzz/test_api_schema.py
    if value > utcnow() + timedelta(days=1):
        raise PydanticCustomError("future_date", "must not be in the future.")
    if value < _EARLIEST:
        raise PydanticCustomError("date_range", "must not be before 1947-08-14.")
    return value


Name = Annotated[str, StringConstraints(min_length=1, max_length=200), AfterValidator(_plain)]
ShortText = Annotated[str, StringConstraints(min_length=1, max_length=200), AfterValidator(_plain)]
Label = Annotated[
    str,
    StringConstraints(min_length=1, max_length=120, pattern=r"^[\w][\w .,'()/&-]*$"),
    AfterValidator(_plain),
]
# Shorter labels for the parts of a record's reference: the linked-record row in Primero
# holds at most 200 characters per reference (linked_records.TEXT_MAX).
ShortLabel = Annotated[
    str,
    StringConstraints(min_length=1, max_length=60, pattern=r"^[\w][\w .,'()/&-]*$"),
    AfterValidator(_plain),
]
Number = Annotated[
    str,
    StringConstraints(min_length=1, max_length=40, pattern=r"^[\w][\w .()/-]*$"),
    AfterValidator(_plain),
]
CourtName = Annotated[
    str,
    StringConstraints(min_length=1, max_length=80, pattern=r"^[\w][\w .,'()/&-]*$"),
    AfterValidator(_plain),
]
LongText = Annotated[str, StringConstraints(min_length=1, max_length=1000), AfterValidator(_text)]
Reference = Annotated[
    str,
    StringConstraints(min_length=1, max_length=100, pattern=r"^[A-Za-z0-9][A-Za-z0-9._:/-]*$"),
    AfterValidator(_no_cnic),
]
ReferralKey = Annotated[
    str, StringConstraints(min_length=1, max_length=150, pattern=r"^[A-Za-z0-9][A-Za-z0-9._:/-]*$")
]
CaseCode = Annotated[
    str,
    StringConstraints(
        max_length=120, pattern=r"^cp1\.[a-z][a-z0-9_]{1,39}\.[1-9][0-9]{0,5}\.[a-z2-7]{52}$"
    ),
]
ReasonCode = Annotated[str, StringConstraints(pattern=r"^[a-z0-9][a-z0-9_-]{0,59}$")]
District = Annotated[str, StringConstraints(pattern=r"^[A-Z]{2}(-[A-Z0-9]{2,5}){1,3}$")]
Phone = Annotated[str, StringConstraints(pattern=r"^\+?[0-9][0-9 -]{5,18}[0-9]$")]
Email = Annotated[
    str,
    StringConstraints(max_length=200, pattern=r"^[^@\s\x00-\x1f]+@[^@\s\x00-\x1f]+\.[A-Za-z]+$"),
]
Section = Annotated[
    str, StringConstraints(min_length=1, max_length=30, pattern=r"^[A-Za-z0-9][A-Za-z0-9 ()/.-]*$")
]
RegistrationNumber = Annotated[
    str,
    StringConstraints(max_length=40, pattern=r"^[A-Za-z0-9][A-Za-z0-9/-]*$"),
    AfterValidator(_no_cnic),
]
Sha256 = Annotated[str, StringConstraints(pattern=r"^[0-9a-f]{64}$")]
PastDate = Annotated[date, AfterValidator(_not_future)]
Instant = Annotated[AwareDatetime, AfterValidator(_real_instant)]
Year = Annotated[int, Field(ge=1947, le=2100)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)


class _Message(_Strict):
    message_id: UUID = Field(
        description="A new UUID for every message. Re-sending the same message with the same "
        "id returns the first answer and changes nothing; another message under a used id "
        "gets 409."
    )


class _AboutCase(_Message):
    """A message about one case, named by exactly one of case_code and referral_key."""

    case_code: CaseCode | None = Field(
        None, description="The case code the adapter issued to your department."
    )
    referral_key: ReferralKey | None = Field(
        None, description="Or: the key of the referral the adapter delivered to you."
    )

    @model_validator(mode="after")
    def _one_case_reference(self) -> _AboutCase:
        if (self.case_code is None) == (self.referral_key is None):
            raise PydanticCustomError(
                "one_of",
                "name the case with exactly one of case_code and referral_key.",
                {"field": "case_code"},
            )
        return self

    def case_ref(self) -> CaseRef:
        return CaseRef(case_code=self.case_code, referral_key=self.referral_key)


# -- POST /v1/referrals ---------------------------------------------------------------------


class Child(_Strict):
    """What the department knows of the child; every field is optional, none is a CNIC."""

    name: Name | None = None
    sex: Literal["male", "female"] | None = None
    date_of_birth: PastDate | None = None
    age: Annotated[int, Field(ge=0, le=17)] | None = None
    age_estimated: bool = False
    district: District | None = Field(
        None,
        description="Primero location code of the district, e.g. PK-SD-KHI. A code Primero "
        "does not know is refused (422, code unknown_district).",
    )


class Officer(_Strict):
    """The officer who made the referral, so the CPO can call back."""

    name: Name
    rank: ShortText | None = None
    phone: Phone | None = None
    email: Email | None = None

    def one_line(self) -> str:
        return ", ".join(p for p in (self.name, self.rank, self.phone, self.email) if p)


class ReferralIn(_Message):
    """A department refers a child to the child protection unit."""

    reference: Reference = Field(description="Your own reference for this referral.")
    child: Child
    concern_codes: Annotated[list[ProtectionConcern], Field(min_length=1, max_length=10)]
    reason: LongText
    urgency: Literal["high", "medium", "low"]
    referring_officer: Officer

    def to_intake(self) -> Intake:
        child = self.child
        return Intake(
            reference=self.reference,
            concerns=tuple(dict.fromkeys(self.concern_codes)),
            reason=self.reason,
            urgency=self.urgency,
            officer=self.referring_officer.one_line(),
            name=child.name,
            sex=child.sex,
            date_of_birth=child.date_of_birth.isoformat() if child.date_of_birth else None,
            age=child.age,
            age_estimated=child.age_estimated,
            district=child.district,
        )


# -- POST /v1/referrals/{referral_key}/response -----------------------------------------------

_ACTION_STATUS = {"accept": ACCEPTED, "reject": REJECTED, "complete": COMPLETED}


class ResponseIn(_Message):
    """Your answer to a referral the child protection unit sent you."""

    action: Literal["accept", "reject", "complete"]
    reason: ReasonCode | None = Field(
        None, description="A short code; required to reject (e.g. no_capacity)."
    )
    note: LongText | None = Field(None, description="Shown to the CPO in the case.")
    outputs: Annotated[list[ShortText], Field(max_length=20)] = Field(
        default_factory=list, description="References to results, e.g. a report number."
    )
    external_ref: ShortText | None = Field(None, description="Your reference for the referral.")
    updated_at: Instant | None = None

    @model_validator(mode="after")
    def _rejection_has_reason(self) -> ResponseIn:
        if self.action == "reject" and self.reason is None:
            raise PydanticCustomError(
                "needs_field",
                "a rejection needs reason: add a short code such as no_capacity.",
                {"field": "reason"},
            )
        return self

    def to_response(self, referral_key: str) -> ReferralResponse:
        return ReferralResponse(
            referral_key=referral_key,
            status=_ACTION_STATUS[self.action],
            reason=self.reason,
            note=self.note,
            outputs=tuple(self.outputs),
            external_ref=self.external_ref,
            updated_at=self.updated_at,
        )


# -- POST /v1/fir-links (departments.md §4) ---------------------------------------------------


class Fir(_Strict):
    """The FIR: its key (province, district, police station, year, serial) and progress. The
    victim is the case code; no name of anyone is taken."""

    province: Literal[
        "punjab",
        "sindh",
        "khyber_pakhtunkhwa",
        "balochistan",
        "islamabad",
        "gilgit_baltistan",
        "azad_kashmir",
    ]
    district: ShortLabel
    police_station: ShortLabel
    fir_number: Annotated[int, Field(ge=1, le=999_999)]
    fir_year: Year
    fir_date: PastDate | None = None
    incident_date: PastDate | None = None
    offence_sections: Annotated[list[Section], Field(max_length=20)] = Field(
        default_factory=list, description="e.g. 377-B, 376 (PPC)."
    )
    complainant_type: (
        Literal["victim", "parent_or_guardian", "child_protection_unit", "police", "other"] | None
    ) = None
    accused_is_juvenile: bool | None = None
    investigating_officer_rank: ShortText | None = None
    status: Literal["registered", "under_investigation", "challan_submitted", "cancelled"]
    challan_date: PastDate | None = None
    court_referred_to: Label | None = None
    medico_legal_required: bool | None = None
    mlc_reference: ShortText | None = None
    updated_at: Instant | None = None


class FirLinkIn(_AboutCase):
    """Link a case to an FIR (First Information Report)."""

    fir: Fir

    def to_record(self) -> DepartmentRecord:
        fir = self.fir
        details = _facts(
            ("offence sections", ", ".join(fir.offence_sections) or None),
            ("FIR date", fir.fir_date),
            ("incident date", fir.incident_date),
            ("investigating officer", fir.investigating_officer_rank),
            ("accused juvenile", _yes_no(fir.accused_is_juvenile)),
            ("challan date", fir.challan_date),
            ("court", fir.court_referred_to),
            ("medico-legal exam", _yes_no(fir.medico_legal_required, "required", "not required")),
            ("MLC", fir.mlc_reference),
        )
        return DepartmentRecord(
            case=self.case_ref(),
            record_type="fir",
            status=fir.status,
            natural_key=f"{fir.province}/{fir.district}/{fir.police_station}/"
            f"{fir.fir_year}/{fir.fir_number}",
            external_ref=f"FIR {fir.fir_number}/{fir.fir_year}, {fir.police_station}, "
            f"{fir.district}",
            details=details,
            updated_at=fir.updated_at,
        )


# -- POST /v1/court-orders (departments.md §5) ------------------------------------------------


class Court(_Strict):
    type: Literal["child_protection", "juvenile", "family", "sessions", "high"]
    name: CourtName
    district: ShortLabel


class CourtOrder(_Strict):
    """One order of a court about the child (parties by role only: no names)."""

    court: Court
    case_number: Number
    case_year: Year
    order_number: Number
    order_date: PastDate
    order_type: CourtOrderType
    status: CourtOrderStatus
    effective_from: date | None = None
    effective_to: date | None = None
    review_date: date | None = None
    next_hearing_date: date | None = None
    conditions: Annotated[list[ShortText], Field(max_length=10)] = Field(default_factory=list)
    supersedes_order_number: Number | None = None
    document_sha256: Sha256 | None = Field(None, description="SHA-256 of the scanned order.")
    updated_at: Instant | None = None

    @model_validator(mode="after")
    def _period(self) -> CourtOrder:
        if self.effective_from and self.effective_to and self.effective_to < self.effective_from:
            raise PydanticCustomError(
                "date_range",
                "effective_to is before effective_from: swap or correct them.",
                {"field": "effective_to"},
            )
        return self


class CourtOrderIn(_AboutCase):
    """Record a court order about a case."""

    order: CourtOrder

    def to_record(self) -> DepartmentRecord:
        order = self.order
        details = _facts(
            ("order type", order.order_type.replace("_", " ")),
            ("order date", order.order_date),
            ("effective from", order.effective_from),
            ("effective to", order.effective_to),
            ("review date", order.review_date),
            ("next hearing", order.next_hearing_date),
            ("supersedes order", order.supersedes_order_number),
        )
        court = order.court
        return DepartmentRecord(
            case=self.case_ref(),
            record_type="court_order",
            status=order.status,
            natural_key=f"{court.type}/{court.district}/{order.case_number}/"
            f"{order.case_year}/{order.order_number}",
            external_ref=f"{court.name}, case {order.case_number}/{order.case_year}, "
            f"order {order.order_number}",
            note="; ".join(order.conditions) or None,
            details=details,
            updated_at=order.updated_at,
        )


# -- POST /v1/birth-verifications (departments.md §3) -----------------------------------------


class Verification(_Strict):
    """The answer of a birth-registration check: the match and registration numbers only.
    Parents' names and CNICs are not part of this message and are refused."""

    request_id: Reference
    match_status: Literal["match", "no_match", "multiple", "partial"]
    registration_number: RegistrationNumber | None = Field(
        None, description="Union Council birth registration number; required for a match."
    )
    registration_date: PastDate | None = None
    registering_uc: Label | None = None
    registering_district: Label | None = None
    certificate_issued: bool | None = None
    crc_issued: bool | None = Field(None, description="Whether a CRC (B-Form) exists.")
    source_system: Label | None = None
    checked_at: Instant | None = None

    @model_validator(mode="after")
    def _match_has_number(self) -> Verification:
        if self.match_status == "match" and self.registration_number is None:
            raise PydanticCustomError(
                "needs_field",
                "a match needs registration_number: add it.",
                {"field": "registration_number"},
            )
        return self


class VerificationIn(_AboutCase):
    """Record the result of a birth-registration verification."""

    verification: Verification

    def to_record(self) -> DepartmentRecord:
        result = self.verification
        details = _facts(
            ("registration date", result.registration_date),
            ("registering UC", result.registering_uc),
            ("district", result.registering_district),
            ("certificate issued", _yes_no(result.certificate_issued)),
            ("CRC issued", _yes_no(result.crc_issued)),
            ("source", result.source_system),
        )
        return DepartmentRecord(
            case=self.case_ref(),
            record_type="birth_registration",
            status=result.match_status,
            natural_key=None,  # one verification row per case: a newer result replaces it
            external_ref=result.registration_number,
            details=details,
            updated_at=result.checked_at,
        )


# -- POST /v1/convictions (courts only; issue 6) -----------------------------------------------

ConvictionNumber = Annotated[
    str, StringConstraints(min_length=1, max_length=40, pattern=r"^[A-Za-z0-9][A-Za-z0-9./:-]*$")
]
OffenceCode = Annotated[str, StringConstraints(pattern=r"^[a-z0-9_]{2,40}$")]


def _cnic(value: str) -> str:
    try:
        return normalise_cnic(value)
    except IdentifierError:
        raise PydanticCustomError(
            "cnic_invalid",
            "must be a 13-digit CNIC starting with a province digit 1-8 (dashes optional).",
        ) from None


def _person_name(value: str) -> str:
    value = _plain(value)
    try:
        return check_name(value)
    except ValueError:
        raise PydanticCustomError(
            "name_invalid", "must be a name in one script, with letters and no lookalike letters."
        ) from None


def _adult_dob(value: date) -> date:
    if value.year < 1900 or value > utcnow().date():
        raise PydanticCustomError(
            "future_date", "must be a real date of birth (after 1900, not in the future)."
        )
    return value


CnicNumber = Annotated[str, StringConstraints(min_length=1, max_length=64), AfterValidator(_cnic)]
PersonName = Annotated[
    str, StringConstraints(min_length=1, max_length=200), AfterValidator(_person_name)
]


class ConvictedPerson(_Strict):
    """Who was convicted, as the order names them. Never echoed, logged or sent to Primero."""

    cnic: CnicNumber = Field(repr=False)
    full_name: PersonName = Field(repr=False)
    father_name: PersonName = Field(repr=False)
    date_of_birth: Annotated[date, AfterValidator(_adult_dob)] = Field(repr=False)


class ConvictionIn(_Message):
    """A court's conviction order, for the offender registry (courts only)."""

    court: Court
    case_number: ConvictionNumber
    order_ref: ConvictionNumber = Field(description="The order's own reference in the court.")
    order_date: PastDate
    offence_codes: Annotated[list[OffenceCode], Field(min_length=1, max_length=10)] = Field(
        description="Offence codes of the conviction, e.g. ppc_377a (registry.offences)."
    )
    appeal_state: Literal["none", "under_appeal", "overturned"] = Field(
        "none", description="under_appeal while an appeal is pending; overturned removes it."
    )
    person: ConvictedPerson

    def court_id(self) -> str:
        """A stable identifier of the court (``type-district-name``, at most 40 characters)."""
        court = self.court
        text = f"{court.type}-{court.district}-{court.name}".lower()
        slug = re.sub(r"[^a-z0-9]+", "-", text).strip("-")
        if len(slug) <= 40:
            return slug
        digest = hashlib.sha256(text.encode()).hexdigest()[:8]
        return f"{slug[:31].rstrip('-')}-{digest}"

    def to_order(self, offence_code: str) -> ConvictionOrder:
        """The registry's order for one (registrable) offence of this conviction."""
        person = self.person
        return ConvictionOrder(
            court=self.court_id(),
            order_ref=f"{self.case_number}:{self.order_ref}",
            order_date=self.order_date,
            offence_code=offence_code,
            cnic=person.cnic,
            full_name=person.full_name,
            father_name=person.father_name,
            date_of_birth=person.date_of_birth,
            appeal_state=self.appeal_state,
        )


# -- answers ----------------------------------------------------------------------------------


class ErrorDetail(BaseModel):
    code: str = Field(description="Stable error code, e.g. unknown_field, message_id_reused.")
    message: str = Field(description="What is wrong and how to fix it; never echoes a value.")
    field: str | None = Field(description="Dotted path of the field at fault, if any.")


class ErrorBody(BaseModel):
    """Every error answer."""

    error: ErrorDetail


class ReferralAccepted(BaseModel):
    message_id: str
    status: Literal["accepted"]
    case_code: str = Field(description="Your department's code for this child from now on.")


class ResponseAccepted(BaseModel):
    message_id: str
    status: Literal["accepted"]
    referral_status: str


class RecordAccepted(BaseModel):
    message_id: str
    status: Literal["accepted"]
    record_type: str = Field(
        description="The record's type in the case's linked department records, e.g. fir."
    )


class ConvictionAnswer(BaseModel):
    message_id: str
    status: Literal["accepted", "not_registrable"] = Field(
        description="not_registrable: none of the offences is one the registry holds."
    )
    reference: str | None = Field(description="The registry entry's reference, if any.")


class Health(BaseModel):
    status: Literal["ok"]
    version: str


REQUEST_MODELS: tuple[type[BaseModel], ...] = (
    ReferralIn,
    ResponseIn,
    FirLinkIn,
    CourtOrderIn,
    VerificationIn,
    ConvictionIn,
)


def _facts(*pairs: tuple[str, Any]) -> dict[str, str]:
    return {name: str(value) for name, value in pairs if value is not None and value != ""}


def _yes_no(value: bool | None, yes: str = "yes", no: str = "no") -> str | None:
    return None if value is None else (yes if value else no)
