"""The disclosure decision on hand-picked cases: default deny, suppression, stages, guards."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import timedelta
from typing import Any

from adapter.privacy import (
    ConsentOverride,
    DisclosurePolicy,
    KeyRing,
    OverrideBasis,
    Population,
    Stage,
    explain,
)

from .conftest import GAZETTEER, NOW

Case = Callable[..., dict[str, Any]]
NARRATIVE = "The uncle took her to the field behind the brick kiln on Friday night"


def approval(
    case_id: str, department: str, basis: OverrideBasis = OverrideBasis.S3_APPROVAL
) -> ConsentOverride:
    return ConsentOverride(
        case_id=case_id,
        department=department,
        basis=basis,
        legal_reference="CPWA 2010 s.x",
        requested_by="caseworker",
        approved_by="supervisor",
        created_at=NOW - timedelta(hours=1),
        expires_at=NOW + timedelta(hours=1),
        id=1,
    )


def test_health_referral_payload(
    policy: DisclosurePolicy, shared_ring: KeyRing, case_factory: Case
) -> None:
    case = case_factory(new_field_x="brand new Primero value")
    d = policy.decide(case, "health", "referral", Stage.IDENTIFIED, codes=shared_ring, now=NOW)
    assert d.allowed and d.consent_basis == "consent" and d.sensitivity == "S1"
    assert d.payload == {
        "case_code": shared_ring.case_code(case["id"], "health"),
        "name": "Zainab Qureshi",
        "sex": "female",
        "date_of_birth": "2014-06-02",
        "age": 11,
        "location_current": "PK301",  # reduced to the district
        "protection_concerns": ["neglect"],
        # Only the health service row, without its notes or its Primero unique_id.
        "services_section": [
            {"service_type": "health_medical_service", "service_response_timeframe": "1_day"}
        ],
    }
    assert "new_field_x" in d.fields_withheld
    assert "default deny" in d.field_reasons["new_field_x"]
    assert "join key" in d.field_reasons["case_id_display"]
    text = json.dumps(d.payload)
    for value in (case["id"], case["unique_identifier"], case["case_id_display"], "brand new"):
        assert value not in text


def test_codes_are_per_department(
    policy: DisclosurePolicy, shared_ring: KeyRing, case_factory: Case
) -> None:
    case = case_factory()
    codes = {
        dept: policy.decide(
            case, dept, purpose, Stage.IDENTIFIED, codes=shared_ring, now=NOW
        ).case_code
        for dept, purpose in [
            ("health", "referral"),
            ("police", "referral"),
            ("courts", "court_order"),
        ]
    }
    assert len(set(codes.values())) == 3
    again = policy.decide(
        case, "health", "medico_legal_exam", Stage.IDENTIFIED, codes=shared_ring, now=NOW
    )
    assert again.case_code == codes["health"]  # one stable code per case, across purposes


def test_unknown_department_or_purpose_is_default_deny(
    policy: DisclosurePolicy, case_factory: Case
) -> None:
    for dept, purpose in [("education", "referral"), ("health", "marketing")]:
        d = policy.decide(case_factory(), dept, purpose, Stage.IDENTIFIED, now=NOW)
        assert not d.allowed and "default deny" in d.reason and d.payload == {}


def test_s3_needs_second_person_then_sends_only_service_codes(
    policy: DisclosurePolicy, shared_ring: KeyRing, case_factory: Case
) -> None:
    case = case_factory(
        protection_concerns=["rape"],
        notes_section=[{"note_text": NARRATIVE}],
        police_referral_extract=NARRATIVE,
    )
    refused = policy.decide(
        case, "health", "referral", Stage.IDENTIFIED, codes=shared_ring, now=NOW
    )
    assert not refused.allowed and "second person's approval" in refused.reason
    d = policy.decide(
        case,
        "health",
        "referral",
        Stage.IDENTIFIED,
        codes=shared_ring,
        overrides=[approval(case["id"], "health")],
        now=NOW,
    )
    assert d.allowed and d.sensitivity == "S3"
    assert set(d.payload) == {"case_code", "services_section"}
    assert "only service fields leave" in d.field_reasons["name"]
    assert "never leave at S3" in d.field_reasons["notes_section.note_text"]
    police = policy.decide(
        case,
        "police",
        "referral",
        Stage.IDENTIFIED,
        codes=shared_ring,
        overrides=[approval(case["id"], "police")],
        now=NOW,
    )
    # §6.5: the name goes to police under consent; the extract never does at S3.
    assert police.payload["name"] == "Zainab Qureshi"
    assert "police_referral_extract" not in police.payload
    assert NARRATIVE[:12] not in json.dumps(police.payload)


def test_s3_name_to_police_not_under_risk_to_life(
    policy: DisclosurePolicy, shared_ring: KeyRing, case_factory: Case
) -> None:
    case = case_factory(protection_concerns=["gbv_survivor"], consent_for_services=None)
    d = policy.decide(
        case,
        "police",
        "referral",
        Stage.IDENTIFIED,
        codes=shared_ring,
        overrides=[approval(case["id"], "police", OverrideBasis.RISK_TO_LIFE)],
        now=NOW,
    )
    assert d.allowed and d.consent_basis == "risk_to_life"
    assert "name" not in d.payload


def test_narrative_scan_pulls_a_field_that_quotes_a_note(
    policy: DisclosurePolicy, shared_ring: KeyRing, case_factory: Case
) -> None:
    # A caseworker pasted part of the note into the name field: the S3 scan catches it.
    case = case_factory(
        protection_concerns=["rape"],
        name="Zainab (took her to the field behind)",
        notes_section=[{"note_text": NARRATIVE}],
    )
    d = policy.decide(
        case,
        "police",
        "referral",
        Stage.IDENTIFIED,
        codes=shared_ring,
        overrides=[approval(case["id"], "police")],
        now=NOW,
    )
    assert "name" not in d.payload
    assert "S3 scan" in d.field_reasons["name"]


def test_birth_registration_never_gets_concerns(
    policy: DisclosurePolicy, shared_ring: KeyRing, case_factory: Case
) -> None:
    case = case_factory(
        protection_concerns=["child_marriage"],
        sex="other",
        services_section=[{"service_type": "registration_service"}],
        family_details_section=[
            {
                "relation": "mother",
                "relation_name": "Shazia",
                "relation_national_id": "35202-1234567-8",
            }
        ],
    )
    d = policy.decide(
        case,
        "birth_registration",
        "birth_registration",
        Stage.IDENTIFIED,
        codes=shared_ring,
        now=NOW,
    )
    assert d.allowed
    assert "protection_concerns" not in d.payload
    assert "never receives concern" in d.field_reasons["protection_concerns"]
    assert d.payload["family_details_section"] == [
        {"relation": "mother", "relation_name": "Shazia", "relation_national_id": "35202-1234567-8"}
    ]
    # A value that equals a concern code is pulled too (here the concern "other" and sex "other").
    case["protection_concerns"] = ["other"]
    d = policy.decide(
        case,
        "birth_registration",
        "birth_registration",
        Stage.IDENTIFIED,
        codes=shared_ring,
        overrides=[approval(case["id"], "birth_registration")],
        now=NOW,
    )
    assert "other" not in json.dumps(d.payload)


def test_courts_get_identity_only_by_court_order(
    policy: DisclosurePolicy, shared_ring: KeyRing, case_factory: Case
) -> None:
    case = case_factory(address_current="House 12, Street 4")
    by_consent = policy.decide(
        case, "courts", "court_order", Stage.IDENTIFIED, codes=shared_ring, now=NOW
    )
    assert "name" not in by_consent.payload and "address_current" not in by_consent.payload
    assert "only under court_order" in by_consent.field_reasons["name"]
    ordered = policy.decide(
        case,
        "courts",
        "court_order",
        Stage.IDENTIFIED,
        codes=shared_ring,
        overrides=[approval(case["id"], "courts", OverrideBasis.COURT_ORDER)],
        now=NOW,
    )
    assert ordered.payload["name"] == "Zainab Qureshi"


def test_timestamps_and_nested_values_are_reduced_or_withheld(
    policy: DisclosurePolicy, shared_ring: KeyRing, case_factory: Case
) -> None:
    case = case_factory(
        incident_details=[
            {"incident_date": "2026-02-27T22:15:09.123Z", "incident_location": {"code": "PK301"}}
        ],
        services_section=[
            {
                "service_type": "health_medical_service",
                "service_appointment_date": "2026-03-04T08:30:00Z",
            }
        ],
    )
    d = policy.decide(
        case, "health", "medico_legal_exam", Stage.IDENTIFIED, codes=shared_ring, now=NOW
    )
    # Timestamps to the second are join keys (§7 item 6): only the day leaves.
    assert d.payload["incident_details"] == [{"incident_date": "2026-02-27"}]
    assert "nested structure" in d.field_reasons["incident_details.incident_location"]


def test_masked_name_is_not_sent(
    policy: DisclosurePolicy, shared_ring: KeyRing, case_factory: Case
) -> None:
    d = policy.decide(
        case_factory(name="*******"),
        "health",
        "referral",
        Stage.IDENTIFIED,
        codes=shared_ring,
        now=NOW,
    )
    assert "name" not in d.payload and "hidden_name" in d.field_reasons["name"]


def test_probe_is_coarsened_until_k_cases_share_it(
    policy: DisclosurePolicy, case_factory: Case
) -> None:
    case = case_factory()
    alone = Population.from_cases([case], GAZETTEER, NOW.date())
    d = policy.decide(case, "health", "referral", Stage.PROBE, now=NOW, population=alone)
    assert d.allowed
    assert set(d.payload) == {"stage", "probe_ref", "services", "urgency"}
    assert (
        d.payload["services"] == ["health_medical_service"] and d.payload["urgency"] == "emergency"
    )
    # Five girls aged 10-14 in the province but in different districts: province level.
    peers = [case_factory(location_current=loc) for loc in ["PK302"] * 4]
    d = policy.decide(
        case,
        "health",
        "referral",
        Stage.PROBE,
        now=NOW,
        population=Population.from_cases([case, *peers], GAZETTEER, NOW.date()),
    )
    assert {k: d.payload[k] for k in ("province", "age_band", "sex")} == {
        "province": "PK3",
        "age_band": "10-14",
        "sex": "female",
    }
    assert "district" not in d.payload
    peers = [case_factory() for _ in range(4)]
    d = policy.decide(
        case,
        "health",
        "referral",
        Stage.PROBE,
        now=NOW,
        population=Population.from_cases([case, *peers], GAZETTEER, NOW.date()),
    )
    assert d.payload["district"] == "PK301"
    assert "probe_ref" in d.payload and d.case_code is None


def test_probe_needs_consent_and_a_service(policy: DisclosurePolicy, case_factory: Case) -> None:
    assert not policy.decide(
        case_factory(consent_for_services=None), "health", "referral", Stage.PROBE, now=NOW
    ).allowed
    d = policy.decide(
        case_factory(services_section=[]), "courts", "court_order", Stage.PROBE, now=NOW
    )
    assert not d.allowed and "no service" in d.reason


def test_explain_shows_sent_values_and_only_names_of_withheld(
    policy: DisclosurePolicy, shared_ring: KeyRing, case_factory: Case
) -> None:
    case = case_factory(notes_section=[{"note_text": NARRATIVE}], telephone_current="03001234567")
    e = explain(policy, case, "health", "referral", codes=shared_ring, now=NOW)
    rows = {f.field: f for f in e.fields}
    assert rows["case_code"].value == shared_ring.case_code(case["id"], "health")
    assert rows["location_current"].value == "PK301" and rows["location_current"].sent
    assert rows["services_section.service_type"].value == ["health_medical_service"]
    withheld = [f for f in e.fields if not f.sent]
    assert {"notes_section.note_text", "telephone_current", "id"} <= {f.field for f in withheld}
    assert all(f.value is None for f in withheld)
    dumped = json.dumps(e.to_dict())
    assert NARRATIVE[:12] not in dumped and "03001234567" not in dumped and case["id"] not in dumped


def test_audit_entry_has_names_not_values(
    policy: DisclosurePolicy, shared_ring: KeyRing, case_factory: Case
) -> None:
    case = case_factory(notes_section=[{"note_text": NARRATIVE}])
    d = policy.decide(case, "health", "referral", Stage.IDENTIFIED, codes=shared_ring, now=NOW)
    entry = json.dumps(d.audit_entry())
    assert "name" in d.audit_entry()["fields"]
    for value in ("Zainab", "2014-06-02", NARRATIVE[:12], case["id"], "PK301"):
        assert value not in entry


def test_field_names_that_pose_as_subform_paths_are_withheld(
    policy: DisclosurePolicy, shared_ring: KeyRing, case_factory: Case
) -> None:
    case = case_factory(**{"services_section.service_type": NARRATIVE, "name\n": "x"})
    case["services_section"][0]["odd.key"] = NARRATIVE
    d = policy.decide(case, "health", "referral", Stage.IDENTIFIED, codes=shared_ring, now=NOW)
    assert d.allowed and NARRATIVE[:12] not in json.dumps(d.payload)
    assert "<malformed field name>" in d.fields_withheld
    assert not any("\n" in name or "odd.key" in name for name in d.fields_withheld)
