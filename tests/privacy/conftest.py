"""Fixtures for the privacy tests: the shipped policy files, a real state store, an initialised
key ring, and a factory for Primero-shaped cases.

The ``store`` fixture comes from ``tests/conftest.py``: every test that uses it runs on SQLite
and on a real PostgreSQL started on 127.0.0.1.
"""

from __future__ import annotations

import secrets
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from adapter.privacy import DisclosureGate, DisclosurePolicy, Gazetteer, KeyRing
from adapter.state import StateStore

POLICY_DIR = Path(__file__).resolve().parents[2] / "config" / "policy"
NOW = datetime(2026, 3, 1, 9, 0, tzinfo=UTC)

# Province PK3 (Punjab) > district PK301 (Lahore) > tehsil PK30101; district PK302 elsewhere.
GAZETTEER = Gazetteer(
    {
        "PK": (0, None),
        "PK3": (1, "PK"),
        "PK301": (2, "PK3"),
        "PK30101": (3, "PK301"),
        "PK302": (2, "PK3"),
        "PK4": (1, "PK"),
        "PK401": (2, "PK4"),
    }
)


@pytest.fixture(scope="session")
def policy() -> DisclosurePolicy:
    return DisclosurePolicy.load(POLICY_DIR, gazetteer=GAZETTEER)


@pytest.fixture
def kek() -> bytes:
    return secrets.token_bytes(32)


@pytest.fixture
def ring(store: StateStore, kek: bytes, policy: DisclosurePolicy) -> KeyRing:
    return KeyRing.init(store, kek, policy.departments, now=NOW)


@pytest.fixture
def gate(store: StateStore, policy: DisclosurePolicy, ring: KeyRing) -> DisclosureGate:
    return DisclosureGate(store, policy, ring)


@pytest.fixture(scope="module")
def shared_ring(
    tmp_path_factory: pytest.TempPathFactory, policy: DisclosurePolicy
) -> Iterator[KeyRing]:
    """One key ring for a whole module (hypothesis tests must not use function fixtures)."""
    with StateStore(f"sqlite:///{tmp_path_factory.mktemp('ring')}/ring.db") as store:
        yield KeyRing.init(store, secrets.token_bytes(32), policy.departments, now=NOW)


def make_case(**fields: Any) -> dict[str, Any]:
    """A consented CP case with one health and one police service row; override any field."""
    case: dict[str, Any] = {
        "id": str(uuid.uuid4()),
        "unique_identifier": str(uuid.uuid4()),
        "case_id_display": "f15a1a9",
        "short_id": "f15a1a9",
        "module_id": "primeromodule-cp",
        "consent_for_services": True,
        "disclosure_other_orgs": True,
        "name": "Zainab Qureshi",
        "sex": "female",
        "date_of_birth": "2014-06-02",
        "age": 11,
        "location_current": "PK30101",
        "protection_concerns": ["neglect"],
        "services_section": [
            {
                "unique_id": str(uuid.uuid4()),
                "service_type": "health_medical_service",
                "service_response_timeframe": "1_day",
                "service_referral_notes": "Needs an examination at the district hospital soon",
            },
            {"unique_id": str(uuid.uuid4()), "service_type": "police_other_service"},
        ],
    }
    case.update(fields)
    return case


@pytest.fixture
def case_factory() -> Callable[..., dict[str, Any]]:
    return make_case
