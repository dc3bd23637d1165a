"""The plain-dict bundles the sync sends are valid FHIR R4B, byte for byte the validated models.

The hot path (adapter/mappings/health.py) builds bundles as plain dicts and never constructs a
fhir.resources model (BENCHMARKS.md: that was most of a sync's cost). These properties keep
the guarantee the models gave: for every input the builders accept, each emitted resource
type validates with its fhir.resources R4B model, and the dict's compact JSON is exactly what
the validated model serialises to (so the department receives the same bytes as before).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, replace
from datetime import UTC, date, datetime, timedelta, timezone
from typing import Any

from fhir.resources.R4B.bundle import Bundle
from fhir.resources.R4B.consent import Consent
from fhir.resources.R4B.patient import Patient
from fhir.resources.R4B.servicerequest import ServiceRequest
from fhir.resources.R4B.task import Task
from hypothesis import given, settings
from hypothesis import strategies as st

from adapter.mappings import fhir_codes
from adapter.mappings.fhir import (
    HealthReferral,
    OrgRef,
    content_fingerprint,
    content_update_bundle_json,
    referral_bundle_json,
    to_json,
)
from adapter.mappings.fhir_probe import probe_bundle_json
from tests.mappings.test_fhir_mapping import MHPSS_WITH_CONSENT
from tests.mappings.test_fhir_probe import MHPSS_PROBE

_MODELS: dict[str, Any] = {
    "Patient": Patient,
    "Consent": Consent,
    "ServiceRequest": ServiceRequest,
    "Task": Task,
}
_CODE = st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789_-.", min_size=1, max_size=12).filter(
    lambda s: s[0].isalnum()
)
_TEXT = st.text(min_size=1, max_size=30).filter(lambda s: s.strip())
_ORGS = st.one_of(
    st.builds(OrgRef, reference=st.sampled_from(["Organization/dhq-1", "Organization/x.y-2"])),
    st.builds(
        OrgRef,
        system=st.sampled_from(["urn:oid:2.16.586.1", "urn:cpims-adapter:org"]),
        value=_CODE,
        display=st.none() | _TEXT,
    ),
)
_MOMENTS = st.datetimes(
    min_value=datetime(2000, 1, 1), max_value=datetime(2090, 1, 1), timezones=st.just(UTC)
) | st.datetimes(
    min_value=datetime(2000, 1, 1),
    max_value=datetime(2090, 1, 1),
    timezones=st.just(timezone(timedelta(hours=5))),
)
_DEMOGRAPHICS = st.fixed_dictionaries(
    {},
    optional={
        "date_of_birth": st.dates(min_value=date(1990, 1, 1)).map(date.isoformat),
        "sex": st.sampled_from(sorted(fhir_codes.GENDERS)),
        "district": _TEXT.map(str.strip),
        "province": _TEXT.map(str.strip),
    },
)
_REFERRALS = st.builds(
    HealthReferral,
    case_code=_CODE,
    referral_key=_CODE,
    service_type=st.sampled_from(sorted(fhir_codes.SERVICE_CATEGORIES)),
    requester_org=_ORGS,
    performer_org=_ORGS,
    consent_basis=st.sampled_from(sorted(fhir_codes.CONSENT_POLICY_RULES)),
    consent_date=st.dates(min_value=date(2000, 1, 1)) | _MOMENTS,
    urgency=st.none() | st.sampled_from(sorted(fhir_codes.PRIORITIES)),
    demographics=_DEMOGRAPHICS,
    reason_codes=st.lists(_CODE, max_size=3).map(tuple),
    authored_on=st.none() | _MOMENTS,
    note=st.none() | _TEXT,
    legal_reference=st.none() | _TEXT,
)


def _assert_valid_and_identical(plain: dict[str, Any]) -> None:
    """Every resource validates with its own model, the Bundle with Bundle, and the plain
    dict's JSON is the validated model's JSON."""
    for entry in plain["entry"]:
        resource = entry["resource"]
        model = _MODELS[resource["resourceType"]].model_validate(resource)
        assert json.loads(to_json(model)) == resource
    bundle = Bundle.model_validate(plain)
    assert json.dumps(plain, separators=(",", ":"), ensure_ascii=False) == to_json(bundle)


@settings(max_examples=150, deadline=None)
@given(referral=_REFERRALS)
def test_referral_bundles_are_valid_r4b_and_the_models_bytes(referral: HealthReferral) -> None:
    _assert_valid_and_identical(referral_bundle_json(referral))


@settings(max_examples=150, deadline=None)
@given(referral=_REFERRALS)
def test_content_updates_are_valid_r4b_and_the_models_bytes(referral: HealthReferral) -> None:
    _assert_valid_and_identical(content_update_bundle_json(referral))


@settings(max_examples=100, deadline=None)
@given(
    urgency=st.sampled_from(sorted(fhir_codes.PROBE_URGENCIES)),
    age_band=st.none() | st.sampled_from(sorted(fhir_codes.PROBE_AGE_BANDS)),
    sex=st.none() | st.sampled_from(sorted(fhir_codes.PROBE_SEXES)),
    district=st.none() | _CODE,
    performer=_ORGS,
)
def test_probe_bundles_are_valid_r4b_and_the_models_bytes(
    urgency: str, age_band: str | None, sex: str | None, district: str | None, performer: OrgRef
) -> None:
    probe = {
        "stage": "probe",
        "services": [MHPSS_PROBE.service_type],
        "age_band": age_band,
        "sex": sex,
        "district": district,
    }
    plain = probe_bundle_json(
        replace(MHPSS_PROBE, urgency=urgency, performer_org=performer, probe=probe)
    )
    _assert_valid_and_identical(plain)


def test_every_resource_type_the_health_mapping_emits_is_covered() -> None:
    """Patient, Consent, ServiceRequest and Task: the four kinds a health bundle carries."""
    emitted = {
        entry["resource"]["resourceType"]
        for plain in (
            referral_bundle_json(MHPSS_WITH_CONSENT),
            content_update_bundle_json(MHPSS_WITH_CONSENT),
            probe_bundle_json(MHPSS_PROBE),
        )
        for entry in plain["entry"]
    }
    assert emitted == set(_MODELS)


@settings(max_examples=150, deadline=None)
@given(referral=_REFERRALS)
def test_the_fingerprint_is_the_one_links_already_store(referral: HealthReferral) -> None:
    """The fast fingerprint equals the ``asdict`` one it replaced: a link stored before the
    change still compares equal, so an upgrade re-sends nothing."""
    canonical = json.dumps(asdict(referral), sort_keys=True, separators=(",", ":"), default=str)
    assert content_fingerprint(referral) == hashlib.sha256(canonical.encode()).hexdigest()
