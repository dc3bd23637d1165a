"""Property tests over thousands of generated Primero cases (issue 3 "done when").

* no field outside a department's allow-list ever leaves;
* an S3 case never carries narrative text (no 12-character run of any free-text field);
* birth-registration payloads never carry protection concerns;
* a case's codes differ across departments and equal no hash of any identifier;
* an unknown Primero field never leaves, and a case without consent is always refused.
"""

from __future__ import annotations

import base64
import hashlib
import string
import uuid
from datetime import date, timedelta
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from adapter.privacy import (
    ConsentOverride,
    DisclosurePolicy,
    KeyRing,
    OverrideBasis,
    Population,
    Stage,
)
from adapter.privacy.policy import CASE_CODE_KEY, TEXT_KINDS

from .conftest import GAZETTEER, NOW

LETTERS = string.ascii_letters + "آبپتٹجچدڈرزسشصطعغفقکگلمنوہیےيكۃة"
TEXT = LETTERS + " .,'\u200c\u064e"
CONCERNS = [
    "sexual_abuse_violence", "rape", "gbv_survivor", "trafficked_smuggled", "other",
    "physical_abuse_violence", "child_marriage", "caafag", "neglect", "child_labour",
    "orphan", "separated", "brand_new_concern_code",
]  # fmt: skip
SERVICES = [
    "health_medical_service", "psychosocial_service", "police_other_service",
    "registration_service", "legal_assistance_service", "safehouse_service", "education_service",
]  # fmt: skip
UNKNOWN_PREFIX = "NFX-"
COMBOS = [
    ("health", "referral"),
    ("health", "medico_legal_exam"),
    ("police", "referral"),
    ("birth_registration", "birth_registration"),
    ("courts", "court_order"),
]
SETTINGS = settings(
    max_examples=1000,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)

names = st.text(alphabet=LETTERS + " ", min_size=1, max_size=40)
free_text = st.text(alphabet=TEXT, min_size=0, max_size=120)
flag = st.sampled_from([True] * 8 + [False, None, "true", "missing"])


@st.composite
def cases(draw: st.DrawFn) -> dict[str, Any]:
    unique = str(draw(st.uuids()))
    name = draw(names)
    case: dict[str, Any] = {
        "id": str(draw(st.uuids())),
        "unique_identifier": unique,
        "case_id": unique,
        "short_id": unique[-7:],
        "case_id_display": unique[-7:],
        "module_id": draw(
            st.sampled_from(["primeromodule-cp"] * 6 + ["primeromodule-gbv"] * 2 + ["mrm", None])
        ),
        "name": name,
        "name_first": name.split(" ")[0],
        "sex": draw(st.sampled_from(["male", "female", "other", None])),
        "date_of_birth": draw(st.dates(date(2005, 1, 1), date(2026, 1, 1))).isoformat(),
        "age": draw(st.integers(0, 20)),
        "location_current": draw(st.sampled_from(["PK30101", "PK302", "PK401", "XX9", None])),
        "address_current": draw(free_text),
        "telephone_current": "0300" + draw(st.text("0123456789", min_size=7, max_size=7)),
        "national_id_no": "35202" + draw(st.text("0123456789", min_size=8, max_size=8)),
        "protection_concerns": draw(st.lists(st.sampled_from(CONCERNS), max_size=2)),
        "protection_concerns_other": draw(free_text),
        # A narrative that quotes other fields, to exercise the S3 scan and not just the rules.
        "police_referral_extract": draw(st.sampled_from([name + " was seen at home", ""]))
        + draw(free_text),
        "notes_section": [
            {"note_subject": draw(free_text), "note_text": draw(free_text)}
            for _ in range(draw(st.integers(0, 2)))
        ],
        "protection_concern_detail_subform_section": [
            {
                "protection_concern_type": draw(st.sampled_from(CONCERNS)),
                "concern_details": draw(free_text),
            }
            for _ in range(draw(st.integers(0, 1)))
        ],
        "incident_details": [
            {
                "incident_date": draw(st.dates()).isoformat() + "T10:11:12Z",
                "incident_location": "PK301",
                "cp_incident_abuser_name": draw(names),
                "cp_incident_previous_incidents_description": draw(free_text),
            }
        ],
        "family_details_section": [
            {
                "relation": "mother",
                "relation_name": draw(names),
                "relation_telephone": "03001112223",
            }
        ],
        "services_section": [
            {
                "unique_id": str(draw(st.uuids())),
                "service_type": draw(st.sampled_from(SERVICES)),
                "service_response_timeframe": draw(st.sampled_from(["1_hour", "3_days", None])),
                "service_referral_notes": draw(free_text),
                "service_appointment_date": "2026-03-04T08:30:00Z",
            }
            for _ in range(draw(st.integers(0, 3)))
        ],
    }
    for key, value in (("consent_for_services", draw(flag)), ("disclosure_other_orgs", draw(flag))):
        if value != "missing":
            case[key] = value
    # Fields Primero may add tomorrow: not in any catalogue, so they must never leave.
    for i in range(draw(st.integers(0, 3))):
        case[f"new_field_{i}"] = UNKNOWN_PREFIX + draw(free_text)
    case["new_subform_x"] = [{"secret": UNKNOWN_PREFIX + draw(free_text)}]
    return case


@st.composite
def overrides_for(draw: st.DrawFn, case_id: str) -> list[ConsentOverride]:
    chosen = draw(
        st.lists(
            st.sampled_from(
                [
                    ("police", OverrideBasis.MANDATORY_REPORT),
                    ("courts", OverrideBasis.COURT_ORDER),
                    ("health", OverrideBasis.RISK_TO_LIFE),
                    ("health", OverrideBasis.S3_APPROVAL),
                    ("police", OverrideBasis.S3_APPROVAL),
                    ("birth_registration", OverrideBasis.S3_APPROVAL),
                    ("courts", OverrideBasis.S3_APPROVAL),
                ]
            ),
            max_size=4,
            unique=True,
        )
    )
    return [
        ConsentOverride(
            case_id=case_id,
            department=dept,
            basis=basis,
            legal_reference="CPWA 2010 s.x",
            requested_by="caseworker",
            approved_by="supervisor",
            created_at=NOW - timedelta(hours=1),
            expires_at=NOW + timedelta(hours=1),
            id=i + 1,
        )
        for i, (dept, basis) in enumerate(chosen)
    ]


def leaf_paths(payload: dict[str, Any]) -> set[str]:
    paths = set()
    for key, value in payload.items():
        if isinstance(value, list) and value and isinstance(value[0], dict):
            paths.update(f"{key}.{sub}" for row in value for sub in row)
        elif isinstance(value, dict):
            paths.update(f"{key}.{sub}" for sub in value)
        else:
            paths.add(key)
    return paths


def strings(value: Any) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, dict):
        return [s for v in value.values() for s in strings(v)]
    if isinstance(value, list):
        return [s for v in value for s in strings(v)]
    return []


def text_values(case: dict[str, Any], policy: DisclosurePolicy) -> list[str]:
    """Values of every narrative, free-text or uncatalogued field of the case."""
    kinds = policy.policy.field_kinds
    out = []
    for key, value in case.items():
        rows = value if isinstance(value, list) and value and isinstance(value[0], dict) else None
        if rows is None:
            if kinds.get(key, "narrative") in TEXT_KINDS and key not in ("id", "case_id"):
                out.extend(strings(value))
            continue
        for row in rows:
            for sub, subvalue in row.items():
                if kinds.get(f"{key}.{sub}", "narrative") in TEXT_KINDS and sub != "unique_id":
                    out.extend(strings(subvalue))
    return [t for t in out if len(t) >= 12]


@SETTINGS
@given(case=cases(), data=st.data())
def test_identified_payloads_obey_allow_list_suppression_and_default_deny(
    policy: DisclosurePolicy, shared_ring: KeyRing, case: dict[str, Any], data: st.DataObject
) -> None:
    overrides = data.draw(overrides_for(case["id"]))
    level = policy.classify(case).level
    narrative = text_values(case, policy)
    codes = {}
    for department, purpose in COMBOS:
        d = policy.decide(
            case,
            department,
            purpose,
            Stage.IDENTIFIED,
            codes=shared_ring,
            overrides=overrides,
            now=NOW,
        )
        if not d.allowed:
            assert d.payload == {}
            continue
        dept = policy.policy.departments[department]
        allowed = {rule.field for rule in dept.purposes[purpose].allow}
        sent = leaf_paths(d.payload)
        # 1. Nothing outside the allow-list, whatever Primero sends.
        assert sent <= allowed | {CASE_CODE_KEY}, sent - allowed
        assert set(d.fields_out) <= allowed
        texts = strings(d.payload)
        # 2. Unknown fields never leave (the "new Primero field" mutation).
        assert not any(UNKNOWN_PREFIX in t for t in texts)
        # 3. S3: no 12-character run of any free text, in any payload.
        if level == "S3":
            payload_text = "\x00".join(texts)
            for text in narrative:
                for i in range(len(text) - 11):
                    assert text[i : i + 12] not in payload_text
            kinds = {policy.policy.field_kinds[p] for p in sent if p != CASE_CODE_KEY}
            assert kinds <= {"service", "identity"}
        # 4. Birth registration never learns a protection concern.
        if department == "birth_registration":
            concern_codes = set(case["protection_concerns"]) | {
                r["protection_concern_type"]
                for r in case["protection_concern_detail_subform_section"]
            }
            assert concern_codes.isdisjoint(texts)
            assert not any(policy.policy.field_kinds.get(p) == "concern" for p in sent)
        codes[department] = d.payload[CASE_CODE_KEY]
    # 5. One code per department, no two alike, and no hash of any identifier.
    assert len(set(codes.values())) == len(codes)
    forbidden = identifier_hashes(case)
    for code in codes.values():
        body = code.rsplit(".", 1)[1]
        assert body not in forbidden
        assert not any(h in code for h in forbidden if len(h) >= 7)


def identifier_hashes(case: dict[str, Any]) -> set[str]:
    values = {
        str(case[k])
        for k in (
            "id",
            "unique_identifier",
            "case_id",
            "case_id_display",
            "short_id",
            "national_id_no",
            "name",
            "telephone_current",
        )
        if case.get(k)
    }
    values |= {uuid.UUID(case["id"]).hex}
    out = set(values)
    for value in values:
        for algo in ("sha256", "md5", "sha1"):
            digest = hashlib.new(algo, value.encode()).digest()
            out.add(digest.hex())
            out.add(base64.b32encode(digest).decode().rstrip("=").lower())
    return out


@SETTINGS
@given(case=cases(), data=st.data())
def test_no_consent_means_no_disclosure(
    policy: DisclosurePolicy, shared_ring: KeyRing, case: dict[str, Any], data: st.DataObject
) -> None:
    overrides = [
        o for o in data.draw(overrides_for(case["id"])) if o.basis is OverrideBasis.S3_APPROVAL
    ]
    module = case["module_id"]
    if module == "primeromodule-gbv":
        consented = case.get("consent_for_services") is True
    elif module == "primeromodule-cp":
        consented = (
            case.get("consent_for_services") is True and case.get("disclosure_other_orgs") is True
        )
    else:
        consented = False
    for department, purpose in COMBOS:
        for stage in Stage:
            d = policy.decide(
                case,
                department,
                purpose,
                stage,
                codes=shared_ring,
                overrides=overrides,
                now=NOW,
            )
            if not consented:
                assert not d.allowed, (department, stage)
                assert d.payload == {}


PROBE_KEYS = {
    "stage",
    "probe_ref",
    "services",
    "urgency",
    "district",
    "province",
    "age_band",
    "sex",
}


@settings(max_examples=300, deadline=None)
@given(population=st.lists(cases(), min_size=0, max_size=12), case=cases())
def test_probes_are_anonymous_and_k_anonymous(
    policy: DisclosurePolicy, population: list[dict[str, Any]], case: dict[str, Any]
) -> None:
    case.update(module_id="primeromodule-cp", consent_for_services=True, disclosure_other_orgs=True)
    pop = Population.from_cases([*population, case], GAZETTEER, NOW.date())
    k = policy.policy.sensitivity.probe.k
    for department, purpose in COMBOS:
        d = policy.decide(case, department, purpose, Stage.PROBE, now=NOW, population=pop)
        if not d.allowed:
            continue
        assert set(d.payload) <= PROBE_KEYS
        assert CASE_CODE_KEY not in d.payload
        criteria = {
            k: v for k, v in d.payload.items() if k in ("district", "province", "age_band", "sex")
        }
        if criteria:
            assert pop.count(**criteria) >= k
        texts = strings(d.payload)
        assert case["name"] not in texts
        assert not any(UNKNOWN_PREFIX in t for t in texts)
