"""The registry over HTTP, on a real uvicorn server on 127.0.0.1 (issue 6 item 2, 4)."""

from __future__ import annotations

import threading
from collections.abc import Iterator

import httpx
import pytest
import uvicorn

from adapter.registry import Establishment, Outcome, Registry
from adapter.registry.api import create_app
from tests.registry.conftest import CNIC, NOW, OFFICER, order, request
from tests.support.servers import free_port


@pytest.fixture
def server(registry: Registry) -> Iterator[str]:
    config = uvicorn.Config(
        create_app(registry), host="127.0.0.1", port=free_port(), log_level="warning"
    )
    running = uvicorn.Server(config)
    thread = threading.Thread(target=running.run, daemon=True)
    thread.start()
    while not running.started:
        thread.join(0.02)
    try:
        yield f"http://127.0.0.1:{config.port}"
    finally:
        running.should_exit = True
        thread.join(10)


def client_for(
    server: str, registry: Registry, number: str = "API-001", **quota: int
) -> httpx.Client:
    _, key = registry.add_establishment(
        number,
        "API School",
        (("Amina Khan", "amina@school.example"), ("Bilal Shah", "bilal@school.example")),
        registered_by=OFFICER,
        daily_quota=quota.get("daily", 50),
        monthly_quota=quota.get("monthly", 500),
    )
    return httpx.Client(base_url=server, headers={"Authorization": f"Bearer {key}"}, timeout=10)


def body(**fields: str) -> dict[str, str]:
    return request(**fields).model_dump(mode="json") | {k: v for k, v in fields.items()}


def test_every_outcome_has_the_same_size_and_is_never_cached(
    server: str, registry: Registry
) -> None:
    registry.ingest_conviction(order(), now=NOW)
    with client_for(server, registry) as client:
        responses = {
            "DO_NOT_ENGAGE": client.post("/v1/registry/checks", json=body()),
            "PENDING_REVIEW": client.post("/v1/registry/checks", json=body(full_name="Ahmed Raza")),
            "CLEAR": client.post(
                "/v1/registry/checks", json=body(cnic="42101-7654321-3", full_name="Bilal Ahmed")
            ),
        }
        for status, response in responses.items():
            assert response.status_code == 200
            assert response.json()["status"] == status
            assert response.headers["cache-control"] == "no-store"
        assert len({r.headers["content-length"] for r in responses.values()}) == 1
        ref = responses["PENDING_REVIEW"].json()["check_ref"]
        registry.resolve(ref, Outcome.CLEAR, OFFICER)
        later = client.get(f"/v1/registry/checks/{ref}")
        assert later.json()["status"] == "CLEAR"
        assert len(later.content) == len(responses["CLEAR"].content)


def test_authentication_and_errors_never_echo_input(server: str, registry: Registry) -> None:
    with httpx.Client(base_url=server, timeout=10) as anonymous:
        assert anonymous.post("/v1/registry/checks", json=body()).status_code == 401
        wrong = anonymous.post(
            "/v1/registry/checks", json=body(), headers={"Authorization": "Bearer cpr1_nope"}
        )
        assert wrong.status_code == 401
    with client_for(server, registry) as client:
        bad = client.post(
            "/v1/registry/checks", json={"cnic": "35202-12345A7-1", "full_name": "Zorawar Khan"}
        )
        assert bad.status_code == 422
        assert "12345A7" not in bad.text and "Zorawar" not in bad.text
        fields = {p["field"] for p in bad.json()["problems"]}
        assert {"cnic", "father_name", "date_of_birth", "consent_ref"} <= fields
        huge = client.post("/v1/registry/checks", content=b"{" + b" " * 10_000 + b"}")
        assert huge.status_code == 413
        assert client.post("/v1/registry/checks", content=b"not json").status_code == 422
        assert client.get("/v1/registry/checks/RC-0000000000000000").status_code == 404


def test_consent_reuse_and_quota(server: str, registry: Registry) -> None:
    with client_for(server, registry, daily=2) as client:
        first = body(cnic="42101-7654321-3")
        assert client.post("/v1/registry/checks", json=first).status_code == 200
        again = client.post("/v1/registry/checks", json={**first, "cnic": "61101-7777777-5"})
        assert again.status_code == 409 and again.json()["error"] == "consent_reused"
        over = client.post("/v1/registry/checks", json=body(cnic="13101-1234567-9"))
        assert over.status_code == 429 and int(over.headers["retry-after"]) > 0


def test_monitoring_registration_over_http(server: str, registry: Registry) -> None:
    with client_for(server, registry) as client:
        made = client.post("/v1/registry/checks", json=body()).json()
        worker = {
            "check_ref": made["check_ref"],
            "cnic": CNIC,
            "full_name": "Muhammad Ali",
            "father_name": "Muhammad Aslam",
            "date_of_birth": "1990-05-01",
        }
        created = client.post("/v1/registry/workers", json=worker)
        assert created.status_code == 201
        ref = created.json()["worker_ref"]
        assert client.delete(f"/v1/registry/workers/{ref}").status_code == 204
        assert client.delete(f"/v1/registry/workers/{ref}").status_code == 404


def test_locked_establishment_gets_403(
    server: str, registry: Registry, school: Establishment
) -> None:
    with client_for(server, registry) as client:
        for serial in range(3):
            client.post("/v1/registry/checks", json=body(cnic=f"35202-765432{serial}-1"))
        locked = client.post("/v1/registry/checks", json=body(cnic="61101-7777777-5"))
        assert locked.status_code == 403 and locked.json()["error"] == "locked"
