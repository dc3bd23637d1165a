"""A stored bundle is sent as it was stored: validated once, at mapping, never again on send.

What a user cares about: the department receives exactly the bytes the validated FHIR model
would have given (the mapping's dict is valid R4B), although the send no longer builds a model
(that was 12-17% of a sync's CPU, issue 15); and an outbox row that is not a transaction at
all still fails once, in one clear line, instead of reaching the department.

The transport is the seam: an ``HTTPAdapter`` that records the body and answers like a FHIR
server, so hypothesis can try hundreds of referrals without a network.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
import requests
from fhir.resources.R4B.bundle import Bundle
from hypothesis import given, settings
from requests.adapters import HTTPAdapter

from adapter.departments import FhirClient
from adapter.errors import Fatal
from adapter.mappings.fhir import (
    HealthReferral,
    content_update_bundle_json,
    referral_bundle_json,
    to_json,
)
from tests.mappings.test_fhir_plain import _REFERRALS

BASE = "https://fhir.example.org/fhir"


class _Recording(HTTPAdapter):
    """Keeps each request body and answers every entry ``201 Created``."""

    def __init__(self) -> None:
        super().__init__()
        self.bodies: list[bytes] = []

    def send(self, request: requests.PreparedRequest, *args: Any, **kwargs: Any) -> Any:
        body = request.body if isinstance(request.body, bytes) else str(request.body).encode()
        self.bodies.append(body)
        sent = json.loads(body)
        answer = {
            "resourceType": "Bundle",
            "type": "transaction-response",
            "entry": [
                {
                    "response": {
                        "status": "201 Created",
                        "location": f"{e['resource']['resourceType']}/{n}/_history/1",
                    }
                }
                for n, e in enumerate(sent["entry"])
            ],
        }
        response = requests.Response()
        response.status_code = 200
        response.headers["Content-Type"] = "application/fhir+json"
        response._content = json.dumps(answer).encode()
        response.request = request
        response.url = str(request.url)
        return response


def _client() -> tuple[FhirClient, _Recording]:
    recording = _Recording()
    session = requests.Session()
    session.mount("https://", recording)
    return FhirClient(BASE, session=session), recording


def _as_stored(document: dict[str, Any]) -> dict[str, Any]:
    """What the outbox hands the connector: the body as the sync stores it (adapter/jobs/
    sync.py: compact json.dumps), read back with json.loads."""
    stored: dict[str, Any] = json.loads(
        json.dumps(document, separators=(",", ":"), default=str).encode()
    )
    return stored


@settings(max_examples=120, deadline=None)
@given(referral=_REFERRALS)
def test_the_bytes_sent_are_the_stored_document_and_it_is_valid_r4b(
    referral: HealthReferral,
) -> None:
    client, recording = _client()
    for bundle in (referral_bundle_json(referral), content_update_bundle_json(referral)):
        stored = _as_stored({"referral_key": referral.referral_key, "bundle": bundle})["bundle"]

        result = client.send_transaction(stored)

        sent = recording.bodies[-1]
        assert sent == json.dumps(stored, ensure_ascii=False, separators=(",", ":")).encode()
        # Validated once, here in the test: the mapping's dict is R4B, and the validated
        # model's own serialisation is byte for byte what left.
        assert to_json(Bundle.model_validate(bundle)).encode() == sent
        assert len(result.entries) == len(bundle["entry"])


def test_stored_json_text_is_sent_unchanged() -> None:
    client, recording = _client()
    text = json.dumps(
        {
            "resourceType": "Bundle",
            "type": "transaction",
            "entry": [
                {
                    "resource": {"resourceType": "Basic", "code": {"text": "ü"}},
                    "request": {"method": "POST", "url": "Basic"},
                }
            ],
        },
        indent=1,
    )
    client.send_transaction(text)
    assert recording.bodies == [text.encode()]


@pytest.mark.parametrize(
    "stored",
    [
        '{"resourceType": "Bundle", "type": "transaction", "colour": 1}',
        '{"resourceType": "Bundle", "type": "transaction", "entry": [',
        {"resourceType": "Bundle", "type": "batch", "entry": []},
        {"resourceType": "Patient", "type": "transaction", "entry": []},
        {"resourceType": "Bundle", "type": "transaction", "entry": {"request": {}}},
        {"resourceType": "Bundle", "type": "transaction", "entry": [{"resource": {}}]},
        "[]",
    ],
)
def test_a_corrupt_outbox_row_is_fatal_in_one_line_and_never_sent(stored: Any) -> None:
    client, recording = _client()
    with pytest.raises(Fatal) as caught:
        client.send_transaction(stored)
    message = str(caught.value)
    assert "\n" not in message and "resourceType, type, entry[].request" in message
    assert recording.bodies == []
