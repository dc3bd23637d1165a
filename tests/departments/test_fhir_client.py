"""The health connector against a real FHIR server (sekmet on 127.0.0.1).

What a user cares about: a referral reaches the hospital exactly once however often it is sent,
an edited case updates the hospital's copy, and the hospital's answers come back, in order, all
of them, page after page.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from datetime import timedelta
from typing import Any

import pytest

from adapter.departments import FhirClient, Rejected
from adapter.errors import Fatal, Retryable
from adapter.mappings.fhir import HealthReferral, build_referral_bundle, to_json
from adapter.mappings.fhir_codes import CONSENT_SYSTEM, REFERRAL_SYSTEM
from adapter.mappings.fhir_task import TaskUpdate
from adapter.simulator.fhir_server import start_fhir_server
from tests.departments.conftest import Provider

MakeReferral = Callable[..., HealthReferral]
NO_OVERLAP = timedelta(0)


def _counts(provider: Provider, referral: HealthReferral) -> dict[str, int]:
    key = referral.referral_key
    return {
        "Patient": provider.patients_of(referral.case_code),
        "ServiceRequest": provider.count("ServiceRequest", REFERRAL_SYSTEM, key),
        "Task": provider.count("Task", REFERRAL_SYSTEM, key),
        "Consent": provider.count("Consent", CONSENT_SYSTEM, key),
    }


def test_sending_a_referral_twice_creates_each_resource_once(
    fhir_client: FhirClient, provider: Provider, make_referral: MakeReferral
) -> None:
    referral = make_referral()
    first = fhir_client.send_referral(referral)
    again = fhir_client.send_referral(referral)

    assert first.created == ("Patient", "Consent", "ServiceRequest", "Task")
    assert again.created == ()
    assert [e.id for e in again.entries] == [e.id for e in first.entries]
    assert _counts(provider, referral) == {
        "Patient": 1,
        "ServiceRequest": 1,
        "Task": 1,
        "Consent": 1,
    }


def test_the_stored_referral_is_linked_and_pseudonymous(
    fhir_client: FhirClient, provider: Provider, make_referral: MakeReferral
) -> None:
    referral = make_referral()
    result = fhir_client.send_referral(referral)
    task = provider.task(referral.referral_key)
    (request,) = provider.search(
        "ServiceRequest", identifier=f"{REFERRAL_SYSTEM}|{referral.referral_key}"
    )
    (patient,) = provider.search("Patient", _id=result.of("Patient").id or "")

    assert task["focus"]["reference"] == f"ServiceRequest/{result.of('ServiceRequest').id}"
    assert task["for"]["reference"] == request["subject"]["reference"] == f"Patient/{patient['id']}"
    assert request["supportingInfo"] == [{"reference": f"Consent/{result.of('Consent').id}"}]
    assert set(patient) == {
        "resourceType",
        "id",
        "meta",
        "identifier",
        "gender",
        "birthDate",
        "address",
    }
    assert patient["birthDate"] == "2014"


def test_two_referrals_of_one_case_share_the_patient(
    fhir_client: FhirClient, provider: Provider, make_referral: MakeReferral
) -> None:
    medical = make_referral()
    mhpss = make_referral(case_code=medical.case_code, service_type="psychosocial_service")
    one = fhir_client.send_referral(medical)
    two = fhir_client.send_referral(mhpss)

    assert one.of("Patient").id == two.of("Patient").id
    assert provider.patients_of(medical.case_code) == 1
    requests_of_case = provider.search("ServiceRequest", subject=f"Patient/{one.of('Patient').id}")
    assert len(requests_of_case) == 2


def test_a_content_change_updates_the_copy_and_keeps_the_task(
    fhir_client: FhirClient, provider: Provider, make_referral: MakeReferral
) -> None:
    referral = make_referral()
    sent = fhir_client.send_referral(referral)
    provider.update_task(referral.referral_key, "accepted")
    edited = replace(
        referral, urgency="1_hour", demographics={**referral.demographics, "district": "Mardan"}
    )

    update = fhir_client.update_content(edited)

    assert update.created == ()
    assert [e.id for e in update.entries] == [e.id for e in sent.entries]
    assert _counts(provider, referral) == {
        "Patient": 1,
        "ServiceRequest": 1,
        "Task": 1,
        "Consent": 1,
    }
    (request,) = provider.search(
        "ServiceRequest", identifier=f"{REFERRAL_SYSTEM}|{referral.referral_key}"
    )
    (patient,) = provider.search("Patient", _id=sent.of("Patient").id or "")
    assert request["priority"] == "stat"
    assert patient["address"] == [{"district": "Mardan"}]
    assert provider.task(referral.referral_key)["status"] == "accepted"  # the hospital's, untouched


def test_a_content_update_that_overtakes_the_referral_still_creates_it(
    fhir_client: FhirClient, provider: Provider, make_referral: MakeReferral
) -> None:
    referral = make_referral()
    fhir_client.update_content(referral)
    fhir_client.send_referral(referral)
    assert _counts(provider, referral) == {
        "Patient": 1,
        "ServiceRequest": 1,
        "Task": 1,
        "Consent": 1,
    }


def test_get_task_by_referral(
    fhir_client: FhirClient, provider: Provider, make_referral: MakeReferral
) -> None:
    referral = make_referral()
    assert fhir_client.get_task_by_referral(referral.referral_key) is None
    fhir_client.send_referral(referral)
    provider.update_task(
        referral.referral_key,
        "rejected",
        statusReason={"coding": [{"system": "urn:hospital:reasons", "code": "no-capacity"}]},
    )
    update = fhir_client.get_task_by_referral(referral.referral_key)
    assert update is not None
    assert (update.referral_key, update.status, update.status_reason, update.version) == (
        referral.referral_key,
        "rejected",
        "no-capacity",
        "2",
    )
    assert update.is_final


def _apply(state: dict[str, TaskUpdate], updates: list[TaskUpdate]) -> set[str]:
    """Apply idempotently, as the adapter must; returns the referral keys that changed."""
    changed = set()
    for update in updates:
        known = state.get(update.referral_key)
        if known is None or int(update.version or 0) > int(known.version or 0):
            state[update.referral_key] = update
            changed.add(update.referral_key)
    return changed


def test_task_changes_are_picked_up_incrementally_across_pages(
    fhir_client: FhirClient, provider: Provider, make_referral: MakeReferral
) -> None:
    referrals = [make_referral() for _ in range(5)]
    keys = [r.referral_key for r in referrals]
    for referral in referrals:
        fhir_client.send_referral(referral)
    first = fhir_client.get_task_by_referral(keys[0])
    assert first is not None and first.last_updated is not None
    state: dict[str, TaskUpdate] = {}

    # Poll 1: five new Tasks, two per page (three pages).
    polled = list(fhir_client.search_tasks_updated(first.last_updated, count=2, overlap=NO_OVERLAP))
    assert [u.referral_key for u in polled] == keys
    assert _apply(state, polled) == set(keys)
    watermark = max(u.last_updated for u in polled if u.last_updated)

    # The hospital answers four of them.
    report = provider.create(
        {
            "resourceType": "DocumentReference",
            "status": "current",
            "securityLabel": [
                {
                    "coding": [
                        {
                            "system": "http://terminology.hl7.org/CodeSystem/v3-Confidentiality",
                            "code": "V",
                        }
                    ]
                }
            ],
            "content": [
                {"attachment": {"contentType": "application/pdf", "url": "urn:hospital:mlc:1"}}
            ],
        }
    )
    provider.update_task(keys[0], "accepted", businessStatus={"text": "appointment booked"})
    provider.update_task(keys[1], "rejected", statusReason={"text": "no female doctor on duty"})
    provider.update_task(keys[2], "in-progress")
    provider.update_task(
        keys[3],
        "completed",
        output=[
            {
                "type": {"coding": [{"system": "urn:hospital:outputs", "code": "mlc-report"}]},
                "valueReference": {"reference": f"DocumentReference/{report['id']}"},
            }
        ],
    )

    # Poll 2, from the watermark: exactly the four changes (the boundary Task comes again, and
    # applying it again changes nothing).
    polled = list(fhir_client.search_tasks_updated(watermark, count=2, overlap=NO_OVERLAP))
    assert [u.referral_key for u in polled if u.referral_key in keys[:4]] == keys[:4]
    assert _apply(state, polled) == set(keys[:4])
    assert [state[k].status for k in keys] == [
        "accepted",
        "rejected",
        "in-progress",
        "completed",
        "requested",
    ]
    assert state[keys[0]].business_status == "appointment booked"
    assert state[keys[1]].status_reason == "no female doctor on duty"
    (output,) = state[keys[3]].outputs
    assert (output.type, output.reference) == ("mlc-report", f"DocumentReference/{report['id']}")

    # Poll 3: one more change, and only that one is new.
    watermark = max(u.last_updated for u in state.values() if u.last_updated)
    provider.update_task(keys[2], "completed")
    polled = list(fhir_client.search_tasks_updated(watermark, count=2, overlap=NO_OVERLAP))
    assert {u.referral_key for u in polled} <= {keys[2], keys[3]}  # the change, the boundary
    assert _apply(state, polled) == {keys[2]}
    # With the default overlap the same poll repeats recent changes; applying them is harmless.
    again = [
        u for u in fhir_client.search_tasks_updated(watermark, count=2) if u.referral_key in keys
    ]
    assert {u.referral_key for u in again} >= {keys[2]}
    assert _apply(state, again) == set()


def test_a_task_updated_while_paging_does_not_hide_another(
    fhir_client: FhirClient, provider: Provider, make_referral: MakeReferral
) -> None:
    # Offset paging would skip keys[2] here: keys[0] moves to the end after page one, shifting
    # every later Task back by one (why search_tasks_updated re-anchors on _lastUpdated).
    referrals = [make_referral() for _ in range(5)]
    keys = [r.referral_key for r in referrals]
    for referral in referrals:
        fhir_client.send_referral(referral)
    first = fhir_client.get_task_by_referral(keys[0])
    assert first is not None
    seen: list[str] = []
    for update in fhir_client.search_tasks_updated(first.last_updated, count=2, overlap=NO_OVERLAP):
        seen.append(update.referral_key)
        if len(seen) == 2:
            provider.update_task(keys[0], "accepted")
    assert set(keys) <= set(seen)


def test_a_bundle_the_server_refuses_is_fatal_and_redacted(
    fhir_client: FhirClient, provider: Provider, make_referral: MakeReferral
) -> None:
    referral = make_referral()
    bundle: dict[str, Any] = build_referral_bundle(referral).model_dump(mode="json")
    # The Task points at a ServiceRequest that is not in the bundle: the server must refuse all.
    bundle["entry"][3]["resource"]["focus"]["reference"] = (
        "urn:uuid:00000000-0000-4000-8000-000000000000"
    )

    with pytest.raises(Rejected) as caught:
        fhir_client.send_transaction(bundle)

    assert isinstance(caught.value, Fatal)
    assert (caught.value.status, caught.value.resource, caught.value.reasons) == (
        400,
        "Bundle",
        ("invalid",),
    )
    assert "urn:uuid" not in str(caught.value) and referral.case_code not in str(caught.value)
    assert _counts(provider, referral) == {
        "Patient": 0,
        "ServiceRequest": 0,
        "Task": 0,
        "Consent": 0,
    }


def test_a_stored_bundle_that_is_not_fhir_is_fatal(fhir_client: FhirClient) -> None:
    with pytest.raises(Fatal):
        fhir_client.send_transaction(
            '{"resourceType": "Bundle", "type": "transaction", "colour": 1}'
        )


def test_the_json_text_of_a_bundle_sends_like_the_model(
    fhir_client: FhirClient, provider: Provider, make_referral: MakeReferral
) -> None:
    referral = make_referral()
    result = fhir_client.send_transaction(to_json(build_referral_bundle(referral)))
    assert result.created == ("Patient", "Consent", "ServiceRequest", "Task")


def test_a_stopped_server_is_retryable(tmp_path: Any, make_referral: MakeReferral) -> None:
    server = start_fhir_server(tmp_path)
    client = FhirClient(server.base_url, timeout=(1.0, 5.0))
    try:
        client.send_referral(make_referral())
        server.stop()
        with pytest.raises(Retryable) as caught:
            client.send_referral(make_referral())
        # The server tried, so the operator knows what to check; never a path or query.
        origin = server.base_url.split("/", 3)
        assert f"refused (nothing listens on that port) at {'/'.join(origin[:3])};" in str(
            caught.value
        )
        assert "?" not in str(caught.value)
        with pytest.raises(Retryable):
            list(client.search_tasks_updated(None))
    finally:
        client.close()
        server.cleanup()


@pytest.fixture(scope="module")
def secured_server(tmp_path_factory: pytest.TempPathFactory) -> Any:
    server = start_fhir_server(
        tmp_path_factory.mktemp("fhir-auth"),
        server_auth={
            "types": ["bearer", "basic"],
            "tokens": ["s3cret-token"],
            "users": {"adapter": "s3cret-pass"},
        },
    )
    yield server
    server.cleanup()


@pytest.mark.parametrize(
    "auth", [{"bearer_token": "s3cret-token"}, {"basic_auth": ("adapter", "s3cret-pass")}]
)
def test_bearer_and_basic_auth(secured_server: Any, make_referral: MakeReferral, auth: Any) -> None:
    with FhirClient(secured_server.base_url, **auth) as client:
        assert client.send_referral(make_referral()).created


def test_wrong_credentials_are_fatal_without_the_secret(
    secured_server: Any, make_referral: MakeReferral
) -> None:
    with FhirClient(secured_server.base_url, bearer_token="wrong-token") as client:
        with pytest.raises(Rejected) as caught:
            client.send_referral(make_referral())
    assert caught.value.status == 401
    assert "wrong-token" not in str(caught.value) and "wrong-token" not in repr(client)
