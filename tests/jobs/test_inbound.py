"""The inbound service: accepted messages survive crashes and are delivered exactly once in
effect (at-least-once delivery to idempotent Primero writes)."""

from __future__ import annotations

import secrets
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import pytest
import requests
import sqlalchemy as sa
from fastapi.testclient import TestClient

from adapter.clock import utcnow
from adapter.config import Settings
from adapter.errors import PrimeroTimeout
from adapter.jobs.inbound import (
    CASE_NAMESPACE,
    INBOUND_JOB,
    Envelope,
    InboundService,
    Intake,
    IntakeOptions,
    request_hash,
)
from adapter.primero import PrimeroClient
from adapter.primero.linked_records import SUBFORM_FIELD
from adapter.privacy import KeyRing
from adapter.simulator.primero import PrimeroSimulator
from adapter.simulator.scenario import install_linked_records_form
from adapter.state import StateStore, schema
from adapter.state.outbox import Outbox
from tests.api.conftest import DEPARTMENTS, KEYS, make_app, referral_body, settings_for


@dataclass
class Service:
    sim: PrimeroSimulator
    settings: Settings
    store: StateStore
    keyring: KeyRing
    inbound: InboundService

    def client(self) -> PrimeroClient:
        return PrimeroClient.from_settings(self.settings.primero)


@pytest.fixture(scope="module")
def sim() -> Iterator[PrimeroSimulator]:
    with PrimeroSimulator(cases=0) as simulator:
        install_linked_records_form(simulator.url)
        yield simulator


@pytest.fixture
def service(sim: PrimeroSimulator, tmp_path: Path) -> Iterator[Service]:
    kek = secrets.token_bytes(32)
    state_url = f"sqlite:///{tmp_path}/state.sqlite3"
    with StateStore(state_url) as store:
        keyring = KeyRing.init(store, kek, DEPARTMENTS)
        settings = settings_for(sim.url, state_url, kek)
        inbound = InboundService(
            settings, store, keyring, intake=IntakeOptions(default_owner="cp_worker1")
        )
        yield Service(sim, settings, store, keyring, inbound)


def intake(reference: str | None = None) -> Intake:
    return Intake(
        reference=reference or f"REF-{uuid.uuid4().hex[:8]}",
        concerns=("child_labour",),
        reason="Working in a brick kiln.",
        urgency="medium",
        officer="ASI Synthetic, 0300-0000000",
        name="Testchild Qwrtpl",
        sex="male",
        age=12,
    )


def envelope(message: Intake) -> Envelope:
    message_id = str(uuid.uuid4())
    return Envelope(
        "police", message_id, "referrals", request_hash("referrals", "", {"m": message_id})
    )


def unreachable() -> PrimeroClient:
    raise PrimeroTimeout("Primero did not answer (simulated outage).")


def test_an_accepted_referral_survives_primero_being_down(service: Service) -> None:
    message = intake()
    answer = service.inbound.receive_referral(envelope(message), message)
    assert answer.status_code == 202 and answer.jobs == (INBOUND_JOB,)
    with pytest.raises(PrimeroTimeout):  # Primero is down: nothing attempted, nothing lost
        service.inbound.drain(unreachable)
    assert service.inbound.pending() == 1

    report = service.inbound.drain(service.client)
    assert report.delivered == 1 and service.inbound.pending() == 0
    case_id = str(uuid.uuid5(CASE_NAMESPACE, f"police:{message.reference}"))
    with service.client() as primero:
        assert primero.get_case(case_id)["owned_by"] == "cp_worker1"


def test_a_failed_delivery_is_retried_after_backoff(service: Service) -> None:
    message = intake()
    service.inbound.receive_referral(envelope(message), message)
    fault = {"status": 503, "count": 10, "path_prefix": "/api/v2/cases"}
    requests.post(f"{service.sim.url}/_sim/faults", json=fault, timeout=5).raise_for_status()
    try:
        report = service.inbound.drain(service.client)
    finally:
        requests.delete(f"{service.sim.url}/_sim/faults", timeout=5).raise_for_status()
    assert report.retrying == 1 and service.inbound.pending() == 1
    later = service.inbound.drain(service.client, now=utcnow() + timedelta(hours=2))
    assert later.delivered == 1 and service.inbound.pending() == 0


def test_a_redelivery_after_a_crash_changes_nothing(service: Service) -> None:
    message = intake()
    service.inbound.receive_referral(envelope(message), message)
    case_id = str(uuid.uuid5(CASE_NAMESPACE, f"police:{message.reference}"))
    # The create got through but the process died before anything else: Primero has the case.
    with service.client() as primero:
        primero.create_case(
            {"name": "Testchild Qwrtpl", "module_id": "primeromodule-cp"}, id=case_id
        )
    with service.store.transaction() as conn:
        row_id, payload = conn.execute(sa.select(schema.outbox.c.id, schema.outbox.c.payload)).one()
    assert service.inbound.drain(service.client).delivered == 1
    # ... and once more, as if the crash came after the writes but before "sent" was recorded.
    with service.store.transaction() as conn:
        conn.execute(
            sa.update(schema.outbox)
            .where(schema.outbox.c.id == row_id)
            .values(status="pending", attempts=0, payload=payload)
        )
    assert service.inbound.drain(service.client).delivered == 1
    with service.client() as primero:
        flags = [f["message"] for f in primero.list_flags(case_id)]
        rows = primero.get_case(case_id).get(SUBFORM_FIELD) or []
    assert sum(f.startswith("New referral from police") for f in flags) == 1
    assert len(rows) == 1


def test_a_running_sync_of_the_job_holds_the_drain_off(service: Service) -> None:
    message = intake()
    service.inbound.receive_referral(envelope(message), message)
    lease = service.store.acquire_lease(f"job:{INBOUND_JOB}", "another-process", 60)
    assert lease is not None
    assert service.inbound.drain(service.client).skipped
    assert service.inbound.pending() == 1
    service.store.release_lease(lease)
    assert service.inbound.drain(service.client).delivered == 1


def test_a_restarted_server_delivers_what_a_crash_left_queued(
    sim: PrimeroSimulator, tmp_path: Path
) -> None:
    kek = secrets.token_bytes(32)
    state_url = f"sqlite:///{tmp_path}/state.sqlite3"
    body = referral_body()
    with StateStore(state_url) as store:
        keyring = KeyRing.init(store, kek, DEPARTMENTS)
        settings = settings_for(sim.url, state_url, kek)
        crashed = make_app(settings, store, keyring, unreachable)
        with TestClient(crashed) as client:
            response = client.post(
                "/v1/referrals", json=body, headers={"X-API-Key": KEYS["police"]}
            )
            assert response.status_code == 202  # answered: the work is in the outbox
        assert Outbox(store).depth() == {"pending": 1}

    with StateStore(state_url) as store:  # a new process
        keyring = KeyRing.open(store, kek)
        restarted = make_app(
            settings, store, keyring, lambda: PrimeroClient.from_settings(settings.primero)
        )
        with TestClient(restarted):
            deadline = time.monotonic() + 20
            while Outbox(store).depth() != {"sent": 1}:
                assert time.monotonic() < deadline, Outbox(store).depth()
                time.sleep(0.05)
    case_id = str(uuid.uuid5(CASE_NAMESPACE, f"police:{body['reference']}"))
    with PrimeroClient.from_settings(settings.primero) as primero:
        assert primero.get_case(case_id)["name"] == body["child"]["name"]
