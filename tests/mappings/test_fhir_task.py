"""A department's Task read back into a TaskUpdate."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from adapter.errors import MappingError
from adapter.mappings.fhir_task import TaskOutput, task_update_from_json

OURS = {"system": "urn:cpims-adapter:referral", "value": "rk-1"}


def _task(**elements: Any) -> dict[str, Any]:
    return {
        "resourceType": "Task",
        "id": "t-9",
        "meta": {"versionId": "4", "lastUpdated": "2026-03-01T10:00:00.123Z"},
        "identifier": [{"system": "urn:hospital:task", "value": "H-77"}, OURS],
        "status": "completed",
        "intent": "order",
        **elements,
    }


def test_a_completed_task_with_a_medico_legal_report() -> None:
    update = task_update_from_json(
        _task(
            businessStatus={
                "coding": [{"system": "urn:hospital:bs", "code": "report-issued"}],
                "text": "Report issued",
            },
            note=[{"text": "Seen by the woman medical officer."}],
            output=[
                {
                    "type": {"text": "MLC report"},
                    "valueReference": {"reference": "DocumentReference/d1"},
                },
                {
                    "type": {"coding": [{"code": "mlc-number"}]},
                    "valueIdentifier": {"system": "urn:hospital:mlc", "value": "MLC-2026-17"},
                },
                {"type": {"text": "seen on"}, "valueDate": "2026-03-01"},
            ],
        )
    )
    assert update is not None
    assert (update.referral_key, update.task_id, update.status, update.version) == (
        "rk-1",
        "t-9",
        "completed",
        "4",
    )
    assert update.last_updated == datetime(2026, 3, 1, 10, 0, 0, 123000, tzinfo=UTC)
    assert update.business_status == "report-issued"
    assert update.note == ("Seen by the woman medical officer.",)
    assert update.outputs == (
        TaskOutput(
            type="MLC report", value_type="valueReference", reference="DocumentReference/d1"
        ),
        TaskOutput(
            type="mlc-number",
            value_type="valueIdentifier",
            identifier="urn:hospital:mlc|MLC-2026-17",
        ),
        TaskOutput(type="seen on", value_type="valueDate"),
    )
    assert update.is_final


def test_a_rejection_reason_as_text() -> None:
    update = task_update_from_json(_task(status="rejected", statusReason={"text": "no capacity"}))
    assert update is not None
    assert (update.status, update.status_reason, update.business_status) == (
        "rejected",
        "no capacity",
        None,
    )


def test_in_progress_is_not_final() -> None:
    update = task_update_from_json(_task(status="in-progress"))
    assert update is not None and not update.is_final


def test_a_task_that_is_not_ours_is_none() -> None:
    assert (
        task_update_from_json(_task(identifier=[{"system": "urn:hospital:task", "value": "H-1"}]))
        is None
    )


@pytest.mark.parametrize(
    "resource",
    [
        {"resourceType": "ServiceRequest", "status": "active", "intent": "order"},
        _task(status=None, intent=None),
        _task(colour="Ayesha Bibi"),
    ],
)
def test_an_invalid_task_is_a_mapping_error_without_values(resource: dict[str, Any]) -> None:
    with pytest.raises(MappingError) as caught:
        task_update_from_json(resource)
    assert "Ayesha" not in str(caught.value)
