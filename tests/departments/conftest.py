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

from adapter.departments import FhirClient
from adapter.mappings.fhir import HealthReferral, OrgRef
from adapter.simulator.fhir_server import FhirServer, start_fhir_server
from adapter.simulator.hospital import Hospital

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


# The hospital's side: reads and updates Tasks directly, as its own system would.
Provider = Hospital


@pytest.fixture
def provider(fhir_server: FhirServer) -> Iterator[Provider]:
    with Hospital(fhir_server.base_url) as hospital:
        yield hospital
