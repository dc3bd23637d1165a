"""A real FHIR server (sekmet, departments.md §2) for the health connector's tests.

One server per session: starting one costs about a second. Tests share its database, so each one
makes its own referrals with fresh keys (``make_referral``) and asserts only about those.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from dataclasses import replace
from datetime import UTC, date, datetime
from typing import Any

import pytest
import requests

from adapter.departments import FhirClient
from adapter.mappings.fhir import HealthReferral, OrgRef, case_code_system
from adapter.mappings.fhir_codes import REFERRAL_SYSTEM
from tests.support.fhir_server import FhirServer, start_fhir_server

FHIR_JSON = "application/fhir+json"


@pytest.fixture(scope="session")
def fhir_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FhirServer]:
    server = start_fhir_server(tmp_path_factory.mktemp("fhir"))
    try:
        yield server
    finally:
        server.cleanup()


@pytest.fixture
def fhir_client(fhir_server: FhirServer) -> Iterator[FhirClient]:
    with FhirClient(fhir_server.base_url, timeout=(2.0, 10.0)) as client:
        yield client


def new_case_code() -> str:
    return f"cp1.health.1.{uuid.uuid4().hex}"


@pytest.fixture
def make_referral() -> Callable[..., HealthReferral]:
    """A valid referral with a fresh referral key (and a fresh case unless one is given)."""

    def make(**changes: Any) -> HealthReferral:
        base = HealthReferral(
            case_code=new_case_code(),
            referral_key=f"ref-{uuid.uuid4().hex}",
            service_type="health_medical_service",
            requester_org=OrgRef(system="urn:cpims-adapter:org", value="cpu-peshawar"),
            performer_org=OrgRef(reference="Organization/dhq-peshawar"),
            consent_basis="consent",
            consent_date=date(2026, 1, 5),
            urgency="1_day",
            demographics={"birth_year": 2014, "sex": "female", "district": "Peshawar"},
            authored_on=datetime(2026, 1, 6, 9, 30, tzinfo=UTC),
        )
        return replace(base, **changes)

    return make


class Provider:
    """The hospital's side: reads and updates Tasks directly, as its own system would."""

    def __init__(self, base_url: str) -> None:
        self.base_url = base_url
        self.http = requests.Session()
        self.http.headers.update({"Accept": FHIR_JSON, "Content-Type": FHIR_JSON})

    def search(self, resource_type: str, **params: str) -> list[dict[str, Any]]:
        answer = self.http.get(f"{self.base_url}/{resource_type}", params=params, timeout=10)
        answer.raise_for_status()
        return [e["resource"] for e in answer.json().get("entry", [])]

    def count(self, resource_type: str, system: str, value: str) -> int:
        return len(self.search(resource_type, identifier=f"{system}|{value}", _count="10"))

    def patients_of(self, case_code: str) -> int:
        return self.count("Patient", case_code_system(), case_code)

    def task(self, referral_key: str) -> dict[str, Any]:
        (task,) = self.search("Task", identifier=f"{REFERRAL_SYSTEM}|{referral_key}")
        return task

    def update_task(self, referral_key: str, status: str, **elements: Any) -> dict[str, Any]:
        """PUT the Task with a new status (and e.g. statusReason, output), If-Match its version."""
        task = self.task(referral_key)
        task = {**task, "status": status, **elements}
        answer = self.http.put(
            f"{self.base_url}/Task/{task['id']}",
            json=task,
            headers={"If-Match": f'W/"{task["meta"]["versionId"]}"'},
            timeout=10,
        )
        answer.raise_for_status()
        return dict(answer.json())

    def create(self, resource: dict[str, Any]) -> dict[str, Any]:
        answer = self.http.post(
            f"{self.base_url}/{resource['resourceType']}", json=resource, timeout=10
        )
        answer.raise_for_status()
        return dict(answer.json())


@pytest.fixture
def provider(fhir_server: FhirServer) -> Iterator[Provider]:
    hospital = Provider(fhir_server.base_url)
    try:
        yield hospital
    finally:
        hospital.http.close()
