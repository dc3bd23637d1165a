"""The health referral as FHIR: golden payloads, determinism, and nothing sent that was not meant.

Golden files are the reviewable contract with a health department. After an intended change,
regenerate them with ``CPIMS_UPDATE_GOLDEN=1 scripts/test tests/mappings`` and review the diff.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator, Mapping
from dataclasses import replace
from datetime import UTC, date, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from adapter.errors import MappingError
from adapter.mappings import fhir_codes
from adapter.mappings.fhir import (
    DEMOGRAPHIC_FIELDS,
    HealthReferral,
    OrgRef,
    build_content_update_bundle,
    build_referral_bundle,
    content_fingerprint,
    full_url,
    to_json,
)

GOLDEN = Path(__file__).parent / "golden"
CASE_CODE = "cp1.health.1.mfrggzdfmztwq2lknnwg23tpobyxe43uov3ho6dzpiytgmzqgq2a"

MHPSS_WITH_CONSENT = HealthReferral(
    case_code=CASE_CODE,
    referral_key="rk-2026-000123",
    service_type="psychosocial_service",
    requester_org=OrgRef(
        system="urn:cpims-adapter:org", value="cpu-peshawar", display="CPU Peshawar"
    ),
    performer_org=OrgRef(reference="Organization/dhq-peshawar"),
    consent_basis="consent",
    consent_date=date(2026, 1, 5),
    urgency="1_day",
    demographics={
        "date_of_birth": "2014-03-17",
        "sex": "female",
        "district": "Peshawar",
        "province": "Khyber Pakhtunkhwa",
    },
    reason_codes=("physical_abuse",),
    authored_on=datetime(2026, 1, 6, 14, 30, tzinfo=timezone(timedelta(hours=5))),
)
MEDICO_LEGAL_BY_COURT_ORDER = HealthReferral(
    case_code=CASE_CODE,
    referral_key="rk-2026-000124",
    service_type="medico_legal_service",
    requester_org=OrgRef(system="urn:cpims-adapter:org", value="cpu-peshawar"),
    performer_org=OrgRef(system="urn:oid:2.16.586.1.1", value="KP-LRH-FORENSIC"),
    consent_basis="court_order",
    consent_date=datetime(2026, 2, 1, 8, 0, tzinfo=UTC),
    urgency="1_hour",
    legal_reference="KP Child Protection and Welfare Act 2010 s.25",
)


def _golden(name: str, bundle_json: str) -> None:
    text = json.dumps(json.loads(bundle_json), indent=2, ensure_ascii=False) + "\n"
    path = GOLDEN / name
    if os.environ.get("CPIMS_UPDATE_GOLDEN") == "1":
        path.write_text(text)
    assert text == path.read_text(), f"{name} changed: review, then CPIMS_UPDATE_GOLDEN=1"


@pytest.mark.parametrize(
    ("name", "build", "referral"),
    [
        ("referral_mhpss_consent.json", build_referral_bundle, MHPSS_WITH_CONSENT),
        (
            "referral_medico_legal_court_order.json",
            build_referral_bundle,
            MEDICO_LEGAL_BY_COURT_ORDER,
        ),
        ("content_update_mhpss.json", build_content_update_bundle, MHPSS_WITH_CONSENT),
    ],
)
def test_golden_payloads(name: str, build: Any, referral: HealthReferral) -> None:
    _golden(name, to_json(build(referral)))


def test_the_same_referral_gives_the_same_bytes() -> None:
    assert to_json(build_referral_bundle(MHPSS_WITH_CONSENT)) == to_json(
        build_referral_bundle(
            replace(
                MHPSS_WITH_CONSENT,
                demographics=dict(reversed(list(MHPSS_WITH_CONSENT.demographics.items()))),
            )
        )
    )


def test_full_urls_are_uuid5_of_the_referral_key() -> None:
    bundle = build_referral_bundle(MHPSS_WITH_CONSENT)
    urls = [e.fullUrl for e in bundle.entry or []]
    assert urls == [
        full_url("rk-2026-000123", t) for t in ("Patient", "Consent", "ServiceRequest", "Task")
    ]
    other = build_referral_bundle(MEDICO_LEGAL_BY_COURT_ORDER)
    assert not set(urls) & {e.fullUrl for e in other.entry or []}


def test_every_entry_is_a_conditional_create_on_its_identifier() -> None:
    requests = [e.request for e in build_referral_bundle(MHPSS_WITH_CONSENT).entry or []]
    assert [(r.method, r.url, r.ifNoneExist) for r in requests if r] == [
        ("POST", "Patient", f"identifier=urn:cpims-adapter:case-code:health|{CASE_CODE}"),
        ("POST", "Consent", "identifier=urn:cpims-adapter:consent|rk-2026-000123"),
        ("POST", "ServiceRequest", "identifier=urn:cpims-adapter:referral|rk-2026-000123"),
        ("POST", "Task", "identifier=urn:cpims-adapter:referral|rk-2026-000123"),
    ]


def test_a_content_update_replaces_by_identifier_and_never_resets_the_task() -> None:
    requests = [e.request for e in build_content_update_bundle(MHPSS_WITH_CONSENT).entry or []]
    assert [(r.method, r.url, r.ifNoneExist) for r in requests if r] == [
        ("PUT", f"Patient?identifier=urn:cpims-adapter:case-code:health|{CASE_CODE}", None),
        ("PUT", "Consent?identifier=urn:cpims-adapter:consent|rk-2026-000123", None),
        ("PUT", "ServiceRequest?identifier=urn:cpims-adapter:referral|rk-2026-000123", None),
        ("POST", "Task", "identifier=urn:cpims-adapter:referral|rk-2026-000123"),
    ]


def test_the_fingerprint_changes_with_content_only() -> None:
    same = replace(MHPSS_WITH_CONSENT, demographics=dict(MHPSS_WITH_CONSENT.demographics))
    assert content_fingerprint(same) == content_fingerprint(MHPSS_WITH_CONSENT)
    assert content_fingerprint(
        replace(MHPSS_WITH_CONSENT, urgency="1_hour")
    ) != content_fingerprint(MHPSS_WITH_CONSENT)


def _resource(referral: HealthReferral, rtype: str) -> dict[str, Any]:
    bundle = json.loads(to_json(build_referral_bundle(referral)))
    (found,) = [e["resource"] for e in bundle["entry"] if e["resource"]["resourceType"] == rtype]
    return dict(found)


@pytest.mark.parametrize(
    ("urgency", "priority"),
    [
        ("1_hour", "stat"),
        ("3_hours", "asap"),
        ("1_day", "urgent"),
        ("3_days", "routine"),
        (None, "routine"),
    ],
)
def test_priority_from_the_response_timeframe(urgency: str | None, priority: str) -> None:
    assert (
        _resource(replace(MHPSS_WITH_CONSENT, urgency=urgency), "ServiceRequest")["priority"]
        == priority
    )


@pytest.mark.parametrize(
    ("basis", "system", "code"),
    [
        ("consent", fhir_codes.V3_ACT_CODE, "OPTIN"),
        ("mandatory_report", fhir_codes.DISCLOSURE_BASIS_SYSTEM, "mandatory-report"),
        ("risk_to_life", fhir_codes.DISCLOSURE_BASIS_SYSTEM, "risk-to-life"),
        ("court_order", fhir_codes.DISCLOSURE_BASIS_SYSTEM, "court-order"),
    ],
)
def test_consent_policy_rule_records_the_basis(basis: str, system: str, code: str) -> None:
    consent = _resource(replace(MHPSS_WITH_CONSENT, consent_basis=basis), "Consent")
    (coding,) = consent["policyRule"]["coding"]
    assert (coding["system"], coding["code"]) == (system, code)
    assert consent["scope"]["coding"][0]["code"] == "patient-privacy"
    assert consent["category"][0]["coding"][0] == {
        "system": "http://loinc.org",
        "code": "59284-0",
        "display": "Patient Consent",
    }


@pytest.mark.parametrize(
    ("demographics", "birth_date"),
    [
        ({"birth_year": 2014}, "2014"),
        ({"birth_year": "2014"}, "2014"),
        ({"birth_date": "2014-03"}, "2014-03"),
        ({"date_of_birth": "2014-03-17"}, "2014-03"),  # month precision at most (departments.md §1)
        ({"date_of_birth": date(2014, 3, 17)}, "2014-03"),
        ({"birth_date": datetime(2014, 3, 17, 6, 0, tzinfo=UTC)}, "2014-03"),
    ],
)
def test_birth_date_is_sent_at_month_precision_at_most(
    demographics: dict[str, Any], birth_date: str
) -> None:
    patient = _resource(replace(MHPSS_WITH_CONSENT, demographics=demographics), "Patient")
    assert patient["birthDate"] == birth_date


def test_the_patient_carries_only_the_code_and_allow_listed_demographics() -> None:
    patient = _resource(MHPSS_WITH_CONSENT, "Patient")
    assert set(patient) == {"resourceType", "meta", "identifier", "gender", "birthDate", "address"}
    assert patient["address"] == [{"district": "Peshawar", "state": "Khyber Pakhtunkhwa"}]
    assert [(s["system"], s["code"]) for s in patient["meta"]["security"]] == [
        (fhir_codes.V3_CONFIDENTIALITY, "R"),
        (fhir_codes.V3_OBSERVATION_VALUE, "PSEUDED"),
    ]
    bare = _resource(replace(MHPSS_WITH_CONSENT, demographics={}), "Patient")
    assert set(bare) == {"resourceType", "meta", "identifier"}


PRIVATE = "Ayesha Bibi"


@pytest.mark.parametrize(
    "changes",
    [
        {"demographics": {"name": PRIVATE}},
        {"demographics": {"sex": PRIVATE}},
        {"demographics": {"birth_date": PRIVATE}},
        {"demographics": {"birth_year": 2014, "date_of_birth": "2014-01"}},
        {"demographics": {"district": ""}},
        {"service_type": PRIVATE},
        {"urgency": PRIVATE},
        {"consent_basis": PRIVATE},
        {"case_code": f"{PRIVATE}&_id=x"},
        {"referral_key": ""},
        {"reason_codes": (PRIVATE,)},
        {"authored_on": datetime(2026, 1, 6, 9, 30)},  # naive: which timezone?
        {"requester_org": OrgRef()},
        {"requester_org": OrgRef(system="urn:x")},
        {"performer_org": OrgRef(reference=f"Patient/{PRIVATE}")},
    ],
)
def test_unmappable_input_is_a_mapping_error_that_names_no_value(changes: dict[str, Any]) -> None:
    with pytest.raises(MappingError) as caught:
        build_referral_bundle(replace(MHPSS_WITH_CONSENT, **changes))
    assert PRIVATE not in str(caught.value)
    assert "Ayesha" not in str(caught.value)


# --- no free text unless passed on purpose --------------------------------------------------


def _strings(node: Any) -> Iterator[str]:
    """The string leaves of JSON-like data (keys are element names, not content)."""
    if isinstance(node, Mapping):
        for value in node.values():
            yield from _strings(value)
    elif isinstance(node, list | tuple):
        for value in node:
            yield from _strings(value)
    elif isinstance(node, str):
        yield node


def _expected_strings(referral: HealthReferral) -> set[str]:
    """Every string the mapping may emit without free text: codes, identifiers, references,
    request lines and dates."""
    allowed: set[str] = set()
    for name in dir(fhir_codes):
        if name.isupper():
            table = getattr(fhir_codes, name)
            allowed |= set(_strings(table)) | (set(table) if isinstance(table, Mapping) else set())
    allowed |= {
        "Patient",
        "Consent",
        "ServiceRequest",
        "Task",
        "Bundle",
        "transaction",
        "POST",
        "PUT",
        "active",
        "order",
        "requested",
        "permit",
        referral.case_code,
        referral.referral_key,
        referral.service_type,
        "urn:cpims-adapter:case-code:health",
        *referral.reason_codes,
    }
    for org in (referral.requester_org, referral.performer_org):
        allowed |= {v for v in (org.reference, org.system, org.value, org.display) if v}
    allowed |= {
        full_url(referral.referral_key, t) for t in ("Patient", "Consent", "ServiceRequest", "Task")
    }
    return allowed


def _unexplained(referral: HealthReferral) -> set[str]:
    bundle = json.loads(to_json(build_referral_bundle(referral)))
    left = set(_strings(bundle)) - _expected_strings(referral)
    # Request URLs and dates are built from the identifiers and inputs above.
    return {s for s in left if not s.startswith(("identifier=", "20"))}


def test_no_free_text_leaves_unless_passed_explicitly() -> None:
    # The allow-listed place names are the only non-code text by default.
    assert _unexplained(MHPSS_WITH_CONSENT) == {"Peshawar", "Khyber Pakhtunkhwa"}
    assert _unexplained(replace(MHPSS_WITH_CONSENT, demographics={})) == set()

    noted = replace(
        MHPSS_WITH_CONSENT,
        demographics={},
        note="Needs a female doctor.",
        legal_reference="JJSA 2018 s.9",
    )
    assert _unexplained(noted) == {"Needs a female doctor.", "JJSA 2018 s.9"}
    assert _resource(noted, "ServiceRequest")["note"] == [{"text": "Needs a female doctor."}]
    assert _resource(noted, "Consent")["policyRule"]["text"] == "JJSA 2018 s.9"


@given(
    key=st.text(alphabet="abcdefghijklmnopqrstuvwxyz_", min_size=1, max_size=20).filter(
        lambda k: k not in DEMOGRAPHIC_FIELDS
    ),
    text=st.text(max_size=40),
)
def test_any_field_beyond_the_mapping_is_refused_not_sent(key: str, text: str) -> None:
    value = f"«{text}»"  # marked, so a leak into the message cannot hide among its words
    referral = replace(
        MHPSS_WITH_CONSENT, demographics={**MHPSS_WITH_CONSENT.demographics, key: value}
    )
    with pytest.raises(MappingError) as caught:
        build_referral_bundle(referral)
    assert value not in str(caught.value)
    assert key in str(caught.value)  # the message names the field, so it can be fixed
