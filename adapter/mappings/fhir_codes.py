"""Code systems and code maps of the health FHIR mapping, as data a reviewer can read.

Everything a department sees as a code comes from here. Our own systems are URNs under
``urn:cpims-adapter:``; HL7 systems are the R4 canonical URLs (departments.md §1 cites the pages).
A Primero value missing from a map is a MappingError naming the field, never a silent default.
"""

from __future__ import annotations

from types import MappingProxyType
from typing import Final

# --- identifier systems ----------------------------------------------------------------------

#: Patient.identifier: the department's pseudonymous case code (privacy.md §6.1, departments.md §1).
CASE_CODE_SYSTEM_PREFIX: Final = "urn:cpims-adapter:case-code:"
#: ServiceRequest.identifier and Task.identifier: the same referral key on both, so either can be
#: found from the other (departments.md §1, "Put the same referral identifier on both").
REFERRAL_SYSTEM: Final = "urn:cpims-adapter:referral"
#: Consent.identifier: one disclosure record per referral.
CONSENT_SYSTEM: Final = "urn:cpims-adapter:consent"

# --- our code systems ------------------------------------------------------------------------

PRIMERO_SERVICE_TYPE_SYSTEM: Final = "urn:cpims-adapter:primero:service-type"
SERVICE_CATEGORY_SYSTEM: Final = "urn:cpims-adapter:service-category"
PROTECTION_CONCERN_SYSTEM: Final = "urn:cpims-adapter:primero:protection-concern"
#: Consent.policyRule for disclosures without consent: the adapter's recorded override bases
#: (privacy.md §6.3; adapter/privacy/consent.py OverrideBasis).
DISCLOSURE_BASIS_SYSTEM: Final = "urn:cpims-adapter:disclosure-basis"

# --- HL7 systems -----------------------------------------------------------------------------

SNOMED: Final = "http://snomed.info/sct"
LOINC: Final = "http://loinc.org"
V3_CONFIDENTIALITY: Final = "http://terminology.hl7.org/CodeSystem/v3-Confidentiality"
V3_OBSERVATION_VALUE: Final = "http://terminology.hl7.org/CodeSystem/v3-ObservationValue"
V3_ACT_CODE: Final = "http://terminology.hl7.org/CodeSystem/v3-ActCode"
V3_PARTICIPATION_TYPE: Final = "http://terminology.hl7.org/CodeSystem/v3-ParticipationType"
CONSENT_SCOPE: Final = "http://terminology.hl7.org/CodeSystem/consentscope"
TASK_CODE: Final = "http://hl7.org/fhir/CodeSystem/task-code"

Coding = dict[str, str]

#: meta.security on every resource we send: restricted + pseudonymised (departments.md §1,
#: R4 security-labels). The same two labels on every referral whatever its sensitivity: a
#: per-case label (V, SDV) would itself disclose the protection concern (adapter/privacy/
#: sensitivity.py keeps those labels inside the adapter).
SECURITY_LABELS: Final[tuple[Coding, ...]] = (
    {"system": V3_CONFIDENTIALITY, "code": "R", "display": "restricted"},
    {"system": V3_OBSERVATION_VALUE, "code": "PSEUDED", "display": "pseudonymized"},
)

#: Primero ``service_type`` (lookup-service-type, primero-api.md §6) -> ServiceRequest.category.
#: Only services a health department provides are listed; any other type is not a health
#: referral. MHPSS also carries SNOMED "Counseling", from R4's ServiceRequest category examples.
#: ``medico_legal_service`` is this deployment's lookup value for a medico-legal examination
#: (not in Primero's default lookup): the MLC report comes back as a DocumentReference on
#: Task.output (departments.md §1).
SERVICE_CATEGORIES: Final = MappingProxyType(
    {
        "health_medical_service": (
            {"system": SERVICE_CATEGORY_SYSTEM, "code": "medical", "display": "Medical care"},
        ),
        "psychosocial_service": (
            {
                "system": SERVICE_CATEGORY_SYSTEM,
                "code": "mhpss",
                "display": "Mental health and psychosocial support",
            },
            {"system": SNOMED, "code": "409063005", "display": "Counseling"},
        ),
        "medico_legal_service": (
            {
                "system": SERVICE_CATEGORY_SYSTEM,
                "code": "medico-legal",
                "display": "Medico-legal examination",
            },
        ),
    }
)

#: Primero ``service_response_timeframe`` -> ServiceRequest.priority (R4 request-priority).
#: No timeframe means the caseworker set no deadline: routine.
PRIORITIES: Final = MappingProxyType(
    {
        "1_hour": "stat",
        "3_hours": "asap",
        "1_day": "urgent",
        "3_days": "routine",
    }
)
DEFAULT_PRIORITY: Final = "routine"

#: The consent gate's basis (adapter/privacy/policy.py Basis) -> Consent.policyRule.
#: Consent is the HL7 opt-in; the three overrides are disclosures *without* consent, so they get
#: our own codes rather than pretending to be an opt-in (privacy.md §6.3).
CONSENT_POLICY_RULES: Final = MappingProxyType(
    {
        "consent": {"system": V3_ACT_CODE, "code": "OPTIN", "display": "opt-in"},
        "mandatory_report": {
            "system": DISCLOSURE_BASIS_SYSTEM,
            "code": "mandatory-report",
            "display": "Mandatory report",
        },
        "risk_to_life": {
            "system": DISCLOSURE_BASIS_SYSTEM,
            "code": "risk-to-life",
            "display": "Risk to life",
        },
        "court_order": {
            "system": DISCLOSURE_BASIS_SYSTEM,
            "code": "court-order",
            "display": "Court order",
        },
        "best_interests": {
            "system": DISCLOSURE_BASIS_SYSTEM,
            "code": "best-interests",
            "display": "Best-interests decision (caregiver is the alleged perpetrator)",
        },
    }
)

CONSENT_SCOPE_PRIVACY: Final[Coding] = {
    "system": CONSENT_SCOPE,
    "code": "patient-privacy",
    "display": "Privacy Consent",
}
CONSENT_CATEGORY: Final[Coding] = {"system": LOINC, "code": "59284-0", "display": "Patient Consent"}
#: Consent.provision.actor.role of the receiving organization.
RECIPIENT_ROLE: Final[Coding] = {
    "system": V3_PARTICIPATION_TYPE,
    "code": "PRCP",
    "display": "primary information recipient",
}
TASK_FULFILL: Final[Coding] = {
    "system": TASK_CODE,
    "code": "fulfill",
    "display": "Fulfill the focal request",
}

#: Primero ``sex`` (lookup-gender, primero-api.md §6) -> Patient.gender (R4 administrative-gender).
GENDERS: Final = MappingProxyType(
    {"female": "female", "male": "male", "other": "other", "unknown": "unknown"}
)

# --- the two-stage referral: capacity probe, link, cancel ------------------------------------

#: Task.code of a capacity probe. R4's task-code has nothing for "can you take a case like
#: this?" ("approve" activates a focal resource, and a probe has none), so a local code.
TASK_CODE_SYSTEM: Final = "urn:cpims-adapter:task-code"
TASK_CAPACITY_CHECK: Final[Coding] = {
    "system": TASK_CODE_SYSTEM,
    "code": "capacity-check",
    "display": "Capacity check",
}

#: Task.businessStatus while the adapter drives the referral's stage (privacy.md §6.3 stage
#: order). The receiver may set its own businessStatus later; ours is never written over theirs.
REFERRAL_STAGE_SYSTEM: Final = "urn:cpims-adapter:referral-stage"
STAGE_CAPACITY_CHECK: Final[Coding] = {
    "system": REFERRAL_STAGE_SYSTEM,
    "code": "capacity-check",
    "display": "Capacity check (anonymous)",
}
STAGE_DETAILS_SENT: Final[Coding] = {
    "system": REFERRAL_STAGE_SYSTEM,
    "code": "referral-details-sent",
    "display": "Referral details sent",
}

#: Task.statusReason when the adapter cancels a referral. Codes only: the reason a referral was
#: withdrawn is itself case data, so it never travels as text.
CANCEL_REASON_SYSTEM: Final = "urn:cpims-adapter:cancel-reason"
CANCEL_REASONS: Final = MappingProxyType(
    {
        "consent-withdrawn": {
            "system": CANCEL_REASON_SYSTEM,
            "code": "consent-withdrawn",
            "display": "Consent withdrawn: erase the referral's data",
        },
        "referral-revoked": {
            "system": CANCEL_REASON_SYSTEM,
            "code": "referral-revoked",
            "display": "Referral revoked by the referring agency",
        },
    }
)

#: Task.input.type of each capacity-probe key (adapter/privacy/probe.py build_probe), in the
#: order the inputs are sent (coarse to fine). The probe has no other home on the Task: no
#: ``for``, no ``focus``, no ``note``.
PROBE_INPUT_SYSTEM: Final = "urn:cpims-adapter:probe-input"
PROBE_INPUT_TYPES: Final = MappingProxyType(
    {
        "service": {"system": PROBE_INPUT_SYSTEM, "code": "service", "display": "Service"},
        "urgency": {"system": PROBE_INPUT_SYSTEM, "code": "urgency", "display": "Urgency"},
        "province": {"system": PROBE_INPUT_SYSTEM, "code": "province", "display": "Province"},
        "district": {"system": PROBE_INPUT_SYSTEM, "code": "district", "display": "District"},
        "age_band": {"system": PROBE_INPUT_SYSTEM, "code": "age-band", "display": "Age band"},
        "sex": {"system": PROBE_INPUT_SYSTEM, "code": "sex", "display": "Sex"},
    }
)
#: Primero location codes (the gazetteer's, adapter/privacy/probe.py), for district/province.
LOCATION_SYSTEM: Final = "urn:cpims-adapter:primero:location"
AGE_BAND_SYSTEM: Final = "urn:cpims-adapter:age-band"
#: The probe's age bands (adapter/privacy/probe.py AGE_BANDS and ADULT_BAND).
PROBE_AGE_BANDS: Final = frozenset({"0-4", "5-9", "10-14", "15-17", "18+"})
#: Only the two sexes a probe may carry (adapter/privacy/probe.py SEXES): a rarer value would
#: narrow the probe towards one child.
PROBE_SEXES: Final = frozenset({"female", "male"})
ADMINISTRATIVE_GENDER: Final = "http://hl7.org/fhir/administrative-gender"
PROBE_URGENCY_SYSTEM: Final = "urn:cpims-adapter:probe-urgency"
#: The probe's urgency (adapter/privacy/probe.py URGENCY: emergency ≤24 h, urgent ≤72 h) ->
#: (display, Task.priority). Emergency is "asap" rather than "stat": the probe merged 1 hour,
#: 3 hours and 1 day into one level, and the ServiceRequest carries the precise priority later.
PROBE_URGENCIES: Final = MappingProxyType(
    {
        "emergency": ("Emergency: within 24 hours", "asap"),
        "urgent": ("Urgent: within 72 hours", "urgent"),
        "normal": ("Normal", "routine"),
    }
)
