"""The adapter's own changes to what a department holds: link, cancel, withdraw consent (pure).

What matters: the department's status is never written over, a repeat changes nothing (so the
client sends nothing), and nothing but codes is added.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from adapter.errors import MappingError
from adapter.mappings import fhir_codes
from adapter.mappings.fhir import OrgRef, to_json
from adapter.mappings.fhir_probe import CapacityProbe, build_probe_bundle
from adapter.mappings.fhir_task import (
    cancelled_task,
    linked_task,
    task_update_from_json,
    withdrawn_consent,
)

REFS = {"service_request_ref": "ServiceRequest/sr-1", "patient_ref": "Patient/p-1"}


def _probe_task(status: str = "accepted", **elements: Any) -> dict[str, Any]:
    """The probe Task as a server would return it after the department answered."""
    probe = CapacityProbe(
        referral_key="rk-1",
        service_type="health_medical_service",
        performer_org=OrgRef(reference="Organization/dhq"),
        requester_org=OrgRef(system="urn:cpims-adapter:org", value="cpu"),
        urgency="urgent",
    )
    (entry,) = json.loads(to_json(build_probe_bundle(probe)))["entry"]
    task = dict(entry["resource"])
    task["meta"] = {**task["meta"], "versionId": "2", "lastUpdated": "2026-03-01T10:00:00Z"}
    return {**task, "id": "t-1", "status": status, **elements}


@pytest.mark.parametrize("status", ["requested", "accepted", "rejected"])
def test_a_probe_task_reads_back_unlinked(status: str) -> None:
    update = task_update_from_json(_probe_task(status))
    assert update is not None
    assert (update.referral_key, update.status, update.linked) == ("rk-1", status, False)
    assert update.business_status == "capacity-check"


def test_linking_adds_the_references_and_keeps_the_department_status() -> None:
    task = _probe_task("accepted")
    linked = linked_task(task, **REFS)
    assert linked is not None
    assert linked["status"] == "accepted"
    assert linked["focus"] == {"reference": "ServiceRequest/sr-1"}
    assert linked["for"] == {"reference": "Patient/p-1"}
    assert linked["code"]["coding"] == [dict(fhir_codes.TASK_FULFILL)]
    assert linked["businessStatus"]["coding"] == [dict(fhir_codes.STAGE_DETAILS_SENT)]
    assert linked["input"] == task["input"]
    assert linked["meta"] == {"security": task["meta"]["security"]}  # the server's to set
    assert task.get("focus") is None  # the read is not modified in place
    update = task_update_from_json({**linked, "meta": task["meta"]})
    assert update is not None and update.linked


def test_linking_twice_changes_nothing() -> None:
    linked = linked_task(_probe_task(), **REFS)
    assert linked is not None
    assert linked_task(linked, **REFS) is None
    # The server may hand references back absolute: still the same resources.
    absolute = {
        **linked,
        "focus": {"reference": "https://fhir.example.org/fhir/ServiceRequest/sr-1"},
        "for": {"reference": "Patient/p-1/_history/3"},
    }
    assert linked_task(absolute, **REFS) is None


def test_the_department_business_status_is_not_written_over() -> None:
    own = {"coding": [{"system": "urn:hospital:bs", "code": "appointment-booked"}]}
    linked = linked_task(_probe_task(businessStatus=own), **REFS)
    assert linked is not None and linked["businessStatus"] == own


def test_a_task_linked_to_another_referral_is_refused() -> None:
    task = _probe_task(focus={"reference": "ServiceRequest/other"})
    with pytest.raises(MappingError, match=r"Task\.focus"):
        linked_task(task, **REFS)


@pytest.mark.parametrize(
    "refs",
    [
        {"service_request_ref": "Patient/p-1", "patient_ref": "Patient/p-1"},
        {"service_request_ref": "ServiceRequest/sr-1", "patient_ref": "urn:uuid:1234"},
        {"service_request_ref": "ServiceRequest/sr 1", "patient_ref": "Patient/p-1"},
    ],
)
def test_references_must_be_literal_and_of_the_right_type(refs: dict[str, str]) -> None:
    with pytest.raises(MappingError, match="literal reference"):
        linked_task(_probe_task(), **refs)


@pytest.mark.parametrize("reason", ["consent-withdrawn", "referral-revoked"])
def test_cancelling_sets_a_coded_reason(reason: str) -> None:
    cancelled = cancelled_task(_probe_task("in-progress"), reason)
    assert cancelled is not None
    assert cancelled["status"] == "cancelled"
    assert cancelled["statusReason"] == {"coding": [dict(fhir_codes.CANCEL_REASONS[reason])]}
    assert "text" not in cancelled["statusReason"]
    assert cancelled_task(cancelled, reason) is None


@pytest.mark.parametrize("status", ["completed", "rejected", "failed", "cancelled"])
def test_a_settled_task_keeps_its_outcome(status: str) -> None:
    assert cancelled_task(_probe_task(status), "consent-withdrawn") is None


def test_a_free_text_reason_is_refused() -> None:
    with pytest.raises(MappingError, match="reason_code"):
        cancelled_task(_probe_task(), "she moved to Lahore")


def test_withdrawing_consent_sets_it_inactive_once() -> None:
    consent = {
        "resourceType": "Consent",
        "id": "c-1",
        "meta": {"versionId": "1"},
        "status": "active",
        "scope": {"coding": [dict(fhir_codes.CONSENT_SCOPE_PRIVACY)]},
        "category": [{"coding": [dict(fhir_codes.CONSENT_CATEGORY)]}],
        "policyRule": {"coding": [dict(fhir_codes.CONSENT_POLICY_RULES["consent"])]},
    }
    withdrawn = withdrawn_consent(consent)
    assert withdrawn is not None
    assert withdrawn["status"] == "inactive" and "meta" not in withdrawn
    assert withdrawn_consent(withdrawn) is None


def test_a_change_to_an_invalid_resource_is_a_mapping_error() -> None:
    with pytest.raises(MappingError):
        linked_task({**_probe_task(), "colour": "Ayesha Bibi"}, **REFS)
    with pytest.raises(MappingError, match="expected a Task"):
        cancelled_task({"resourceType": "Consent"}, "referral-revoked")


@pytest.mark.parametrize(
    "element", [{"focus": "ServiceRequest/sr-1"}, {"for": {"reference": 7}}, {"focus": []}]
)
def test_a_task_whose_references_are_not_references_is_a_mapping_error(
    element: dict[str, Any],
) -> None:
    with pytest.raises(MappingError, match="FHIR R4B validation") as caught:
        linked_task(_probe_task(**element), **REFS)
    assert "sr-1" not in str(caught.value)


def test_an_invalid_task_already_linked_is_still_refused_when_read() -> None:
    """Nothing to write, so linked_task builds no model; the read that follows does."""
    linked = linked_task(_probe_task(), **REFS)
    assert linked is not None
    broken = {**linked, "meta": _probe_task()["meta"], "colour": "Ayesha Bibi"}
    assert linked_task(broken, **REFS) is None
    with pytest.raises(MappingError) as caught:
        task_update_from_json(broken)
    assert "Ayesha" not in str(caught.value)
