"""A record type declared only in a department's mapping file comes back over the inbound API
(``POST /v1/records/{record_type}``): education, configured from temporary files as in
tests/departments/test_rest_new_department.py, sends a school enrolment, and the case in
Primero shows it. What the mapping file does not declare is refused, naming the field and
repeating no value."""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from adapter.api.inbound import inbound_app
from adapter.cli._forms import configured_record_types
from adapter.config import DepartmentSettings, Settings
from adapter.primero import PrimeroClient
from adapter.primero.linked_records import SUBFORM_FIELD
from adapter.privacy import KeyRing
from adapter.simulator.primero import PrimeroSimulator
from adapter.simulator.scenario import SIM_PASSWORD, install_linked_records_form
from adapter.state import StateStore
from tests.api.conftest import message_id, settings_for, sha256
from tests.departments.test_rest_new_department import EDUCATION_MAPPING

ROOT = Path(__file__).resolve().parents[2]
KEYS = {"education": "test-key-education-9", "police": "test-key-police-9"}


class Served:
    def __init__(self, sim: PrimeroSimulator, client: TestClient, keyring: KeyRing) -> None:
        self.sim, self.client, self.keyring = sim, client, keyring

    def post(self, path: str, body: Any, department: str = "education") -> Any:
        return self.client.post(
            path, json=body, headers={"Authorization": f"Bearer {KEYS[department]}"}
        )

    def primero(self, user: str = "cpims-adapter") -> PrimeroClient:
        return PrimeroClient(self.sim.url, auth="basic", username=user, password=SIM_PASSWORD)

    def new_case(self) -> str:
        data = {"module_id": "primeromodule-cp", "name": "Synthetic Child", "age": 9}
        with self.primero("cp_worker1") as cpo:
            return cpo.create_case(data).id

    def rows(self, case_id: str) -> list[dict[str, Any]]:
        with self.primero() as primero:
            return list(primero.get_case(case_id).get(SUBFORM_FIELD) or [])


def education_settings(primero_url: str, state_url: str, kek: bytes, tmp: Path) -> Settings:
    mapping_file = tmp / "education.toml"
    mapping_file.write_text(EDUCATION_MAPPING, encoding="utf-8")
    departments = {
        name: DepartmentSettings(
            connector="rest",
            base_url="http://127.0.0.1:9",  # never called: the API only receives
            inbound_api_key_sha256=[sha256(KEYS[name])],
            mapping_file=path,
        )
        for name, path in (
            ("education", mapping_file),
            ("police", ROOT / "config" / "mappings" / "police.toml"),
        )
    }
    settings = settings_for(primero_url, state_url, kek)
    return settings.model_copy(update={"departments": departments, "jobs": {}})


@pytest.fixture
def served(tmp_path: Path) -> Iterator[Served]:
    """The inbound API as ``serve`` builds it (adapter.api.inbound: the wiring reads the
    mapping files), over a Primero whose record-type select offers school_enrolment."""
    kek = secrets.token_bytes(32)
    state_url = f"sqlite:///{tmp_path}/state.sqlite3"
    with PrimeroSimulator(cases=0) as sim, StateStore(state_url) as store:
        settings = education_settings(sim.url, state_url, kek, tmp_path)
        install_linked_records_form(sim.url, record_types=configured_record_types(settings))
        keyring = KeyRing.init(store, kek, sorted(KEYS))
        with TestClient(inbound_app(settings, store)) as client:
            yield Served(sim, client, keyring)


def enrolment(case_code: str, **record: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "reference": "EMIS-KHI-2026-0042",
        "status": "enrolled",
        "updated_at": "2026-03-01T09:30:00+05:00",
        "note": "Enrolled in class 4.",
        "details": {"school": "GBSS Lyari", "class": "4"},
    }
    body.update(record)
    return {"message_id": message_id(), "case_code": case_code, "record": body}


def test_a_school_enrolment_reaches_the_cases_linked_records(served: Served) -> None:
    case_id = served.new_case()
    body = enrolment(served.keyring.case_code(case_id, "education"))
    response = served.post("/v1/records/school_enrolment", body)
    assert response.status_code == 202, response.text
    assert response.json() == {
        "message_id": body["message_id"],
        "status": "accepted",
        "record_type": "school_enrolment",
    }
    (row,) = served.rows(case_id)
    assert row["link_record_type"] == "school_enrolment"
    assert row["link_department"] == "education"
    # The department's word, mapped as its mapping file says (enrolled → completed).
    assert row["link_status"] == "completed"
    assert row["link_external_reference"] == "EMIS-KHI-2026-0042"
    note = row["link_status_note"]
    assert "Enrolled in class 4." in note and "school: GBSS Lyari" in note

    # A re-sent message changes nothing; a later message about the same record updates it.
    again = served.post("/v1/records/school_enrolment", body)
    assert again.status_code == 202 and again.headers["Idempotent-Replayed"] == "true"
    later = enrolment(body["case_code"], status="declined", note="Family moved away.")
    assert served.post("/v1/records/school_enrolment", later).status_code == 202
    (row,) = served.rows(case_id)
    assert row["link_status"] == "rejected" and "Family moved away." in row["link_status_note"]


SECRET = "Zx-91-secret-value"  # nothing an error may repeat


@pytest.mark.parametrize(
    ("department", "record_type", "record", "status", "field"),
    [
        # A type education's mapping file does not declare (police's own type) ...
        ("education", "fir", {}, 404, "record_type"),
        # ... and education's type from a department whose file does not declare it.
        ("police", "school_enrolment", {}, 404, "record_type"),
        ("education", "school_enrolment", {"status": SECRET}, 422, "record.status"),
        ("education", "school_enrolment", {"details": {SECRET: "x"}}, 422, "record.details"),
        ("education", "school_enrolment", {"details": {"mother": SECRET}}, 422, "record.details"),
    ],
)
def test_what_the_mapping_file_does_not_declare_is_refused(
    served: Served,
    department: str,
    record_type: str,
    record: dict[str, Any],
    status: int,
    field: str,
) -> None:
    case_id = served.new_case()
    body = enrolment(served.keyring.case_code(case_id, department), **record)
    response = served.post(f"/v1/records/{record_type}", body, department)
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert error["field"] == field
    assert error["code"] == ("unknown_record_type" if status == 404 else "invalid_value")
    assert SECRET not in response.text
    assert "(" in error["message"] or ":" in error["message"]  # says what to do
    assert served.rows(case_id) == []


def test_the_route_is_documented(served: Served) -> None:
    document = served.client.get("/openapi.json").json()
    operation = document["paths"]["/v1/records/{record_type}"]["post"]
    assert set(operation["responses"]) >= {"202", "404", "422"}
    schema = document["components"]["schemas"]["RecordIn"]
    assert {"message_id", "case_code", "referral_key", "record"} <= set(schema["properties"])
