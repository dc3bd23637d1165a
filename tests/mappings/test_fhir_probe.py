"""The capacity probe as FHIR: one anonymous Task, coded inputs only, nothing that names a child.

Golden files are the reviewable contract with a health department. After an intended change,
regenerate them with ``CPIMS_UPDATE_GOLDEN=1 scripts/test tests/mappings`` and review the diff.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from adapter.errors import MappingError
from adapter.mappings import fhir_codes
from adapter.mappings.fhir import OrgRef, build_referral_bundle, full_url, to_json
from adapter.mappings.fhir_probe import PROBE_KEYS, CapacityProbe, build_probe_bundle
from adapter.privacy import probe as privacy_probe
from tests.mappings.test_fhir_mapping import MHPSS_WITH_CONSENT

GOLDEN = Path(__file__).parent / "golden"

MHPSS_PROBE = CapacityProbe(
    referral_key="rk-2026-000123",
    service_type="psychosocial_service",
    performer_org=OrgRef(reference="Organization/dhq-peshawar"),
    requester_org=OrgRef(
        system="urn:cpims-adapter:org", value="cpu-peshawar", display="CPU Peshawar"
    ),
    probe={
        "stage": "probe",
        "probe_ref": "3f9c2a61b0d4e857",
        "services": ["health_medical_service", "psychosocial_service"],
        "urgency": "emergency",
        "district": "PK-KP-PSH",
        "age_band": "10-14",
        "sex": "female",
    },
)
#: Without population counts a probe is coarsened to service and urgency (privacy/probe.py).
COARSE_PROBE = CapacityProbe(
    referral_key="rk-2026-000124",
    service_type="medico_legal_service",
    performer_org=OrgRef(system="urn:oid:2.16.586.1.1", value="KP-LRH-FORENSIC"),
    requester_org=OrgRef(system="urn:cpims-adapter:org", value="cpu-peshawar"),
    urgency="normal",
    probe={"stage": "probe", "probe_ref": "0a1b2c3d4e5f6a7b", "services": ["medico_legal_service"]},
)


def _golden(name: str, bundle_json: str) -> None:
    text = json.dumps(json.loads(bundle_json), indent=2, ensure_ascii=False) + "\n"
    path = GOLDEN / name
    if os.environ.get("CPIMS_UPDATE_GOLDEN") == "1":
        path.write_text(text)
    assert text == path.read_text(), f"{name} changed: review, then CPIMS_UPDATE_GOLDEN=1"


def _task(probe: CapacityProbe) -> dict[str, Any]:
    (entry,) = json.loads(to_json(build_probe_bundle(probe)))["entry"]
    return dict(entry["resource"])


def _inputs(task: dict[str, Any]) -> dict[str, list[tuple[str, str]]]:
    return {
        i["type"]["coding"][0]["code"]: [
            (c["system"], c["code"]) for c in i["valueCodeableConcept"]["coding"]
        ]
        for i in task["input"]
    }


@pytest.mark.parametrize(
    ("name", "probe"),
    [("probe_mhpss_district.json", MHPSS_PROBE), ("probe_medico_legal_coarse.json", COARSE_PROBE)],
)
def test_golden_probe_bundles(name: str, probe: CapacityProbe) -> None:
    _golden(name, to_json(build_probe_bundle(probe)))


def test_the_probe_is_one_conditional_create_on_the_referral_identifier() -> None:
    (entry,) = build_probe_bundle(MHPSS_PROBE).entry or []
    assert entry.request is not None
    assert (entry.request.method, entry.request.url, entry.request.ifNoneExist) == (
        "POST",
        "Task",
        "identifier=urn:cpims-adapter:referral|rk-2026-000123",
    )
    # The identified stage's Task entry has the same fullUrl and the same ifNoneExist: on the
    # server it finds this Task instead of creating a second one.
    (referral_task,) = [
        e
        for e in build_referral_bundle(MHPSS_WITH_CONSENT).entry or []
        if e.resource is not None and e.resource.get_resource_type() == "Task"
    ]
    assert referral_task.request is not None
    assert entry.fullUrl == referral_task.fullUrl == full_url("rk-2026-000123", "Task")
    assert entry.request.ifNoneExist == referral_task.request.ifNoneExist


def test_the_probe_task_asks_and_points_at_no_one() -> None:
    task = _task(MHPSS_PROBE)
    assert (task["status"], task["intent"], task["priority"]) == ("requested", "order", "asap")
    assert task["code"]["coding"] == [dict(fhir_codes.TASK_CAPACITY_CHECK)]
    assert task["businessStatus"]["coding"] == [dict(fhir_codes.STAGE_CAPACITY_CHECK)]
    assert task["owner"] == {"reference": "Organization/dhq-peshawar"}
    assert task["meta"]["security"] == [dict(label) for label in fhir_codes.SECURITY_LABELS]
    for absent in ("for", "focus", "note", "description", "authoredOn", "reasonCode"):
        assert absent not in task
    assert _inputs(task) == {
        "service": [
            (fhir_codes.PRIMERO_SERVICE_TYPE_SYSTEM, "psychosocial_service"),
            (fhir_codes.SERVICE_CATEGORY_SYSTEM, "mhpss"),
            (fhir_codes.SNOMED, "409063005"),
        ],
        "urgency": [(fhir_codes.PROBE_URGENCY_SYSTEM, "emergency")],
        "district": [(fhir_codes.LOCATION_SYSTEM, "PK-KP-PSH")],
        "age-band": [(fhir_codes.AGE_BAND_SYSTEM, "10-14")],
        "sex": [(fhir_codes.ADMINISTRATIVE_GENDER, "female")],
    }


def test_the_random_probe_ref_is_not_sent_so_output_is_deterministic() -> None:
    again = replace(MHPSS_PROBE, probe={**MHPSS_PROBE.probe, "probe_ref": "ffffffffffffffff"})
    assert to_json(build_probe_bundle(again)) == to_json(build_probe_bundle(MHPSS_PROBE))
    assert "3f9c2a61b0d4e857" not in to_json(build_probe_bundle(MHPSS_PROBE))


@pytest.mark.parametrize(
    ("urgency", "priority"), [("emergency", "asap"), ("urgent", "urgent"), ("normal", "routine")]
)
def test_priority_from_the_probe_urgency(urgency: str, priority: str) -> None:
    assert _task(replace(COARSE_PROBE, urgency=urgency))["priority"] == priority


@pytest.mark.parametrize(
    ("extra", "secret"),
    [
        ({"case_code": "cp1.health.1.mfrggzdfmztwq"}, "mfrggzdfmztwq"),
        ({"name": "Ayesha Bibi"}, "Ayesha"),
        ({"date_of_birth": "2014-03-17"}, "2014-03-17"),
        ({"narrative": "beaten by her uncle at home"}, "uncle"),
        ({"Ayesha Bibi's file": "x"}, "Ayesha"),  # a key that is itself data is not echoed
    ],
)
def test_unknown_probe_keys_are_refused_by_name_never_by_value(
    extra: dict[str, str], secret: str
) -> None:
    with pytest.raises(MappingError) as caught:
        build_probe_bundle(replace(MHPSS_PROBE, probe={**MHPSS_PROBE.probe, **extra}))
    message = str(caught.value)
    assert secret not in message
    (key,) = extra
    assert (key if key.isidentifier() else "<malformed key>") in message


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"sex": "Ayesha Bibi"}, "probe.sex"),
        ({"sex": "other"}, "probe.sex"),  # rarer values would single a child out
        ({"age_band": "Ayesha Bibi"}, "probe.age_band"),
        ({"age_band": ["10-14"]}, "probe.age_band"),
        ({"district": "Ayesha Bibi"}, "probe.district"),
        ({"province": {"code": "KP"}}, "probe.province"),
        ({"urgency": "Ayesha Bibi"}, "urgency"),
        ({"stage": "identified"}, "probe.stage"),
        ({"services": "psychosocial_service"}, "probe.services"),
        ({"services": ["health_medical_service"]}, "probe.services"),
    ],
)
def test_values_outside_the_probe_vocabulary_are_refused(
    changes: dict[str, Any], field: str
) -> None:
    with pytest.raises(MappingError) as caught:
        build_probe_bundle(replace(MHPSS_PROBE, probe={**MHPSS_PROBE.probe, **changes}))
    assert field in str(caught.value)
    assert "Ayesha" not in str(caught.value)


def test_urgency_given_twice_must_agree_and_once_is_required() -> None:
    with pytest.raises(MappingError, match="disagree"):
        build_probe_bundle(replace(MHPSS_PROBE, urgency="normal"))
    assert _task(replace(MHPSS_PROBE, urgency="emergency"))["priority"] == "asap"
    with pytest.raises(MappingError, match="urgency"):
        build_probe_bundle(replace(COARSE_PROBE, urgency=None))


def test_a_service_other_departments_provide_is_refused() -> None:
    with pytest.raises(MappingError, match="service_type"):
        build_probe_bundle(replace(COARSE_PROBE, service_type="legal_assistance_service"))


def test_the_vocabulary_agrees_with_the_privacy_core() -> None:
    bands = {label for _low, _high, label in privacy_probe.AGE_BANDS} | {privacy_probe.ADULT_BAND}
    assert bands == fhir_codes.PROBE_AGE_BANDS
    assert privacy_probe.SEXES == fhir_codes.PROBE_SEXES
    assert set(privacy_probe.URGENCY.values()) | {"normal"} == set(fhir_codes.PROBE_URGENCIES)


def test_a_probe_from_the_privacy_core_maps() -> None:
    case = {
        "sex": "female",
        "date_of_birth": "2014-03-17",
        "location_current": "PK-KP-PSH-01",
        "services_section": [
            {"service_type": "psychosocial_service", "service_response_timeframe": "3_days"}
        ],
    }
    gazetteer = privacy_probe.Gazetteer(
        {"PK-KP": (1, None), "PK-KP-PSH": (2, "PK-KP"), "PK-KP-PSH-01": (3, "PK-KP-PSH")}
    )
    population = privacy_probe.Population(
        [privacy_probe.QuasiIdentifiers("PK-KP-PSH", "PK-KP", "10-14", "female")] * 5
    )
    probe = privacy_probe.build_probe(
        case,
        SimpleNamespace(services=("psychosocial_service",)),  # type: ignore[arg-type]
        k=5,
        now=datetime(2026, 3, 1, tzinfo=UTC),
        gazetteer=gazetteer,
        population=population,
    )
    assert probe is not None
    task = _task(
        replace(
            COARSE_PROBE, service_type="psychosocial_service", urgency=None, probe=probe.payload
        )
    )
    assert _inputs(task)["district"] == [(fhir_codes.LOCATION_SYSTEM, "PK-KP-PSH")]
    assert _inputs(task)["urgency"] == [(fhir_codes.PROBE_URGENCY_SYSTEM, "urgent")]


# --- properties ------------------------------------------------------------------------------

_LOCATION_CODES = st.from_regex(r"[A-Za-z0-9][A-Za-z0-9._\-]{0,20}", fullmatch=True)
_VALID_PROBES = st.fixed_dictionaries(
    {},
    optional={
        "stage": st.just("probe"),
        "probe_ref": st.text(alphabet="0123456789abcdef", min_size=16, max_size=16),
        "services": st.just(["medico_legal_service"]),
        "district": _LOCATION_CODES,
        "province": _LOCATION_CODES,
        "age_band": st.sampled_from(sorted(fhir_codes.PROBE_AGE_BANDS)),
        "sex": st.sampled_from(sorted(fhir_codes.PROBE_SEXES)),
    },
)


def _strings(value: Any, path: str = "") -> Iterator[tuple[str, str]]:
    """Every string leaf with its element path (list indices dropped)."""
    if isinstance(value, dict):
        for key, item in value.items():
            yield from _strings(item, f"{path}.{key}" if path else key)
    elif isinstance(value, list):
        for item in value:
            yield from _strings(item, path)
    elif isinstance(value, str):
        yield path, value


def _words(value: Any) -> Iterator[str]:
    if isinstance(value, str):
        yield value
    elif hasattr(value, "values"):
        for item in value.values():
            yield from _words(item)
    elif isinstance(value, tuple | list | frozenset | set):
        for item in value:
            yield from _words(item)


#: Every string a probe bundle may carry outside Task.input codes: our fixed vocabulary.
VOCABULARY = {
    word for name in dir(fhir_codes) if name.isupper() for word in _words(getattr(fhir_codes, name))
}


@given(probe=_VALID_PROBES)
def test_allowed_keys_appear_only_as_coded_inputs(probe: dict[str, Any]) -> None:
    bundle = json.loads(to_json(build_probe_bundle(replace(COARSE_PROBE, probe=probe))))
    own = {
        "rk-2026-000124",
        "identifier=urn:cpims-adapter:referral|rk-2026-000124",
        full_url("rk-2026-000124", "Task"),
        "urn:oid:2.16.586.1.1",
        "KP-LRH-FORENSIC",
        "cpu-peshawar",
        "urn:cpims-adapter:org",
        # FHIR's own words: Bundle.type, request.method and url, Task.status/intent/priority.
        "transaction",
        "POST",
        "Task",
        "requested",
        "order",
        "routine",
    }
    input_code = "entry.resource.input.valueCodeableConcept.coding.code"
    codes_sent = set()
    for path, text in _strings(bundle):
        if path == input_code:
            codes_sent.add(text)
        else:  # anything else is our vocabulary or the referral's own envelope, never a value
            assert text in VOCABULARY | own or path.endswith("resourceType"), path
    sent = {v for k, v in probe.items() if k not in ("stage", "probe_ref", "services")}
    assert sent <= codes_sent
    if "probe_ref" in probe:
        assert probe["probe_ref"] not in json.dumps(bundle)


_EXTRA_KEYS = st.text(min_size=1, max_size=30).filter(lambda k: k not in PROBE_KEYS)


@given(key=_EXTRA_KEYS, value=st.one_of(st.text(), st.integers(), st.none()))
def test_any_extra_key_is_refused_without_its_value(key: str, value: Any) -> None:
    def message(v: Any) -> str:
        with pytest.raises(MappingError) as caught:
            build_probe_bundle(replace(COARSE_PROBE, probe={**COARSE_PROBE.probe, key: v}))
        return str(caught.value)

    # Refused whatever the value (even None: an unknown key is a policy change), and the message
    # is the same for any value: it cannot carry the value.
    assert "probe keys" in message(value)
    assert message(value) == message("a different value entirely")
