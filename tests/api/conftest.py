"""A world for the inbound API: the Primero simulator (with the linked-records form), a state
store with keys for four departments, and the app under a TestClient."""

from __future__ import annotations

import base64
import hashlib
import secrets
import uuid
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from pydantic import SecretStr

from adapter.api import ApiSettings, create_app
from adapter.config import DepartmentSettings, JobSettings, PrimeroSettings, Settings, StateSettings
from adapter.config.privacy import PrivacySettings
from adapter.mappings.mapped_spec import RecordTypeSpec
from adapter.primero import PrimeroClient
from adapter.primero.linked_records import SUBFORM_FIELD
from adapter.privacy import KeyRing, list_security_events
from adapter.simulator.primero import PrimeroSimulator
from adapter.simulator.scenario import POLICY_DIR, SIM_PASSWORD, install_linked_records_form
from adapter.state import StateStore
from adapter.state.links import Links
from adapter.state.outbox import Outbox

DEPARTMENTS = ("police", "health", "birth_registration", "courts")
KEYS = {name: f"test-key-{name}-{n}" for n, name in enumerate(DEPARTMENTS)}
RESPONSIBLE_CPO = "cp_worker1"


def sha256(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def api_settings(**overrides: Any) -> ApiSettings:
    values: dict[str, Any] = {
        "responsible_cpo": {"police": RESPONSIBLE_CPO},
        "default_cpo": "cp_worker2",
        "drain_interval_seconds": 0,
    }
    values.update(overrides)
    return ApiSettings(**values)


def settings_for(primero_url: str, state_url: str, kek: bytes, **departments: Any) -> Settings:
    configured = {
        name: DepartmentSettings(
            connector="rest",
            base_url="http://127.0.0.1:9",  # never called: the API only receives
            inbound_api_key_sha256=[sha256(KEYS[name])],
            max_attempts=3,
            **departments.get(name, {}),
        )
        for name in DEPARTMENTS
    }
    return Settings(
        primero=PrimeroSettings(
            url=primero_url,
            username="cpims-adapter",
            password=SecretStr(SIM_PASSWORD),
            backoff_seconds=0.01,
            max_retries=1,
        ),
        state=StateSettings(url=state_url),
        privacy=PrivacySettings(
            policy_dir=POLICY_DIR, kek=SecretStr(base64.b64encode(kek).decode())
        ),
        departments=configured,
        jobs={"police": JobSettings(department="police", agencies=["agency-sindh-police"])},
    )


@dataclass
class World:
    sim: PrimeroSimulator
    settings: Settings
    store: StateStore
    keyring: KeyRing
    app: FastAPI
    client: TestClient

    def primero(self) -> PrimeroClient:
        return PrimeroClient(
            self.sim.url, auth="basic", username="cpims-adapter", password=SIM_PASSWORD
        )

    def post(self, path: str, body: Any, department: str = "police", **headers: str) -> Any:
        return self.client.post(
            path, json=body, headers={"Authorization": f"Bearer {KEYS[department]}", **headers}
        )

    def case(self, case_id: str) -> dict[str, Any]:
        with self.primero() as primero:
            return primero.get_case(case_id)

    def linked_rows(self, case_id: str) -> list[dict[str, Any]]:
        return list(self.case(case_id).get(SUBFORM_FIELD) or [])

    def flags(self, case_id: str) -> list[str]:
        with self.primero() as primero:
            return [str(f["message"]) for f in primero.list_flags(case_id)]

    def new_case(self, **fields: Any) -> str:
        """A case a CPO registered in Primero earlier."""
        data = {"module_id": "primeromodule-cp", "consent_for_services": True, **fields}
        with PrimeroClient(
            self.sim.url, auth="basic", username="cp_worker1", password=SIM_PASSWORD
        ) as cpo:
            return cpo.create_case(data).id

    def code(self, case_id: str, department: str = "police") -> str:
        return self.keyring.case_code(case_id, department)

    def snapshot(self) -> dict[str, Any]:
        """Everything a refused or replayed message must leave unchanged."""
        with self.primero() as primero:
            cases = primero.list_cases({"per": 1})[1]["total"]
            flags = sum(
                int(c.get("flag_count") or 0)
                for c in primero.list_cases({"per": 1000, "fields": "flag_count"})[0]
            )
        return {
            "inbox": self.app.state.service.inbox.count(),
            "outbox": Outbox(self.store).depth(),
            "links": len(Links(self.store).for_job("inbound")),
            "cases": cases,
            "flags": flags,
            "events": len(list_security_events(self.store)),
        }


def make_app(
    settings: Settings,
    store: StateStore,
    keyring: KeyRing,
    factory: Callable[[], PrimeroClient],
    record_types: Mapping[str, Mapping[str, RecordTypeSpec]] | None = None,
    **api: Any,
) -> FastAPI:
    return create_app(
        settings,
        store=store,
        keyring=keyring,
        primero_client_factory=factory,
        api_settings=api_settings(**api),
        record_types=record_types,
    )


@pytest.fixture(scope="module")
def sim() -> Iterator[PrimeroSimulator]:
    """One Primero simulator per test module (tests compare counts before and after)."""
    with PrimeroSimulator(cases=0) as simulator:
        install_linked_records_form(simulator.url)
        yield simulator


def open_world(sim: PrimeroSimulator, state_url: str) -> Iterator[World]:
    kek = secrets.token_bytes(32)
    with StateStore(state_url) as store:
        keyring = KeyRing.init(store, kek, DEPARTMENTS)
        settings = settings_for(sim.url, state_url, kek)

        def factory() -> PrimeroClient:
            return PrimeroClient.from_settings(settings.primero)

        app = make_app(settings, store, keyring, factory)
        with TestClient(app) as client:
            yield World(sim, settings, store, keyring, app, client)


@pytest.fixture
def world(sim: PrimeroSimulator, tmp_path: Path) -> Iterator[World]:
    """A fresh SQLite state store and app over the module's simulator."""
    yield from open_world(sim, f"sqlite:///{tmp_path}/state.sqlite3")


@pytest.fixture
def world_on_each_backend(sim: PrimeroSimulator, state_url: str) -> Iterator[World]:
    """The same on SQLite and on PostgreSQL (the inbox's uniqueness matters on both)."""
    yield from open_world(sim, state_url)


def message_id() -> str:
    return str(uuid.uuid4())


def unique_name() -> str:
    """A synthetic name no other test's child resembles (no possible match by accident)."""
    return "Testchild " + "".join(secrets.choice("bcdfgjklmnpqrstvz") for _ in range(10)).title()


def referral_body(**overrides: Any) -> dict[str, Any]:
    """A valid referral from the police (synthetic child)."""
    body: dict[str, Any] = {
        "message_id": message_id(),
        "reference": f"WCPC-{uuid.uuid4().hex[:8]}",
        "child": {
            "name": unique_name(),
            "sex": "female",
            "date_of_birth": "2014-05-02",
            "district": "PK-SD-KHI",
        },
        "concern_codes": ["physically_or_mentally_abused", "child_labour"],
        "reason": "Found working at night; injuries seen by the duty officer.",
        "urgency": "high",
        "referring_officer": {"name": "Inspector Synthetic", "rank": "Inspector"},
    }
    body.update(overrides)
    return body


def fir_body(case_code: str, **fir: Any) -> dict[str, Any]:
    record: dict[str, Any] = {
        "province": "sindh",
        "district": "Karachi South",
        "police_station": "PS Artillery Maidan",
        "fir_number": 123,
        "fir_year": 2026,
        "fir_date": "2026-01-10",
        "offence_sections": ["377-B", "PPC-328-A"],
        "status": "under_investigation",
        "investigating_officer_rank": "Sub-Inspector",
        "medico_legal_required": True,
        "mlc_reference": "MLC-2026-0042",
    }
    record.update(fir)
    return {"message_id": message_id(), "case_code": case_code, "fir": record}
