"""What a referral costs at the FHIR server, counted request by request (sekmet on 127.0.0.1).

What a user cares about: a referral sent without a probe is one POST (the transaction answers
with the Task it created, already linked, so nothing is read back); after a probe the Task is
checked, the bundle sent, and the Task linked on the version the transaction answered with (no
second read); a re-send writes nothing; and a server that leaves the resources out of its
answer still gets the Task linked, by reading it.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from typing import Any
from urllib.parse import urlsplit

import pytest
import requests
from requests.adapters import HTTPAdapter

from adapter.departments import FhirClient
from adapter.departments.health import HealthConnector
from adapter.mappings.fhir import HealthReferral, referral_bundle_json
from adapter.mappings.fhir_codes import REFERRAL_SYSTEM
from adapter.mappings.vocabulary import REFERRAL
from adapter.simulator.fhir_server import FhirServer
from tests.departments.conftest import Provider
from tests.departments.test_fhir_two_stage import _probe_of

MakeReferral = Callable[..., HealthReferral]


class _Counting(HTTPAdapter):
    """Records every request that leaves the session as ``METHOD /path-after-base`` (the base
    URL's own path is the transaction's ``POST /``). ``strip`` drops ``entry.resource`` from a
    transaction's answer: a server that ignores ``Prefer: return=representation``."""

    def __init__(self, base_path: str, *, strip: bool = False) -> None:
        super().__init__()
        self.base_path, self.strip = base_path, strip
        self.sent: list[str] = []

    def send(self, request: requests.PreparedRequest, *args: Any, **kwargs: Any) -> Any:
        path = urlsplit(str(request.url)).path.removeprefix(self.base_path) or "/"
        self.sent.append(f"{request.method} {path}")
        response = super().send(request, *args, **kwargs)
        if self.strip and request.method == "POST":
            answer = json.loads(response.content)
            for entry in answer.get("entry") or []:
                entry.pop("resource", None)
            response._content = json.dumps(answer).encode()
        return response


@pytest.fixture
def counted(fhir_server: FhirServer) -> Iterator[Callable[..., tuple[FhirClient, _Counting]]]:
    sessions: list[requests.Session] = []

    def make(*, strip: bool = False) -> tuple[FhirClient, _Counting]:
        adapter = _Counting(urlsplit(fhir_server.base_url).path, strip=strip)
        session = requests.Session()
        session.mount("http://", adapter)
        sessions.append(session)
        return FhirClient(fhir_server.base_url, timeout=(2.0, 10.0), session=session), adapter

    yield make
    for session in sessions:
        session.close()


def _stored(referral: HealthReferral, *, after_probe: bool) -> dict[str, Any]:
    """The referral document as the outbox hands it back (JSON text, read again)."""
    document = {
        "referral_key": referral.referral_key,
        "after_probe": after_probe,
        "bundle": referral_bundle_json(referral),
    }
    loaded: dict[str, Any] = json.loads(json.dumps(document))
    return loaded


def test_a_referral_without_a_probe_is_one_post(
    counted: Callable[..., tuple[FhirClient, _Counting]],
    provider: Provider,
    make_referral: MakeReferral,
) -> None:
    referral = make_referral()
    client, adapter = counted()
    delivery = HealthConnector("health", client).deliver(
        REFERRAL, _stored(referral, after_probe=False)
    )

    assert adapter.sent == ["POST /"]
    task = provider.task(referral.referral_key)
    assert delivery.external_ref == f"Task/{task['id']}"
    assert "focus" in task and "for" in task and task["meta"]["versionId"] == "1"

    # The outbox's re-send (at least once): the conditional creates find everything, the
    # answered Task is linked already, so again one POST and nothing written.
    HealthConnector("health", client).deliver(REFERRAL, _stored(referral, after_probe=False))
    assert adapter.sent == ["POST /", "POST /"]
    assert provider.task(referral.referral_key)["meta"]["versionId"] == "1"


def test_after_a_probe_the_answered_task_is_linked_without_reading_it_again(
    counted: Callable[..., tuple[FhirClient, _Counting]],
    fhir_client: FhirClient,
    provider: Provider,
    make_referral: MakeReferral,
) -> None:
    referral = make_referral()
    fhir_client.send_probe(_probe_of(referral))
    provider.update_task(referral.referral_key, "accepted")
    client, adapter = counted()

    sent, linked = client.send_identified(referral)

    # The status check that guards identified data, the bundle, the link: no GET after POST.
    assert adapter.sent == ["GET /Task", "POST /", "PUT /Task/" + str(sent.of("Task").id)]
    task = provider.task(referral.referral_key)
    assert task["status"] == "accepted"
    assert task["focus"] == {"reference": f"ServiceRequest/{sent.of('ServiceRequest').id}"}
    assert (linked.linked, linked.version) == (True, task["meta"]["versionId"])


def test_a_server_that_leaves_the_resources_out_still_gets_the_task_linked(
    counted: Callable[..., tuple[FhirClient, _Counting]],
    fhir_client: FhirClient,
    provider: Provider,
    make_referral: MakeReferral,
) -> None:
    referral = make_referral()
    fhir_client.send_probe(_probe_of(referral))
    provider.update_task(referral.referral_key, "accepted")
    client, adapter = counted(strip=True)

    sent, linked = client.send_identified(referral)

    assert sent.of("Task").resource is None
    assert adapter.sent[:3] == ["GET /Task", "POST /", "GET /Task"]  # read, since not answered
    assert adapter.sent[3].startswith("PUT /Task/")
    task = provider.task(referral.referral_key)
    assert "focus" in task and "for" in task
    assert linked.linked and linked.version == task["meta"]["versionId"]


def test_an_answered_task_of_another_referral_is_not_taken_for_ours(
    counted: Callable[..., tuple[FhirClient, _Counting]],
    provider: Provider,
    make_referral: MakeReferral,
) -> None:
    """The answered Task stands in for a read only when it carries this referral's key."""
    referral = make_referral()
    client, adapter = counted()
    sent = client.send_referral(referral)
    answered = dict(sent.of("Task").resource or {})
    answered["identifier"] = [{"system": REFERRAL_SYSTEM, "value": "ref-someone-else"}]

    linked = client.link_task(
        referral.referral_key,
        service_request_ref=f"ServiceRequest/{sent.of('ServiceRequest').id}",
        patient_ref=f"Patient/{sent.of('Patient').id}",
        answered=answered,
    )

    assert adapter.sent == ["POST /", "GET /Task"]  # read instead; it is linked: no PUT
    assert linked.referral_key == referral.referral_key
    assert provider.task(referral.referral_key)["meta"]["versionId"] == "1"
