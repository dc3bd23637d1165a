"""The FHIR server features the health connector relies on, checked on sekmet with raw HTTP.

When sekmet (or a department's real server) changes, these say *which* behaviour broke before the
connector's own tests fail in a puzzling way (departments.md §1-§2).
"""

from __future__ import annotations

import uuid
from typing import Any

import requests

from adapter.simulator.fhir_server import FhirServer

JSON = {"Accept": "application/fhir+json", "Content-Type": "application/fhir+json"}
SYSTEM = "urn:cpims-adapter:test:conformance"


def _post(server: FhirServer, body: dict[str, Any], path: str = "") -> requests.Response:
    return requests.post(f"{server.base_url}{path}", json=body, headers=JSON, timeout=10)


def _search(server: FhirServer, rtype: str, **params: str) -> dict[str, Any]:
    answer = requests.get(f"{server.base_url}/{rtype}", params=params, headers=JSON, timeout=10)
    assert answer.status_code == 200, answer.text
    return dict(answer.json())


def _basic(value: str) -> dict[str, Any]:
    return {
        "resourceType": "Basic",
        "identifier": [{"system": SYSTEM, "value": value}],
        "code": {"text": "conformance"},
    }


def _transaction(value: str) -> dict[str, Any]:
    patient, task = f"urn:uuid:{uuid.uuid4()}", f"urn:uuid:{uuid.uuid4()}"
    query = f"identifier={SYSTEM}|{value}"
    return {
        "resourceType": "Bundle",
        "type": "transaction",
        "entry": [
            {
                "fullUrl": patient,
                "resource": {
                    "resourceType": "Patient",
                    "identifier": [{"system": SYSTEM, "value": value}],
                },
                "request": {"method": "POST", "url": "Patient", "ifNoneExist": query},
            },
            {
                "fullUrl": task,
                "resource": {
                    "resourceType": "Task",
                    "status": "requested",
                    "intent": "order",
                    "identifier": [{"system": SYSTEM, "value": value}],
                    "for": {"reference": patient},
                },
                "request": {"method": "POST", "url": "Task", "ifNoneExist": query},
            },
        ],
    }


def test_metadata_declares_r4_transactions_and_conditional_writes(fhir_server: FhirServer) -> None:
    answer = requests.get(f"{fhir_server.base_url}/metadata", headers=JSON, timeout=10)
    statement = answer.json()
    assert statement["fhirVersion"] == "4.0.1"
    rest = statement["rest"][0]
    assert {"code": "transaction"} in rest["interaction"]
    resources = {r["type"]: r for r in rest["resource"]}
    for rtype in ("Patient", "ServiceRequest", "Task", "Consent"):
        assert resources[rtype]["conditionalCreate"] is True
        assert resources[rtype]["conditionalUpdate"] is True


def test_transaction_resolves_urn_uuid_references(fhir_server: FhirServer) -> None:
    value = uuid.uuid4().hex
    answer = _post(fhir_server, _transaction(value))
    assert answer.status_code == 200
    bundle = answer.json()
    assert bundle["type"] == "transaction-response"
    assert [e["response"]["status"] for e in bundle["entry"]] == ["201 Created", "201 Created"]
    patient_id = bundle["entry"][0]["resource"]["id"]
    (task,) = [
        e["resource"] for e in _search(fhir_server, "Task", identifier=f"{SYSTEM}|{value}")["entry"]
    ]
    assert task["for"]["reference"] == f"Patient/{patient_id}"


def test_if_none_exist_in_a_transaction_finds_instead_of_creating(fhir_server: FhirServer) -> None:
    value = uuid.uuid4().hex
    first = _post(fhir_server, _transaction(value)).json()
    again = _post(fhir_server, _transaction(value)).json()
    assert [e["response"]["status"] for e in again["entry"]] == ["200 OK", "200 OK"]
    assert [e["resource"]["id"] for e in again["entry"]] == [
        e["resource"]["id"] for e in first["entry"]
    ]
    assert _search(fhir_server, "Patient", identifier=f"{SYSTEM}|{value}")["total"] == 1


def test_conditional_update_by_identifier_replaces_the_one_match(fhir_server: FhirServer) -> None:
    value = uuid.uuid4().hex
    url = f"{fhir_server.base_url}/Basic?identifier={SYSTEM}|{value}"
    created = requests.put(url, json=_basic(value), headers=JSON, timeout=10)
    assert created.status_code == 201
    updated = requests.put(
        url, json={**_basic(value), "code": {"text": "changed"}}, headers=JSON, timeout=10
    )
    assert updated.status_code == 200
    assert updated.json()["id"] == created.json()["id"]
    assert updated.json()["meta"]["versionId"] == "2"


def test_a_failing_entry_rolls_back_the_whole_transaction(fhir_server: FhirServer) -> None:
    value = uuid.uuid4().hex
    bundle = _transaction(value)
    bundle["entry"][1]["resource"]["focus"] = {"reference": f"urn:uuid:{uuid.uuid4()}"}  # dangling
    answer = _post(fhir_server, bundle)
    assert answer.status_code == 400
    assert answer.json()["resourceType"] == "OperationOutcome"
    assert _search(fhir_server, "Patient", identifier=f"{SYSTEM}|{value}")["total"] == 0


def test_system_only_token_search(fhir_server: FhirServer) -> None:
    system = f"urn:cpims-adapter:test:{uuid.uuid4().hex}"
    for value in ("a", "b"):
        _post(
            fhir_server,
            {**_basic(value), "identifier": [{"system": system, "value": value}]},
            "/Basic",
        )
    assert _search(fhir_server, "Basic", identifier=f"{system}|")["total"] == 2


def test_last_updated_filter_sort_and_next_links(fhir_server: FhirServer) -> None:
    system = f"urn:cpims-adapter:test:{uuid.uuid4().hex}"
    stamps = []
    for value in "abcde":
        made = _post(
            fhir_server,
            {**_basic(value), "identifier": [{"system": system, "value": value}]},
            "/Basic",
        ).json()
        stamps.append(made["meta"]["lastUpdated"])
    params = {
        "identifier": f"{system}|",
        "_lastUpdated": f"ge{stamps[1]}",
        "_sort": "_lastUpdated",
        "_count": "2",
    }
    page = _search(fhir_server, "Basic", **params)
    seen: list[str] = []
    while True:
        seen += [e["resource"]["meta"]["lastUpdated"] for e in page.get("entry", [])]
        nxt = [link["url"] for link in page["link"] if link["relation"] == "next"]
        if not nxt:
            break
        # next links must point at the server's configured base URL (our settings.yaml).
        assert nxt[0].startswith(f"{fhir_server.base_url}/Basic?")
        page = requests.get(nxt[0], headers=JSON, timeout=10).json()
    assert seen == stamps[1:]  # ge is inclusive, ascending, and paging lost nothing
