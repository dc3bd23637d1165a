"""The two-stage referral against a real FHIR server (sekmet on 127.0.0.1).

What a user cares about: the hospital is first asked anonymously; identified data leaves only
after it accepted; one Task per referral from question to outcome, and the hospital's answers
are never written over; a revoked referral or a withdrawn consent reaches the hospital once.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest
import requests

from adapter.departments.fhir import (
    MAX_VERSION_CONFLICTS,
    FhirClient,
    UnexpectedTaskState,
)
from adapter.errors import Retryable
from adapter.mappings import fhir_codes
from adapter.mappings.fhir import HealthReferral
from adapter.mappings.fhir_codes import CONSENT_SYSTEM, REFERRAL_SYSTEM
from adapter.mappings.fhir_probe import CapacityProbe
from adapter.simulator.fhir_server import FhirServer
from tests.departments.conftest import Provider

MakeReferral = Callable[..., HealthReferral]


def _probe_of(referral: HealthReferral) -> CapacityProbe:
    """The referral's anonymous probe, as the privacy core would shape it."""
    return CapacityProbe(
        referral_key=referral.referral_key,
        service_type=referral.service_type,
        performer_org=referral.performer_org,
        requester_org=referral.requester_org,
        probe={
            "stage": "probe",
            "probe_ref": "5e1f0c9a7d3b2e4f",
            "services": [referral.service_type],
            "urgency": "emergency",
            "district": "PK-KP-PSH",
            "age_band": "10-14",
            "sex": "female",
        },
    )


def _counts(provider: Provider, referral: HealthReferral) -> dict[str, int]:
    key = referral.referral_key
    return {
        "Patient": provider.patients_of(referral.case_code),
        "ServiceRequest": provider.count("ServiceRequest", REFERRAL_SYSTEM, key),
        "Task": provider.count("Task", REFERRAL_SYSTEM, key),
        "Consent": provider.count("Consent", CONSENT_SYSTEM, key),
    }


ONLY_THE_TASK = {"Patient": 0, "ServiceRequest": 0, "Task": 1, "Consent": 0}
ALL_ONCE = {"Patient": 1, "ServiceRequest": 1, "Task": 1, "Consent": 1}


def test_probe_accept_identify_complete_is_one_task(
    fhir_client: FhirClient, provider: Provider, make_referral: MakeReferral
) -> None:
    referral = make_referral()
    key = referral.referral_key
    created = fhir_client.send_probe(_probe_of(referral))
    assert created.created == ("Task",)
    assert fhir_client.send_probe(_probe_of(referral)).created == ()  # a re-send finds it
    probe_task = provider.task(key)
    assert "for" not in probe_task and "focus" not in probe_task
    assert _counts(provider, referral) == ONLY_THE_TASK
    stage_one = fhir_client.get_task_by_referral(key)
    assert stage_one is not None and not stage_one.linked

    provider.update_task(key, "accepted")
    sent, linked = fhir_client.send_identified(referral)

    assert sent.created == ("Patient", "Consent", "ServiceRequest")  # the Task already existed
    assert sent.of("Task").id == created.of("Task").id
    assert _counts(provider, referral) == ALL_ONCE
    task = provider.task(key)
    assert task["status"] == "accepted"  # the hospital's answer, not reset to requested
    assert task["focus"] == {"reference": f"ServiceRequest/{sent.of('ServiceRequest').id}"}
    assert task["for"] == {"reference": f"Patient/{sent.of('Patient').id}"}
    assert task["businessStatus"]["coding"] == [dict(fhir_codes.STAGE_DETAILS_SENT)]
    assert task["code"]["coding"] == [dict(fhir_codes.TASK_FULFILL)]
    assert task["input"] == probe_task["input"]
    assert (linked.status, linked.linked, linked.version) == ("accepted", True, "3")

    # The hospital examines the child and attaches the medico-legal report.
    report = provider.create(
        {
            "resourceType": "DocumentReference",
            "status": "current",
            "content": [
                {"attachment": {"contentType": "application/pdf", "url": "urn:hospital:mlc:7"}}
            ],
        }
    )
    provider.update_task(key, "in-progress")
    provider.update_task(
        key,
        "completed",
        output=[
            {
                "type": {"coding": [{"system": "urn:hospital:outputs", "code": "mlc-report"}]},
                "valueReference": {"reference": f"DocumentReference/{report['id']}"},
            }
        ],
    )
    (update,) = [
        u for u in fhir_client.search_tasks_updated(linked.last_updated) if u.referral_key == key
    ]
    assert (update.status, update.linked, update.is_final) == ("completed", True, True)
    (output,) = update.outputs
    assert (output.type, output.reference) == ("mlc-report", f"DocumentReference/{report['id']}")
    assert _counts(provider, referral) == ALL_ONCE


@pytest.mark.parametrize("answer", [None, "rejected", "requested"])
def test_nothing_identified_leaves_before_the_probe_is_accepted(
    fhir_client: FhirClient, provider: Provider, make_referral: MakeReferral, answer: str | None
) -> None:
    referral = make_referral()
    fhir_client.send_probe(_probe_of(referral))
    if answer == "rejected":
        provider.update_task(
            referral.referral_key,
            "rejected",
            statusReason={"coding": [{"system": "urn:hospital:reasons", "code": "no-capacity"}]},
        )

    with pytest.raises(UnexpectedTaskState) as caught:
        fhir_client.send_identified(referral)

    assert caught.value.status == (answer or "requested")
    assert referral.case_code not in str(caught.value)
    assert _counts(provider, referral) == ONLY_THE_TASK


def test_without_a_probe_nothing_is_sent_unless_asked_for(
    fhir_client: FhirClient, provider: Provider, make_referral: MakeReferral
) -> None:
    referral = make_referral()
    with pytest.raises(UnexpectedTaskState) as caught:
        fhir_client.send_identified(referral)
    assert caught.value.status is None
    assert _counts(provider, referral) == {k: 0 for k in ALL_ONCE}

    # A referral sent without a probe (the engine decided so): the bundle's Task is born linked.
    _sent, linked = fhir_client.send_identified(referral, expected_status=None)
    assert (linked.status, linked.linked, linked.version) == ("requested", True, "1")
    assert _counts(provider, referral) == ALL_ONCE


def test_identified_stage_repeated_after_a_failed_link_finishes_the_link(
    fhir_client: FhirClient, provider: Provider, make_referral: MakeReferral
) -> None:
    referral = make_referral()
    key = referral.referral_key
    fhir_client.send_probe(_probe_of(referral))
    provider.update_task(key, "accepted")
    fhir_client.send_referral(referral)  # the first attempt's bundle; its link never happened
    provider.update_task(key, "in-progress")  # and the hospital moved on

    _sent, linked = fhir_client.send_identified(referral)  # the outbox's retry

    assert (linked.status, linked.linked) == ("in-progress", True)
    assert _counts(provider, referral) == ALL_ONCE


def test_linking_twice_writes_once(
    fhir_client: FhirClient, provider: Provider, make_referral: MakeReferral
) -> None:
    referral = make_referral()
    fhir_client.send_probe(_probe_of(referral))
    provider.update_task(referral.referral_key, "accepted")
    sent, first = fhir_client.send_identified(referral)
    refs = {
        "service_request_ref": f"ServiceRequest/{sent.of('ServiceRequest').id}",
        "patient_ref": f"Patient/{sent.of('Patient').id}",
    }
    again = fhir_client.link_task(referral.referral_key, **refs, expected_status="accepted")
    assert again.version == first.version
    assert provider.task(referral.referral_key)["meta"]["versionId"] == first.version


def test_link_refuses_a_task_in_another_status_without_writing(
    fhir_client: FhirClient, provider: Provider, make_referral: MakeReferral
) -> None:
    referral = make_referral()
    fhir_client.send_probe(_probe_of(referral))
    provider.update_task(referral.referral_key, "rejected")
    with pytest.raises(UnexpectedTaskState):
        fhir_client.link_task(
            referral.referral_key,
            service_request_ref="ServiceRequest/x",
            patient_ref="Patient/y",
            expected_status=("accepted", "in-progress"),
        )
    assert provider.task(referral.referral_key)["meta"]["versionId"] == "2"
    with pytest.raises(UnexpectedTaskState) as caught:
        fhir_client.link_task(
            "ref-never-sent", service_request_ref="ServiceRequest/x", patient_ref="Patient/y"
        )
    assert caught.value.status is None


class _Interleaved(requests.Session):
    """A session that lets the hospital write the Task just before each of our Task PUTs."""

    def __init__(self, before_put: Callable[[], None], times: int) -> None:
        super().__init__()
        self.before_put, self.times, self.puts = before_put, times, 0

    def request(self, method: str | bytes, url: str | bytes, *args: Any, **kw: Any) -> Any:
        if method == "PUT" and "/Task/" in str(url):
            self.puts += 1
            if self.puts <= self.times:
                self.before_put()
        return super().request(method, url, *args, **kw)


@pytest.fixture
def interleaved(fhir_server: FhirServer) -> Iterator[Callable[..., tuple[FhirClient, Any]]]:
    sessions: list[requests.Session] = []

    def make(before_put: Callable[[], None], times: int = 1) -> tuple[FhirClient, Any]:
        session = _Interleaved(before_put, times)
        sessions.append(session)
        return FhirClient(fhir_server.base_url, timeout=(2.0, 10.0), session=session), session

    yield make
    for session in sessions:
        session.close()


def test_a_hospital_write_between_read_and_put_is_kept(
    fhir_client: FhirClient,
    provider: Provider,
    make_referral: MakeReferral,
    interleaved: Callable[..., tuple[FhirClient, Any]],
) -> None:
    referral = make_referral()
    key = referral.referral_key
    fhir_client.send_probe(_probe_of(referral))
    provider.update_task(key, "accepted")
    booked = {"coding": [{"system": "urn:hospital:bs", "code": "appointment-booked"}]}
    # The hospital moves on while we link: our first PUT is on a stale version (412).
    client, session = interleaved(
        lambda: provider.update_task(key, "in-progress", businessStatus=booked)
    )

    _sent, linked = client.send_identified(referral)

    assert session.puts == 2  # the 412, then the re-read and re-applied PUT
    task = provider.task(key)
    assert task["status"] == "in-progress" and task["businessStatus"] == booked
    assert "focus" in task and "for" in task
    assert (linked.status, linked.linked, linked.version) == ("in-progress", True, "4")


def test_a_task_that_never_holds_still_is_retryable(
    fhir_client: FhirClient,
    provider: Provider,
    make_referral: MakeReferral,
    interleaved: Callable[..., tuple[FhirClient, Any]],
) -> None:
    referral = make_referral()
    key = referral.referral_key
    fhir_client.send_probe(_probe_of(referral))
    provider.update_task(key, "accepted")
    client, session = interleaved(lambda: provider.update_task(key, "accepted"), times=99)
    with pytest.raises(Retryable, match="try again later"):
        client.cancel_referral(key, "referral-revoked")
    assert session.puts == MAX_VERSION_CONFLICTS
    assert provider.task(key)["status"] == "accepted"


def test_cancel_is_idempotent_and_later_hospital_updates_are_seen(
    fhir_client: FhirClient, provider: Provider, make_referral: MakeReferral
) -> None:
    referral = make_referral()
    key = referral.referral_key
    fhir_client.send_probe(_probe_of(referral))
    provider.update_task(key, "accepted")

    first = fhir_client.cancel_referral(key, "referral-revoked")
    again = fhir_client.cancel_referral(key, "referral-revoked")

    assert first is not None and again is not None
    assert (first.status, first.status_reason, first.linked) == (
        "cancelled",
        "referral-revoked",
        False,
    )
    assert again.version == first.version  # nothing written the second time
    assert fhir_client.cancel_referral("ref-never-sent", "referral-revoked") is None

    provider.update_task(key, "cancelled", note=[{"text": "acknowledged"}])
    (seen,) = [
        u for u in fhir_client.search_tasks_updated(first.last_updated) if u.referral_key == key
    ]
    assert (seen.status, seen.note, seen.version) == ("cancelled", ("acknowledged",), "4")


def test_cancel_never_overrides_a_completed_examination(
    fhir_client: FhirClient, provider: Provider, make_referral: MakeReferral
) -> None:
    referral = make_referral()
    fhir_client.send_referral(referral)
    provider.update_task(referral.referral_key, "completed")
    update = fhir_client.cancel_referral(referral.referral_key, "referral-revoked")
    assert update is not None and (update.status, update.version) == ("completed", "2")


def test_withdrawn_consent_cancels_the_task_and_deactivates_the_consent(
    fhir_client: FhirClient, provider: Provider, make_referral: MakeReferral
) -> None:
    referral = make_referral()
    key = referral.referral_key
    fhir_client.send_probe(_probe_of(referral))
    provider.update_task(key, "accepted")
    sent, _linked = fhir_client.send_identified(referral)

    withdrawal = fhir_client.withdraw_consent(key)
    repeat = fhir_client.withdraw_consent(key)

    assert withdrawal.task is not None
    assert (withdrawal.task.status, withdrawal.task.status_reason) == (
        "cancelled",
        "consent-withdrawn",
    )
    assert (withdrawal.consent_id, withdrawal.consent_status) == (
        sent.of("Consent").id,
        "inactive",
    )
    (consent,) = provider.search("Consent", identifier=f"{CONSENT_SYSTEM}|{key}")
    assert consent["status"] == "inactive" and consent["meta"]["versionId"] == "2"
    assert repeat.task is not None and repeat.task.version == withdrawal.task.version
    assert _counts(provider, referral) == ALL_ONCE


def test_withdrawn_consent_after_a_probe_only_cancels_the_task(
    fhir_client: FhirClient, provider: Provider, make_referral: MakeReferral
) -> None:
    referral = make_referral()
    fhir_client.send_probe(_probe_of(referral))
    withdrawal = fhir_client.withdraw_consent(referral.referral_key)
    assert withdrawal.task is not None and withdrawal.task.status == "cancelled"
    assert (withdrawal.consent_id, withdrawal.consent_status) == (None, None)
    assert _counts(provider, referral) == ONLY_THE_TASK
