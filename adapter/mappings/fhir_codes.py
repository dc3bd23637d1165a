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
