"""Abuse resistance: authentication, quotas, enumeration detection (privacy.md §6.6 item 7,
§7 items 1 and 4)."""

from __future__ import annotations

import pytest

from adapter.privacy import list_security_events
from adapter.registry import (
    AuthenticationFailed,
    Establishment,
    EstablishmentLocked,
    Outcome,
    QuotaExceeded,
    Registry,
    RegistryEventKind,
)
from adapter.state import StateStore
from tests.registry.conftest import NOW, add_school, order, request


def kinds(store: StateStore) -> list[str]:
    return [e.kind for e in list_security_events(store)]


def test_unknown_api_key_is_refused_and_recorded(registry: Registry, store: StateStore) -> None:
    with pytest.raises(AuthenticationFailed):
        registry.authenticate("cpr1_not-a-key", now=NOW)
    assert kinds(store) == [RegistryEventKind.BAD_API_KEY]


def test_sequential_cnics_lock_the_establishment(
    registry: Registry, school: Establishment, store: StateStore
) -> None:
    # privacy.md §7 item 1: incrementing middle digits from one client.
    for serial in range(3):
        registry.check(
            request(cnic=f"35202-123456{serial}-1", full_name="Ali Raza"), school, now=NOW
        )
    assert RegistryEventKind.SEQUENTIAL_CNICS in kinds(store)
    assert registry.establishment("SCH-001").status == "locked"
    with pytest.raises(EstablishmentLocked):
        registry.check(request(cnic="61101-7777777-5"), school, now=NOW)
    registry.unlock("SCH-001", "r.officer", "false alarm: three siblings", now=NOW)
    registry.check(request(cnic="61101-7777777-5"), school, now=NOW)


def test_many_mismatches_lock_the_establishment(registry: Registry, store: StateStore) -> None:
    fisher = add_school(registry, "FISH-01")
    for i in range(4):
        registry.ingest_conviction(order(cnic=f"{3 + i}1101-{1111111 * (i + 1)}-1"), now=NOW)
    # Guessed identities: registered CNICs with made-up names, among ordinary misses.
    for i in range(4):
        wrong = request(cnic=f"{3 + i}1101-{1111111 * (i + 1)}-1", full_name="Guess Name")
        assert registry.check(wrong, fisher, now=NOW).status is Outcome.PENDING_REVIEW
    for i in range(6):
        registry.check(
            request(cnic=f"1{i}101-{3000000 + 7919 * i}-3", full_name="Bilal Ahmed"),
            fisher,
            now=NOW,
        )
    assert RegistryEventKind.MISMATCH_RATE in kinds(store)
    assert registry.establishment("FISH-01").status == "locked"


def test_one_person_checked_by_many_establishments_raises_an_event(
    registry: Registry, store: StateStore
) -> None:
    schools = [add_school(registry, f"SCH-10{i}") for i in range(5)]
    for school in schools[:3]:
        registry.check(request(), school, now=NOW)
    assert RegistryEventKind.SUBJECT_WIDELY_CHECKED not in kinds(store)
    registry.check(request(), schools[3], now=NOW)
    registry.check(request(), schools[3], now=NOW)  # a re-check by the same school: no repeat
    assert kinds(store).count(RegistryEventKind.SUBJECT_WIDELY_CHECKED) == 1
    assert all(s.status == "active" for s in registry.establishments())


def test_daily_quota(registry: Registry) -> None:
    small = add_school(registry, "SMALL-1", daily=2, monthly=10)
    registry.check(request(cnic="61101-7777777-5"), small, now=NOW)
    registry.check(request(cnic="42101-7654321-3"), small, now=NOW)
    with pytest.raises(QuotaExceeded) as caught:
        registry.check(request(cnic="13101-1234567-9"), small, now=NOW)
    assert 0 < caught.value.retry_after <= 24 * 3600


def test_monthly_quota(registry: Registry) -> None:
    small = add_school(registry, "SMALL-2", daily=5, monthly=1)
    registry.check(request(cnic="61101-7777777-5"), small, now=NOW)
    with pytest.raises(QuotaExceeded) as caught:
        registry.check(request(cnic="42101-7654321-3"), small, now=NOW)
    assert caught.value.retry_after > 24 * 3600
