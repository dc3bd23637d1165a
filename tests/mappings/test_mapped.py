"""Mapping files: loading (errors a reviewer can act on) and documents (default deny holds)."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path
from typing import Any

import pytest

from adapter.app.departments import load_mapping
from adapter.errors import MappingError
from adapter.mappings.mapped import MappedMapping
from adapter.mappings.mapped_spec import MappingFileError
from adapter.mappings.routing import RoutedReferral
from adapter.privacy import Disclosure, PolicySet, Stage

ROOT = Path(__file__).resolve().parents[2]
MAPPINGS = ROOT / "config" / "mappings"
POLICY = PolicySet.load(ROOT / "config" / "policy")

MINIMAL = """
department = "police"
title = "Test police"
[documents.referral]
path = "/referrals"
body = { key = "$referral_key", sex = "$payload.sex" }
[documents.cancel]
path = "/referrals/{referral_key}/cancel"
[documents.withdraw]
path = "/referrals/{referral_key}/erase"
"""


def write(tmp_path: Path, text: str, name: str = "police.toml") -> Path:
    path = tmp_path / name
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return path


def load(tmp_path: Path, text: str, department: str = "police") -> MappedMapping:
    return load_mapping(write(tmp_path, text), department)


def routed(key: str = "ref-1", service: str = "police_other_service") -> RoutedReferral:
    return RoutedReferral(
        key=key,
        source="referral",
        referral_id=key.removeprefix("ref-"),
        service_row_id="row-1",
        service_type=service,
        urgency="1_day",
        primero_status="in_progress",
        transition=None,
    )


def disclosure(
    payload: dict[str, Any],
    *,
    department: str = "police",
    basis: str = "consent",
    purpose: str = "referral",
) -> Disclosure:
    code = f"cp1.{department}.1.TESTCODE"
    return Disclosure(
        allowed=True,
        reason="test",
        department=department,
        purpose=purpose,
        stage=Stage.IDENTIFIED,
        payload={"case_code": code, **payload},
        fields_out=tuple(payload),
        fields_withheld=(),
        sensitivity="S2",
        consent_basis=basis,
        case_code=code,
    )


POLICE_PAYLOAD: dict[str, Any] = {
    "name": "Synthetic Child",
    "date_of_birth": "2014-03-02",
    "sex": "female",
    "location_current": "PK-SD-KHI",
    "protection_concerns": ["physically_or_mentally_abused"],
    "incident_details": [{"incident_date": "2026-01-02", "incident_location": "PK-SD-KHI"}],
    "services_section": [
        {"service_type": "police_other_service", "service_response_timeframe": "1_day"}
    ],
}


# --- the shipped files -------------------------------------------------------------------------


@pytest.mark.parametrize("department", ["police", "birth_registration", "courts"])
def test_shipped_mappings_load_and_name_only_allow_listed_fields(department: str) -> None:
    mapping = load_mapping(MAPPINGS / f"{department}.toml", department, policy=POLICY)
    assert mapping.department == department and mapping.status is not None


def test_police_referral_carries_the_allow_listed_fields() -> None:
    police = load_mapping(MAPPINGS / "police.toml", "police")
    doc = police.referral(routed(), disclosure(POLICE_PAYLOAD), after_probe=False)
    assert doc.kind == "referral" and doc.body["route"] == "default"
    record = doc.body["json"]["referral"]
    assert record == {
        "referral_key": "ref-1",
        "case_code": "cp1.police.1.TESTCODE",
        "basis": "consent",
        "service": "police_other_service",
        "priority": "emergency",
        "protection_concerns": ["physically_or_mentally_abused"],
        "child": {"name": "Synthetic Child", "date_of_birth": "2014-03-02", "sex": "F"},
        "whereabouts": {"location": "PK-SD-KHI"},
        "incident": {"date": "2026-01-02", "place": "PK-SD-KHI"},
    }
    # Withheld by the policy (absent here): no empty perpetrator object, no null address.
    assert "alleged_perpetrator" not in record and "address" not in record["whereabouts"]
    assert doc.not_carried == ()


def test_a_referral_and_its_update_of_the_same_content_compare_equal() -> None:
    police = load_mapping(MAPPINGS / "police.toml", "police")
    sent = police.referral(routed(), disclosure(POLICE_PAYLOAD), after_probe=False)
    same = police.update(routed(), disclosure(POLICE_PAYLOAD))
    assert same.kind == "update" and same.content_hash == sent.content_hash
    changed = police.update(routed(), disclosure({**POLICE_PAYLOAD, "sex": "male"}))
    assert changed.content_hash != sent.content_hash
    assert changed.body["json"]["referral"]["child"]["sex"] == "M"


def test_a_child_in_conflict_with_the_law_goes_to_the_juvenile_desk() -> None:
    police = load_mapping(MAPPINGS / "police.toml", "police")
    payload = {**POLICE_PAYLOAD, "protection_concerns": ["arrested_detained"]}
    doc = police.referral(routed(), disclosure(payload), after_probe=False)
    assert doc.body["route"] == "juvenile_in_conflict"
    assert police.endpoint("referral", "juvenile_in_conflict").path == "/api/v1/juvenile-referrals"
    # Updates stay on the route; the police file re-routes only the referral itself.
    update = police.update(routed(), disclosure(payload))
    assert update.body["route"] == "juvenile_in_conflict"
    assert police.endpoint("update", "juvenile_in_conflict").path == (
        "/api/v1/referrals/{referral_key}"
    )


def test_cancel_and_withdraw_carry_no_case_data() -> None:
    police = load_mapping(MAPPINGS / "police.toml", "police")
    cancel = police.cancel("ref-9", "referral-revoked")
    assert cancel.body == {
        "referral_key": "ref-9",
        "route": "default",
        "json": {"referral_key": "ref-9", "reason": "referral-revoked"},
    }
    withdraw = police.withdraw("ref-9")
    assert withdraw.body["json"]["reason"] == "consent-withdrawn"
    assert police.endpoint("withdraw").path == "/api/v1/referrals/{referral_key}/erase"


def test_birth_registration_search_leaves_out_withheld_predicates() -> None:
    nadra = load_mapping(MAPPINGS / "birth_registration.toml", "birth_registration")
    payload = {
        "name_first": "Ayesha",
        "date_of_birth": "2015-06-01",
        "services_section": [{"service_type": "registration_service"}],
    }
    service = routed(service="registration_service")
    doc = nadra.referral(
        service,
        disclosure(payload, department="birth_registration", purpose="birth_registration"),
        after_probe=False,
    )
    (search,) = doc.body["json"]["message"]["search_request"]
    assert search["reference_id"] == "ref-1" and doc.body["json"]["header"]["action"] == "search"
    query = search["search_criteria"]["query"]
    assert [p["attribute_name"] for p in query] == ["given_name", "birth_date"]
    assert search["consent"]["purpose"] == "birth_registration"
    # The registration route for an unregistered child.
    request = nadra.referral(
        service,
        disclosure(payload, department="birth_registration", purpose="registration_request"),
        after_probe=False,
    )
    assert request.body["route"] == "registration_request"
    assert request.body["json"]["registration"]["child"] == {
        "given_name": "Ayesha",
        "date_of_birth": "2015-06-01",
    }


# --- default deny ------------------------------------------------------------------------------


def test_a_referenced_field_the_payload_lacks_is_never_invented(tmp_path: Path) -> None:
    mapping = load(
        tmp_path,
        MINIMAL.replace(
            'body = { key = "$referral_key", sex = "$payload.sex" }',
            'body = { key = "$referral_key", sex = "$payload.sex", '
            'child = { name = "$payload.name", kind = "child" }, '
            'list = ["$payload.date_of_birth"] }',
        ),
    )
    doc = mapping.referral(routed(), disclosure({}), after_probe=False)
    # Only the referral key: the literal "child" went with the object whose data was withheld.
    assert doc.body["json"] == {"key": "ref-1"}
    text = json.dumps(doc.body)
    assert "name" not in text and "sex" not in text


def test_service_and_urgency_are_stated_only_when_the_payload_carries_them(
    tmp_path: Path,
) -> None:
    mapping = load(
        tmp_path,
        MINIMAL.replace('sex = "$payload.sex"', 'service = "$service_type", urgency = "$urgency"'),
    )
    withheld = mapping.referral(routed(), disclosure({}), after_probe=False)
    assert withheld.body["json"] == {"key": "ref-1"}
    carried = mapping.referral(
        routed(),
        disclosure({"services_section": POLICE_PAYLOAD["services_section"]}),
        after_probe=False,
    )
    assert carried.body["json"] == {
        "key": "ref-1",
        "service": "police_other_service",
        "urgency": "1_day",
    }


def test_not_carried_names_allowed_fields_the_mapping_leaves_out(tmp_path: Path) -> None:
    text = MINIMAL.replace('sex = "$payload.sex"', 'sex = "$payload.sex", dob = "$dob"')
    text += '[values]\ndob = { from = "payload.date_of_birth", required = true }\n'
    mapping = load(tmp_path, text)
    payload = {"sex": "male", "name": "X", "services_section": [{"service_type": "s"}]}
    doc = mapping.referral(routed(), disclosure(payload), after_probe=False)
    # The case code, the name and the service row were allowed but are not carried; the date
    # of birth is needed by the mapping but was withheld.
    assert doc.not_carried == (
        "case_code",
        "date_of_birth",
        "name",
        "services_section.service_type",
    )


# --- load errors -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("change", "key", "fix"),
    [
        (("title", "titel"), "titel", "unknown key"),
        (
            ('path = "/referrals"\n', 'path = "/referrals"\nmethd = "PUT"\n'),
            "documents.referral.methd",
            "unknown key",
        ),
        (
            ("[documents.withdraw]\npath", "[documents.erase]\npath"),
            "documents.erase",
            "unknown key",
        ),
        (('"$payload.sex"', '"$payload.Sex"'), "documents.referral.body", "not a reference"),
        (('"$payload.sex"', '"$sexx"'), "documents.referral.body.sex", "neither payload"),
        (
            ('path = "/referrals"\n', 'path = "/referrals?x={name}"\n'),
            "documents.referral.path",
            "{referral_key}",
        ),
        (
            (
                'path = "/referrals/{referral_key}/cancel"',
                'path = "/c"\nbody = { s = "$payload.sex" }',
            ),
            "documents.cancel.body.s",
            "carry no case data",
        ),
    ],
)
def test_load_errors_name_the_file_the_key_and_the_fix(
    tmp_path: Path, change: tuple[str, str], key: str, fix: str
) -> None:
    text = MINIMAL.replace(*change)
    with pytest.raises(MappingFileError) as caught:
        load(tmp_path, text)
    message = str(caught.value)
    assert str(tmp_path / "police.toml") in message and f"key '{key}" in message and fix in message


def test_every_department_needs_withdrawal(tmp_path: Path) -> None:
    text = MINIMAL.replace('[documents.withdraw]\npath = "/referrals/{referral_key}/erase"\n', "")
    with pytest.raises(MappingFileError, match=r"key 'documents.withdraw': required"):
        load(tmp_path, text)


def test_a_probe_may_carry_only_probe_fields(tmp_path: Path) -> None:
    text = MINIMAL + '[documents.probe]\npath = "/probes"\nbody = { name = "$payload.name" }\n'
    with pytest.raises(MappingFileError, match=r"documents.probe.body.name.*capacity probe"):
        load(tmp_path, text)


def test_unknown_value_map_and_bad_status_are_refused(tmp_path: Path) -> None:
    text = MINIMAL + '[values]\nsex = { from = "payload.sex", map = "codes" }\n'
    with pytest.raises(MappingFileError, match=r"values.sex.map.*no \[maps.codes\]"):
        load(tmp_path, text)
    text = MINIMAL + '[status]\npath = "/changes"\nmap = { done = "finished" }\n'
    with pytest.raises(MappingFileError, match=r"status.map.done"):
        load(tmp_path, text)
    text = (
        MINIMAL
        + '[status]\npath = "/c"\nexternal_reference = "{a:>3}"\nmap = { d = "completed" }\n'
    )
    with pytest.raises(MappingFileError, match=r"status.external_reference.*plain"):
        load(tmp_path, text)


def test_a_file_for_another_department_is_refused(tmp_path: Path) -> None:
    with pytest.raises(
        MappingFileError, match=r"key 'department'.*'police'.*\[departments.courts\]"
    ):
        load_mapping(write(tmp_path, MINIMAL), "courts")


def test_a_field_on_no_allow_list_is_refused_against_the_policy(tmp_path: Path) -> None:
    text = MINIMAL.replace('"$payload.sex"', '"$payload.telephone_current"')
    with pytest.raises(MappingFileError, match=r"payload.telephone_current is on no allow-list"):
        load_mapping(write(tmp_path, text), "police", policy=POLICY)


def test_missing_and_malformed_files(tmp_path: Path) -> None:
    with pytest.raises(MappingFileError, match="no such mapping file"):
        load_mapping(tmp_path / "absent.toml", "police")
    with pytest.raises(MappingFileError, match="not valid TOML"):
        load(tmp_path, "department = ")


def test_a_message_queued_for_a_route_that_no_longer_exists_is_a_mapping_error(
    tmp_path: Path,
) -> None:
    with pytest.raises(MappingError, match="no route 'juvenile'"):
        load(tmp_path, MINIMAL).endpoint("referral", "juvenile")


# --- status ------------------------------------------------------------------------------------


FIR_ITEM = {
    "referral_key": "ref-1",
    "status": "registered",
    "station": "PS-Kalri",
    "year": 2026,
    "serial": 14,
    "sections": ["PPC 328-A", "PPC 376"],
    "investigating_officer": {"rank": "SI", "name": "Synthetic Officer"},
    "medico_legal_required": True,
    "desk": "protection",
    "updated_at": "2026-02-01T10:00:00.000001Z",
}


def test_an_fir_link_reads_back_as_a_status_update() -> None:
    police = load_mapping(MAPPINGS / "police.toml", "police")
    update, watermark = police.status_update(FIR_ITEM)
    assert update is not None and watermark == FIR_ITEM["updated_at"]
    assert update.status == "accepted" and update.record_type == "fir"
    assert update.external_ref == "PS-Kalri/2026/14"
    assert update.version == watermark and update.updated_at is not None
    assert update.details == {
        "fir_sections": "PPC 328-A, PPC 376",
        "investigating_officer": "SI Synthetic Officer",
        "medico_legal": "medico-legal examination required",
        "case_status": "registered",
        "desk": "protection",
    }


def test_a_declined_referral_has_no_fir_number_and_unknown_statuses_are_skipped() -> None:
    police = load_mapping(MAPPINGS / "police.toml", "police")
    declined, _ = police.status_update(
        {"referral_key": "ref-2", "status": "declined", "updated_at": "2026-02-01T10:00:00Z"}
    )
    assert declined is not None and declined.status == "rejected"
    assert declined.external_ref is None and "fir_sections" not in declined.details
    skipped, watermark = police.status_update({**FIR_ITEM, "status": "archived"})
    assert skipped is None and watermark == FIR_ITEM["updated_at"]


def test_unknown_statuses_may_map_to_a_default_and_file_settings_load(tmp_path: Path) -> None:
    text = MINIMAL + textwrap.dedent(
        """
        [status]
        path = "/changes"
        unknown = "in_progress"
        map = { done = "completed" }
        [files]
        email_kinds = ["referral"]
        inbound = { record_type = "court_order", columns = { "Case No." = "case_number" } }
        [record_types.court_order]
        label = "Court order"
        """
    )
    mapping = load(tmp_path, text)
    update, _ = mapping.status_update({"referral_key": "ref-1", "status": "queued"})
    assert update is not None and update.status == "in_progress"
    assert update.record_type == "referral" and update.version is None
    assert mapping.spec.files is not None and mapping.spec.files.email_kinds == ["referral"]


def test_record_types_are_declared_in_the_mapping_file(tmp_path: Path) -> None:
    status = '[status]\npath = "/changes"\nrecord_type = "school_enrolment"\n'
    with pytest.raises(MappingFileError, match=r"status.record_type.*add \[record_types"):
        load(tmp_path, MINIMAL + status)
    declared = '[record_types.school_enrolment]\nlabel = "School enrolment"\n'
    with pytest.raises(MappingFileError, match=r"record_types.school_enrolment.statuses.*required"):
        load(tmp_path, MINIMAL + status + declared)
    statuses = 'statuses = { enrolled = "completed" }\n'
    mapping = load(tmp_path, MINIMAL + status + declared + statuses)
    update, _ = mapping.status_update({"referral_key": "ref-1", "status": "enrolled"})
    assert update is not None and update.record_type == "school_enrolment"
    assert update.status == "completed"
    twice = status + 'map = { enrolled = "completed" }\n' + declared + statuses
    with pytest.raises(MappingFileError, match=r"status.map.*move them there"):
        load(tmp_path, MINIMAL + twice)
    core = '[record_types.referral]\nlabel = "Mine"\n'
    with pytest.raises(MappingFileError, match=r"record_types.referral.*adapter's own"):
        load(tmp_path, MINIMAL + core)
