"""A sync over several pages, delivering while it pulls: every referral reaches the department
once, as a valid FHIR R4B transaction, and a second run sends nothing.

The department is a recording connector (the engine's seam for department systems), so the
test sees each delivery as the engine made it; Primero is the simulator on loopback.
"""

from __future__ import annotations

import secrets
import threading
from collections import Counter
from collections.abc import Iterator, Mapping
from typing import Any

import pytest
from fhir.resources.R4B.bundle import Bundle

from adapter.app.departments import open_department
from adapter.departments.base import Delivery
from adapter.jobs.sync import SyncJob
from adapter.mappings.vocabulary import StatusUpdate
from adapter.primero import PrimeroClient
from adapter.privacy import DisclosurePolicy, KeyRing
from adapter.retention import destroyed_cases
from adapter.simulator.primero import PrimeroSimulator
from adapter.simulator.scenario import health_settings, refer_children_to_health
from adapter.state import StateStore

N = 13
PAGE = 4  # four pages: the first three are delivered while later ones are planned


class RecordingDepartment:
    """Accepts every document and remembers it (thread-safe: delivery uses a pool)."""

    department = "health"

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.deliveries: list[tuple[str, str, dict[str, Any]]] = []

    def deliver(self, kind: str, document: Mapping[str, Any], *, idempotency_key: str) -> Delivery:
        with self.lock:
            self.deliveries.append((kind, idempotency_key, dict(document)))
            return Delivery(f"Task/{len(self.deliveries)}")

    def status_updates(self, since: str | None) -> Iterator[tuple[StatusUpdate, str]]:
        return iter(())

    def close(self) -> None:
        pass


@pytest.fixture
def world(state_url: str) -> Iterator[tuple[PrimeroSimulator, str, bytes]]:
    with PrimeroSimulator(cases=0) as sim:
        kek = secrets.token_bytes(32)
        with StateStore(state_url) as store:
            KeyRing.init(store, kek, ["health"])
        refer_children_to_health(sim.url, N)
        yield sim, state_url, kek


def _run(sim: PrimeroSimulator, state_url: str, kek: bytes, department: RecordingDepartment) -> Any:
    settings = health_settings(
        primero_url=sim.url, fhir_url="http://127.0.0.1:9", state_url=state_url, kek=kek,
        two_stage=False,
    )  # fmt: skip
    primero = settings.primero.model_copy(update={"page_size": PAGE})
    settings = settings.model_copy(update={"primero": primero})
    with (
        StateStore(state_url) as store,
        PrimeroClient.from_settings(settings.primero) as client,
        open_department(settings, "health") as (_, mapping),
    ):
        job = SyncJob(
            settings,
            "health",
            client=client,
            store=store,
            keyring=KeyRing.open(store, kek),
            policy=DisclosurePolicy.load(settings.privacy.policy_dir),
            connector=department,
            mapping=mapping,
            tombstones=destroyed_cases,
        )
        return job.run()


def test_a_paged_run_delivers_each_referral_once_as_valid_fhir(
    world: tuple[PrimeroSimulator, str, bytes],
) -> None:
    sim, state_url, kek = world
    department = RecordingDepartment()
    report = _run(sim, state_url, kek, department)

    assert report.status == "ok"
    assert report.pull is not None and report.pull.pages >= N // PAGE
    assert report.enqueued == {"referral": N} and report.delivered == {"referral": N}
    keys = Counter(key for _, key, _ in department.deliveries)
    assert len(keys) == N and set(keys.values()) == {1}
    referral_keys = {document["referral_key"] for _, _, document in department.deliveries}
    assert len(referral_keys) == N
    for _, _, document in department.deliveries:
        # What the engine sent, not what a builder would build: plain dicts on the hot path.
        bundle = Bundle.model_validate(document["bundle"])
        kinds = [entry.resource.get_resource_type() for entry in bundle.entry or []]
        assert kinds == ["Patient", "Consent", "ServiceRequest", "Task"]

    again = _run(sim, state_url, kek, department)
    assert again.status == "ok" and again.enqueued == {} and again.delivered == {}
    assert len(department.deliveries) == N
