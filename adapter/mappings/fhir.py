"""Health referrals as FHIR R4 transaction Bundles: pure functions, no I/O.

The pattern is departments.md §1's Task-based referral: a ServiceRequest is the referral, a Task
tracks its fulfilment (the receiver only ever updates the Task), the Patient carries nothing but
the department's pseudonymous case code and the allow-listed demographics, and a Consent records
the basis of the disclosure. One transaction Bundle carries all four.

Sending twice must never duplicate (the outbox delivers at least once): every entry is a
conditional create (``request.ifNoneExist`` on its identifier), and the ``urn:uuid`` fullUrls are
uuid5 of the referral key, so the same input gives byte-identical output. When a case is edited
after referral, :func:`build_content_update_bundle` replaces the department's copy through
conditional updates (``PUT Type?identifier=``, departments.md §1 "Conditional create/update").

Models are ``fhir.resources.R4B`` (wire-compatible with R4 for these resources, departments.md
§1). The hot path (a sync maps every referral) builds plain dicts: validating five models and
running fhir_core's serialiser per referral was most of a sync's cost (BENCHMARKS.md). The
``*_bundle_json`` functions return those dicts; ``build_*_bundle`` validate the same dicts into
models, and tests/mappings check, for every input the builders accept, that the dict is valid
R4B and serialises to exactly the bytes of the validated model. Free text enters a bundle only
through :attr:`HealthReferral.note` and :attr:`HealthReferral.legal_reference`, never by default
(privacy.md §6.4: narrative never goes to health).

Reading a Task back (:func:`task_update_from_json`) lives in ``fhir_task.py``.
"""

from __future__ import annotations

import hashlib
import json
import re
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from datetime import UTC, date, datetime
from typing import Any, Final, TypeVar
from urllib.parse import quote

from fhir.resources.R4B.bundle import Bundle
from fhir.resources.R4B.consent import Consent
from fhir.resources.R4B.patient import Patient
from fhir.resources.R4B.servicerequest import ServiceRequest
from fhir.resources.R4B.task import Task
from pydantic import ValidationError

from adapter.errors import MappingError
from adapter.mappings import fhir_codes as codes
from adapter.mappings.fhir_task import TaskOutput, TaskUpdate, task_update_from_json

__all__ = [
    "DEMOGRAPHIC_FIELDS",
    "HealthReferral",
    "OrgRef",
    "TaskOutput",
    "TaskUpdate",
    "build_content_update_bundle",
    "build_referral_bundle",
    "case_code_system",
    "consent_search_token",
    "content_fingerprint",
    "content_update_bundle_json",
    "full_url",
    "referral_bundle_json",
    "referral_search_token",
    "task_update_from_json",
    "to_json",
]

#: The namespace of every fullUrl we mint. Never change it: fullUrls would change with it and
#: golden files would no longer match (the server does not care; reviewers do).
FULL_URL_NAMESPACE: Final = uuid.uuid5(uuid.NAMESPACE_URL, "urn:cpims-adapter:fhir:health-referral")

# Identifier values travel inside search URLs (ifNoneExist, conditional PUT). Case codes are
# ``cp1.<dept>.<v>.<base32>`` (adapter/privacy/_codec.py); keeping to this alphabet means no value
# ever needs FHIR search escaping (``\|``, ``\,``, ``\$``) and no '&' can smuggle a parameter in.
_IDENTIFIER_VALUE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:\-]{0,127}$")
_LITERAL_ORG = re.compile(r"^Organization/[A-Za-z0-9\-.]{1,64}$")
_PARTIAL_DATE = re.compile(r"^(\d{4})(?:-(\d{2}))?(?:-\d{2}(?:T.*)?)?$")

#: The demographic keys this mapping understands (the privacy core has already applied the
#: health allow-list and its transforms). Anything else is refused, not dropped: a key we do not
#: know is a policy change that needs a mapping decision first.
DEMOGRAPHIC_FIELDS: Final = (
    "birth_year",
    "birth_date",
    "date_of_birth",
    "sex",
    "district",
    "province",
)
_BIRTH_KEYS: Final = ("birth_year", "birth_date", "date_of_birth")


@dataclass(frozen=True)
class OrgRef:
    """An Organization on the department's side: a literal reference, a logical identifier, or both.

    ``OrgRef(reference="Organization/dhq-peshawar")`` or
    ``OrgRef(system="urn:oid:2.16.586.1", value="PK-KP-DHQ-01")``. ``display`` is an
    organization's name (never a person's).
    """

    reference: str | None = None
    system: str | None = None
    value: str | None = None
    display: str | None = None

    def to_reference(self, field_name: str) -> dict[str, Any]:
        """The FHIR Reference; MappingError naming ``field_name`` when it cannot be one."""
        ref: dict[str, Any] = {}
        if self.reference is not None:
            if not _LITERAL_ORG.match(self.reference):
                raise MappingError(
                    f"{field_name}.reference must look like 'Organization/<id>': fix the "
                    "department's organization reference in the configuration"
                )
            ref["reference"] = self.reference
        if self.value is not None or self.system is not None:
            if not (self.system and self.value):
                raise MappingError(f"{field_name} needs both system and value for an identifier")
            ref["identifier"] = {"system": self.system, "value": self.value}
        if not ref:
            raise MappingError(f"{field_name} needs a reference or an identifier (system + value)")
        if self.display:
            ref["display"] = self.display
        return ref


@dataclass(frozen=True)
class HealthReferral:
    """One referral of one case to a health department, already through the privacy core.

    ``case_code`` is the health department's pseudonym for the case; ``referral_key`` is the
    adapter's stable key for this referral (never a Primero record id: privacy.md §6.1 join
    keys). ``demographics`` holds only allow-listed keys (:data:`DEMOGRAPHIC_FIELDS`).
    ``consent_basis`` is the consent gate's basis: ``consent``, ``mandatory_report``,
    ``risk_to_life`` or ``court_order``. ``reason_codes`` are protection-concern *codes*.
    ``note`` and ``legal_reference`` are the only free text, sent only when given.
    """

    case_code: str
    referral_key: str
    service_type: str
    requester_org: OrgRef
    performer_org: OrgRef
    consent_basis: str
    consent_date: date | datetime
    urgency: str | None = None
    demographics: Mapping[str, Any] = field(default_factory=dict)
    reason_codes: tuple[str, ...] = ()
    authored_on: datetime | None = None
    note: str | None = None
    legal_reference: str | None = None
    department: str = "health"


_REFERRAL_FIELDS: Final = tuple(f.name for f in fields(HealthReferral))
_ORG_FIELDS: Final = tuple(f.name for f in fields(OrgRef))

# --- public API ------------------------------------------------------------------------------


def case_code_system(department: str = "health") -> str:
    """The Patient.identifier system of a department's case codes."""
    # The department names of adapter/privacy/_codec.py (DEPARTMENT_RE).
    if not re.fullmatch(r"[a-z][a-z0-9_]{1,39}", department):
        raise MappingError("department must be a department name like 'health' (a-z, 0-9, _)")
    return f"{codes.CASE_CODE_SYSTEM_PREFIX}{department}"


def referral_search_token(referral_key: str) -> str:
    """``system|value`` of a referral: the ``identifier`` search of its ServiceRequest and Task."""
    return f"{codes.REFERRAL_SYSTEM}|{_identifier_value(referral_key, 'referral_key')}"


def consent_search_token(referral_key: str) -> str:
    """``system|value`` of a referral's Consent: the ``identifier`` search that finds it."""
    return f"{codes.CONSENT_SYSTEM}|{_identifier_value(referral_key, 'referral_key')}"


def full_url(referral_key: str, resource_type: str) -> str:
    """The deterministic ``urn:uuid`` fullUrl of one resource of one referral (uuid5)."""
    return f"urn:uuid:{uuid.uuid5(FULL_URL_NAMESPACE, f'{referral_key}/{resource_type}')}"


def build_referral_bundle(referral: HealthReferral) -> Bundle:
    """The transaction that creates the referral: Patient, Consent, ServiceRequest, Task.

    Every entry is ``POST`` with ``ifNoneExist`` on its identifier, so a re-send (or a second
    referral of the same case, which shares the Patient) creates nothing twice. After a capacity
    probe (fhir_probe.py) the Task entry finds the probe's Task, which carries the same referral
    identifier, and leaves it as the department has it; ``FhirClient.link_task`` then points it
    at this ServiceRequest and Patient.
    """
    return _validated(Bundle, referral_bundle_json(referral))


def referral_bundle_json(referral: HealthReferral) -> dict[str, Any]:
    """:func:`build_referral_bundle` as the plain JSON dict it validates (no model built)."""
    parts = _Parts.of(referral)
    return _bundle(
        [
            _entry(parts.urls["Patient"], parts.patient, "POST", "Patient", parts.patient_query),
            _entry(parts.urls["Consent"], parts.consent, "POST", "Consent", parts.consent_query),
            _entry(
                parts.urls["ServiceRequest"],
                parts.service_request,
                "POST",
                "ServiceRequest",
                parts.referral_query,
            ),
            _entry(parts.urls["Task"], parts.task, "POST", "Task", parts.referral_query),
        ]
    )


def build_content_update_bundle(referral: HealthReferral) -> Bundle:
    """The transaction that brings the department's copy in line after the case was edited.

    Patient, Consent and ServiceRequest are conditional updates (``PUT Type?identifier=``): the
    server replaces the one match, or creates it when missing, never a second copy. The Task is
    a conditional create only: it belongs to the receiver once sent (departments.md §1, "The
    receiver updates only the Task"), so an edit must not reset its status; the entry is there
    so an update that overtakes the original delivery still leaves a complete referral.
    """
    return _validated(Bundle, content_update_bundle_json(referral))


def content_update_bundle_json(referral: HealthReferral) -> dict[str, Any]:
    """:func:`build_content_update_bundle` as the plain JSON dict it validates."""
    parts = _Parts.of(referral)
    return _bundle(
        [
            _entry(parts.urls["Patient"], parts.patient, "PUT", f"Patient?{parts.patient_query}"),
            _entry(parts.urls["Consent"], parts.consent, "PUT", f"Consent?{parts.consent_query}"),
            _entry(
                parts.urls["ServiceRequest"],
                parts.service_request,
                "PUT",
                f"ServiceRequest?{parts.referral_query}",
            ),
            _entry(parts.urls["Task"], parts.task, "POST", "Task", parts.referral_query),
        ]
    )


def to_json(resource: Bundle | Patient | ServiceRequest | Task | Consent) -> str:
    """Compact JSON of a model, in FHIR element order: the same model gives the same bytes."""
    return resource.model_dump_json(exclude_none=True)


def content_fingerprint(referral: HealthReferral) -> str:
    """SHA-256 of what the department would hold for this referral.

    Store it with the delivery; a different fingerprint on the next run means the content changed
    and :func:`build_content_update_bundle` is due. Demographics order does not matter.

    The bundle is a pure function of the referral, so the referral's canonical JSON stands
    for it: building and serialising a second bundle just to hash it was half the mapping
    cost of a sync (BENCHMARKS.md).
    """
    values = {name: getattr(referral, name) for name in _REFERRAL_FIELDS}
    # The same dict ``dataclasses.asdict`` gave (the fingerprints stored in the links table
    # must not change), built without its deep copies: a third of the mapping's cost.
    for name in ("requester_org", "performer_org"):
        org = values[name]
        values[name] = {f: getattr(org, f) for f in _ORG_FIELDS}
    values["demographics"] = dict(values["demographics"])
    canonical = json.dumps(values, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(canonical.encode()).hexdigest()


# --- building blocks -------------------------------------------------------------------------


@dataclass(frozen=True)
class _Parts:
    urls: dict[str, str]
    patient: dict[str, Any]
    consent: dict[str, Any]
    service_request: dict[str, Any]
    task: dict[str, Any]
    patient_query: str
    consent_query: str
    referral_query: str

    @classmethod
    def of(cls, referral: HealthReferral) -> _Parts:
        key = _identifier_value(referral.referral_key, "referral_key")
        case_code = _identifier_value(referral.case_code, "case_code")
        urls = {t: full_url(key, t) for t in ("Patient", "Consent", "ServiceRequest", "Task")}
        patient_id = {"system": case_code_system(referral.department), "value": case_code}
        consent_id = {"system": codes.CONSENT_SYSTEM, "value": key}
        referral_id = {"system": codes.REFERRAL_SYSTEM, "value": key}
        requester = referral.requester_org.to_reference("requester_org")
        performer = referral.performer_org.to_reference("performer_org")
        authored = _instant(referral.authored_on, "authored_on")
        patient = _patient(patient_id, referral.demographics)
        consent = _consent(referral, consent_id, urls["Patient"], requester, performer)
        service_request = _service_request(
            referral, referral_id, urls, requester, performer, authored
        )
        task = _task(referral_id, urls, requester, performer, authored)
        return cls(
            urls=urls,
            patient=patient,
            consent=consent,
            service_request=service_request,
            task=task,
            patient_query=_identifier_query(patient_id),
            consent_query=_identifier_query(consent_id),
            referral_query=_identifier_query(referral_id),
        )


def _meta() -> dict[str, Any]:
    return {"security": [dict(label) for label in codes.SECURITY_LABELS]}


def _patient(identifier: dict[str, str], demographics: Mapping[str, Any]) -> dict[str, Any]:
    body: dict[str, Any] = {"resourceType": "Patient", "meta": _meta(), "identifier": [identifier]}
    present = {k: v for k, v in demographics.items() if v is not None}
    unknown = sorted(set(present) - set(DEMOGRAPHIC_FIELDS))
    if unknown:
        raise MappingError(
            f"demographics {unknown} are not on the health FHIR mapping (it knows "
            f"{list(DEMOGRAPHIC_FIELDS)}): map them in adapter/mappings/fhir.py once the "
            "allow-list ratifies them, or leave them out of the payload"
        )
    births = [k for k in _BIRTH_KEYS if k in present]
    if len(births) > 1:
        raise MappingError(f"demographics give the birth date twice ({births}): pass one")
    # Elements are added in FHIR element order (gender before birthDate), so the dict's JSON is
    # byte-identical to the validated model's (tests/mappings/test_fhir_plain.py).
    if "sex" in present:
        sex = present["sex"]
        if not isinstance(sex, str) or sex not in codes.GENDERS:
            raise MappingError(
                f"demographics.sex is not one of {sorted(codes.GENDERS)}: extend "
                "fhir_codes.GENDERS if Primero's lookup-gender gained a value"
            )
        body["gender"] = codes.GENDERS[sex]
    if births:
        body["birthDate"] = _birth_date(present[births[0]], f"demographics.{births[0]}")
    address: dict[str, str] = {}
    for key, element in (("district", "district"), ("province", "state")):
        if key in present:
            if not isinstance(present[key], str) or not present[key].strip():
                raise MappingError(f"demographics.{key} must be a non-empty string (a place name)")
            address[element] = present[key].strip()
    if address:
        body["address"] = [address]
    return body


def _consent(
    referral: HealthReferral,
    identifier: dict[str, str],
    patient_url: str,
    requester: dict[str, Any],
    performer: dict[str, Any],
) -> dict[str, Any]:
    rule = codes.CONSENT_POLICY_RULES.get(referral.consent_basis)
    if rule is None:
        raise MappingError(
            f"consent_basis is not one of {sorted(codes.CONSENT_POLICY_RULES)}: the consent gate "
            "must decide a basis before a referral is mapped"
        )
    policy_rule: dict[str, Any] = {"coding": [dict(rule)]}
    if referral.legal_reference:
        # The Act and section of an override (privacy.md §6.3), when the caller chose to send it.
        policy_rule["text"] = referral.legal_reference
    body: dict[str, Any] = {
        "resourceType": "Consent",
        "meta": _meta(),
        "identifier": [identifier],
        "status": "active",
        "scope": {"coding": [dict(codes.CONSENT_SCOPE_PRIVACY)]},
        "category": [{"coding": [dict(codes.CONSENT_CATEGORY)]}],
        "patient": {"reference": patient_url},
        "dateTime": _date_or_instant(referral.consent_date, "consent_date"),
        "organization": [requester],
        "policyRule": policy_rule,
        # Who may receive: the performing organization (privacy.md §6.3, grantee = department).
        "provision": {
            "type": "permit",
            "actor": [{"role": {"coding": [dict(codes.RECIPIENT_ROLE)]}, "reference": performer}],
        },
    }
    return body


def _service_request(
    referral: HealthReferral,
    identifier: dict[str, str],
    urls: dict[str, str],
    requester: dict[str, Any],
    performer: dict[str, Any],
    authored: str | None,
) -> dict[str, Any]:
    category = codes.SERVICE_CATEGORIES.get(referral.service_type)
    if category is None:
        raise MappingError(
            f"service_type is not a health service (known: {sorted(codes.SERVICE_CATEGORIES)}): "
            "route it to another department or add it to fhir_codes.SERVICE_CATEGORIES"
        )
    if referral.urgency is None:
        priority = codes.DEFAULT_PRIORITY
    elif referral.urgency in codes.PRIORITIES:
        priority = codes.PRIORITIES[referral.urgency]
    else:
        raise MappingError(
            f"urgency is not a Primero service_response_timeframe ({sorted(codes.PRIORITIES)})"
        )
    reason_code = [
        {"coding": [{"system": codes.PROTECTION_CONCERN_SYSTEM, "code": _code(c, "reason_codes")}]}
        for c in referral.reason_codes
    ]
    # In FHIR element order, optional elements in place (None is dropped below): the dict's
    # JSON is then byte-identical to the validated model's.
    body: dict[str, Any] = {
        "resourceType": "ServiceRequest",
        "meta": _meta(),
        "identifier": [identifier],
        "status": "active",
        "intent": "order",
        "category": [{"coding": [dict(c) for c in category]}],
        "priority": priority,
        "code": {
            "coding": [{"system": codes.PRIMERO_SERVICE_TYPE_SYSTEM, "code": referral.service_type}]
        },
        "subject": {"reference": urls["Patient"]},
        "authoredOn": authored or None,
        "requester": requester,
        "performer": [performer],
        "reasonCode": reason_code or None,
        "supportingInfo": [{"reference": urls["Consent"]}],
        "note": [{"text": referral.note}] if referral.note else None,
    }
    return _present(body)


def _task(
    identifier: dict[str, str],
    urls: dict[str, str],
    requester: dict[str, Any],
    performer: dict[str, Any],
    authored: str | None,
) -> dict[str, Any]:
    body: dict[str, Any] = {
        "resourceType": "Task",
        "meta": _meta(),
        "identifier": [identifier],
        "status": "requested",
        # The stage marker a probe's Task gets when linked (fhir_task.linked_task): a Task born
        # with the referral looks the same, so the department reads one shape either way.
        "businessStatus": {"coding": [dict(codes.STAGE_DETAILS_SENT)]},
        "intent": "order",
        "code": {"coding": [dict(codes.TASK_FULFILL)]},
        "focus": {"reference": urls["ServiceRequest"]},
        "for": {"reference": urls["Patient"]},
        "authoredOn": authored or None,
        "requester": requester,
        "owner": performer,
    }
    return _present(body)


def _present(body: dict[str, Any]) -> dict[str, Any]:
    """``body`` without its None elements (what ``exclude_none`` leaves out of a model)."""
    return {name: value for name, value in body.items() if value is not None}


def _entry(
    url: str, resource: Any, method: str, request_url: str, if_none_exist: str | None = None
) -> dict[str, Any]:
    request: dict[str, Any] = {"method": method, "url": request_url}
    if if_none_exist is not None:
        request["ifNoneExist"] = if_none_exist
    return {"fullUrl": url, "resource": resource, "request": request}


def _bundle(entries: list[dict[str, Any]]) -> dict[str, Any]:
    # No Bundle.id and no timestamp: both would make two sends of one referral differ.
    return {"resourceType": "Bundle", "type": "transaction", "entry": entries}


_M = TypeVar("_M", Bundle, Patient, Consent, ServiceRequest, Task)


def _validated(model: type[_M], body: dict[str, Any]) -> _M:
    try:
        return model.model_validate(body)
    except ValidationError as exc:
        # pydantic's messages quote input values; keep the element paths and error kinds only.
        where = sorted(
            {".".join(str(p) for p in e["loc"]) + f" ({e['type']})" for e in exc.errors()}
        )
        raise MappingError(f"{model.__name__} failed FHIR R4B validation at {where}") from None


def _identifier_query(identifier: Mapping[str, str]) -> str:
    # Both parts are from a safe alphabet (_IDENTIFIER_VALUE and our URN systems); quote() still
    # guards the query syntax should a system ever contain '&' or '#'.
    token = f"{identifier['system']}|{identifier['value']}"
    return f"identifier={quote(token, safe=':|/.-_')}"


def _identifier_value(value: object, field_name: str) -> str:
    if not isinstance(value, str) or not _IDENTIFIER_VALUE.match(value):
        raise MappingError(
            f"{field_name} must be 1-128 characters of letters, digits, '.', '_', ':' or '-' "
            "starting with a letter or digit: it becomes a FHIR identifier searched by URL"
        )
    return value


def _code(value: object, field_name: str) -> str:
    if not isinstance(value, str) or not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._\-]{0,63}", value):
        raise MappingError(f"{field_name} must hold lookup codes (letters, digits, '.', '_', '-')")
    return value


def _birth_date(value: object, field_name: str) -> str:
    """Year or year-month only (departments.md §1: birthDate at year or month precision)."""
    if isinstance(value, bool):
        raise MappingError(f"{field_name} must be a year, a date or 'YYYY[-MM[-DD]]'")
    if isinstance(value, int):
        if 1900 <= value <= 2100:
            return f"{value:04d}"
        raise MappingError(f"{field_name} is not a plausible year (1900-2100)")
    if isinstance(value, date):  # datetime is a date too
        return f"{value.year:04d}-{value.month:02d}"
    if isinstance(value, str):
        match = _PARTIAL_DATE.match(value.strip())
        if match and (match.group(2) is None or 1 <= int(match.group(2)) <= 12):
            year, month = match.groups()
            return year if month is None else f"{year}-{month}"
    raise MappingError(f"{field_name} must be a year, a date or 'YYYY[-MM[-DD]]'")


def _instant(value: datetime | None, field_name: str) -> str | None:
    if value is None:
        return None
    if not isinstance(value, datetime) or value.tzinfo is None:
        raise MappingError(f"{field_name} must be a timezone-aware datetime (UTC preferred)")
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _date_or_instant(value: date | datetime, field_name: str) -> str:
    if isinstance(value, datetime):
        return _instant(value, field_name) or ""
    if isinstance(value, date):
        return value.isoformat()
    raise MappingError(f"{field_name} must be a date or a timezone-aware datetime")
