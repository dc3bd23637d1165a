"""Fixtures for the registry tests: a real state store (SQLite and PostgreSQL through the
``store`` fixture of tests/conftest.py), an initialised key ring, an officer's signing key, a
registry with a recording notifier, and a registered establishment."""

from __future__ import annotations

import base64
import csv
import itertools
import secrets
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from adapter.privacy import KeyRing
from adapter.registry import (
    CSV_COLUMNS,
    CheckRequest,
    ConvictionOrder,
    Establishment,
    Notification,
    Registry,
    RegistrySettings,
    sign_file,
)
from adapter.state import StateStore

NOW = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)  # a Monday
OFFICER = "r.officer"
CNIC = "35202-1234567-1"
_consents = itertools.count(1)


@pytest.fixture
def officer_key() -> Ed25519PrivateKey:
    return Ed25519PrivateKey.generate()


def public_b64(key: Ed25519PrivateKey) -> str:
    return base64.b64encode(key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)).decode()


@pytest.fixture
def settings(officer_key: Ed25519PrivateKey) -> RegistrySettings:
    return RegistrySettings(officer_keys={OFFICER: public_b64(officer_key)})


@pytest.fixture
def ring(store: StateStore) -> KeyRing:
    return KeyRing.init(store, secrets.token_bytes(32), ["health"], now=NOW)


@pytest.fixture
def notified() -> list[Notification]:
    return []


@pytest.fixture
def registry(
    store: StateStore, ring: KeyRing, settings: RegistrySettings, notified: list[Notification]
) -> Registry:
    return Registry.open(store, ring, settings, notifier=notified.append, now=NOW)


def add_school(registry: Registry, number: str = "SCH-001", **quotas: int) -> Establishment:
    _, key = registry.add_establishment(
        number,
        f"School {number}",
        (("Amina Khan", "amina@school.example"), ("Bilal Shah", "bilal@school.example")),
        registered_by=OFFICER,
        daily_quota=quotas.get("daily", 100),
        monthly_quota=quotas.get("monthly", 1000),
        now=NOW,
    )
    return registry.authenticate(key, now=NOW)


@pytest.fixture
def school(registry: Registry) -> Establishment:
    return add_school(registry)


def order(**fields: Any) -> ConvictionOrder:
    """A conviction order for Muhammad Ali s/o Muhammad Aslam, born 1990-05-01."""
    data: dict[str, Any] = {
        "court": "lhc",
        "order_ref": f"CRL-{secrets.token_hex(4)}",
        "order_date": "2024-01-15",
        "offence_code": "ppc_377a",
        "cnic": CNIC,
        "full_name": "Muhammad Ali",
        "father_name": "Muhammad Aslam",
        "date_of_birth": "1990-05-01",
    }
    data.update(fields)
    return ConvictionOrder(**data)


def request(**fields: Any) -> CheckRequest:
    """A complete check request with a fresh consent reference; override any field."""
    data: dict[str, Any] = {
        "cnic": CNIC,
        "full_name": "Muhammad Ali",
        "father_name": "Muhammad Aslam",
        "date_of_birth": "1990-05-01",
        "consent_ref": f"CF-2026-{next(_consents):06d}",
        "position": "Teacher",
        "purpose": "education",
    }
    data.update(fields)
    return CheckRequest(**data)


def write_signed_csv(
    tmp_path: Path, rows: list[dict[str, str]], key: Ed25519PrivateKey, name: str = "extract"
) -> tuple[Path, Path]:
    """A CSV extract and its detached signature, as a registry officer hands them over."""
    path, sig = tmp_path / f"{name}.csv", tmp_path / f"{name}.csv.sig"
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=CSV_COLUMNS)
        writer.writeheader()
        for row in rows:
            writer.writerow({c: row.get(c, "") for c in CSV_COLUMNS})
    sig.write_bytes(sign_file(path, key))
    return path, sig


def csv_row(i: int, **fields: str) -> dict[str, str]:
    row = {
        "source_ref": f"NSOR-{i:06d}",
        "cnic": f"42101-{1000000 + i:07d}-{i % 10}",
        "full_name": "Muhammad Ali",
        "father_name": "Muhammad Aslam",
        "date_of_birth": "1990-05-01",
        "offence_code": "ppc_377a",
        "conviction_date": "2021-06-30",
        "court": "shc",
    }
    row.update(fields)
    return row


MakeRequest = Callable[..., CheckRequest]
