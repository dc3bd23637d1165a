"""POST /v1/convictions: the courts' conviction orders reach the offender registry (issue 6),
inside the inbox's idempotency, and nothing of them reaches Primero or the logs."""

from __future__ import annotations

import json
import logging
import secrets
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient

from adapter.api import create_app
from adapter.config.registry import RegistrySettings
from adapter.primero import PrimeroClient
from adapter.privacy import KeyRing, list_security_events
from adapter.registry import Registry
from adapter.registry._tables import registry_entries
from adapter.registry.matching import Outcome
from adapter.registry.models import CheckRequest
from adapter.simulator.primero import PrimeroSimulator
from adapter.state import StateStore
from adapter.state.outbox import Outbox
from tests.api.conftest import DEPARTMENTS, KEYS, api_settings, message_id, settings_for

CNIC = "35202-8765432-1"
FULL_NAME = "Zarghun Khattak"
FATHER = "Sherbaz Khattak"
DOB = "1985-03-17"


@dataclass
class Court:
    client: TestClient
    registry: Registry
    store: StateStore

    def post(self, body: Any, department: str = "courts") -> Any:
        return self.client.post(
            "/v1/convictions", json=body, headers={"Authorization": f"Bearer {KEYS[department]}"}
        )

    def entries(self) -> int:
        with self.store.transaction() as conn:
            query = sa.select(sa.func.count()).select_from(registry_entries)
            return int(conn.execute(query).scalar() or 0)


@pytest.fixture
def court(sim: PrimeroSimulator, tmp_path: Path) -> Iterator[Court]:
    kek = secrets.token_bytes(32)
    state_url = f"sqlite:///{tmp_path}/state.sqlite3"
    with StateStore(state_url) as store:
        keyring = KeyRing.init(store, kek, DEPARTMENTS)
        settings = settings_for(sim.url, state_url, kek)
        registry = Registry.open(store, keyring, RegistrySettings(court_departments=["courts"]))

        def factory() -> PrimeroClient:
            return PrimeroClient.from_settings(settings.primero)

        app = create_app(
            settings,
            store=store,
            keyring=keyring,
            primero_client_factory=factory,
            api_settings=api_settings(),
            registry=registry,
        )
        with TestClient(app) as client:
            yield Court(client, registry, store)


def conviction(**overrides: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "message_id": message_id(),
        "court": {"type": "sessions", "name": "Sessions Court Peshawar", "district": "Peshawar"},
        "case_number": "SC-114/2024",
        "order_ref": f"ORD-{secrets.token_hex(4)}",
        "order_date": "2024-06-03",
        "offence_codes": ["ppc_377a"],
        "appeal_state": "none",
        "person": {
            "cnic": CNIC,
            "full_name": FULL_NAME,
            "father_name": FATHER,
            "date_of_birth": DOB,
        },
    }
    body.update(overrides)
    return body


def check(registry: Registry) -> Outcome:
    _, key = registry.add_establishment(
        f"SCH-{secrets.token_hex(3)}",
        "Test School",
        (("Amina Khan", "amina@school.example"), ("Bilal Shah", "bilal@school.example")),
        registered_by="r.officer",
    )
    request = CheckRequest(
        cnic=CNIC,
        full_name=FULL_NAME,
        father_name=FATHER,
        date_of_birth=DOB,
        consent_ref=f"CF-{secrets.token_hex(6)}",
        position="Teacher",
        purpose="education",
    )
    return registry.check(request, registry.authenticate(key)).status


def assert_no_identity(text: str) -> None:
    for secret in (CNIC, CNIC.replace("-", ""), FULL_NAME, FATHER, "Zarghun", "Sherbaz", DOB):
        assert secret not in text


def test_a_conviction_for_a_configured_offence_puts_the_person_on_the_register(
    court: Court, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    assert check(court.registry) is Outcome.CLEAR
    body = conviction()
    response = court.post(body)
    assert response.status_code == 200
    answer = response.json()
    assert answer["status"] == "accepted" and answer["reference"]
    assert set(answer) == {"message_id", "status", "reference"}
    assert_no_identity(response.text)
    assert court.entries() == 1
    assert check(court.registry) is Outcome.DO_NOT_ENGAGE
    assert not Outbox(court.store).depth()  # nothing of it goes to Primero
    assert_no_identity("\n".join(r.getMessage() for r in caplog.records))
    assert "POST /v1/convictions 200" in caplog.text and "department=courts" in caplog.text


def test_an_unconfigured_offence_is_not_registrable_and_creates_nothing(court: Court) -> None:
    response = court.post(conviction(offence_codes=["ppc_302", "ppc_379"]))
    assert response.status_code == 200
    assert response.json()["status"] == "not_registrable"
    assert response.json()["reference"] is None
    assert court.entries() == 0
    assert check(court.registry) is Outcome.CLEAR


def test_one_configured_offence_among_others_is_enough(court: Court) -> None:
    response = court.post(conviction(offence_codes=["ppc_302", "ppc_377b"]))
    assert response.json()["status"] == "accepted"
    assert court.entries() == 1


def test_a_replay_answers_the_same_and_writes_once(court: Court) -> None:
    body = conviction()
    first = court.post(body)
    again = court.post(body)
    assert again.status_code == first.status_code == 200
    assert again.json() == first.json()
    assert again.headers["Idempotent-Replayed"] == "true"
    assert court.entries() == 1
    # The same order under a new message id (a re-sent order) is the same entry.
    resent = court.post({**body, "message_id": message_id()}).json()
    assert (resent["status"], resent["reference"]) == ("accepted", first.json()["reference"])
    assert court.entries() == 1
    changed = {**body, "order_date": "2024-06-04"}
    assert court.post(changed).status_code == 409


def test_an_overturned_conviction_leaves_the_register(court: Court) -> None:
    body = conviction()
    assert court.post(body).json()["status"] == "accepted"
    overturned = {**body, "message_id": message_id(), "appeal_state": "overturned"}
    assert court.post(overturned).json()["status"] == "accepted"
    assert check(court.registry) is Outcome.CLEAR


def test_another_department_is_refused_and_recorded(court: Court) -> None:
    events = len(list_security_events(court.store))
    response = court.post(conviction(), department="police")
    assert response.status_code == 403
    assert response.json()["error"]["code"] == "not_a_court"
    assert_no_identity(response.text)
    assert court.entries() == 0
    recorded = list_security_events(court.store)
    assert len(recorded) == events + 1
    assert recorded[-1].department == "police"
    assert_no_identity(recorded[-1].detail)


@pytest.mark.parametrize("bad", ["35202-876543-1", "95202-8765432-1", "3520287654321x"])
def test_a_bad_cnic_is_a_422_naming_the_field_not_the_value(court: Court, bad: str) -> None:
    body = conviction()
    body["person"] = {**body["person"], "cnic": bad}
    response = court.post(body)
    assert response.status_code == 422
    error = response.json()["error"]
    assert error["field"] == "person.cnic"
    assert bad not in response.text and bad[:5] not in json.dumps(error)
    assert court.entries() == 0


def test_the_body_is_strict(court: Court) -> None:
    body = conviction()
    body["person"] = {**body["person"], "mother_name": "X"}
    assert court.post(body).status_code == 422
    body = conviction()
    body["person"] = {**body["person"], "date_of_birth": "2999-01-01"}
    response = court.post(body)
    assert response.status_code == 422
    assert response.json()["error"]["field"] == "person.date_of_birth"
    assert court.post(conviction(offence_codes=[])).status_code == 422
    assert court.entries() == 0


def test_the_route_is_described_when_courts_are_configured(court: Court) -> None:
    spec = court.client.get("/openapi.json").json()
    assert "/v1/convictions" in spec["paths"]
    assert spec["components"]["schemas"]["ConvictionIn"]["additionalProperties"] is False
