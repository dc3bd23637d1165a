"""The operations endpoint on a real port: /healthz, /readyz, /metrics — and 503 when the
state store is gone."""

from __future__ import annotations

import secrets
import shutil
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest
import requests
import sqlalchemy as sa
import uvicorn

from adapter.ops.endpoint import create_ops_app
from adapter.privacy import KeyRing
from adapter.serving import BackgroundServer, bind
from adapter.simulator.departments.scenario import police_settings
from adapter.state import StateStore
from tests.support.servers import PostgresServer

KEK = secrets.token_bytes(32)

Serve = Callable[..., str]


@pytest.fixture
def serve(store: StateStore) -> Iterator[Serve]:
    """Start the endpoint for ``store`` on a free port; returns its base URL."""
    servers: list[BackgroundServer] = []
    settings = police_settings(
        primero_url="http://127.0.0.1:9",
        police_url="http://127.0.0.1:9",
        state_url=store.url,
        kek=KEK,
        auth="api_key",
    )

    def start(liveness: Callable[[], Mapping[str, Any]] | None = None) -> str:
        sock = bind("127.0.0.1", 0)
        app = create_ops_app(settings, store, liveness=liveness)
        config = uvicorn.Config(app, log_level="warning", access_log=False, lifespan="off")
        server = BackgroundServer(config, sock, name="ops-test")
        server.start()
        servers.append(server)
        return f"http://127.0.0.1:{sock.getsockname()[1]}"

    yield start
    for server in servers:
        server.stop()


def test_healthy_and_ready_with_metrics(store: StateStore, serve: Serve) -> None:
    KeyRing.init(store, KEK, ["police"])
    url = serve(lambda: {"scheduler": True})

    health = requests.get(f"{url}/healthz", timeout=10)
    assert health.status_code == 200
    assert health.json() == {
        "status": "ok",
        "checks": {"state_store": True, "process": {"scheduler": True}},
    }
    ready = requests.get(f"{url}/readyz", timeout=10)
    assert ready.status_code == 200
    assert ready.json()["checks"] == {
        "state_store": True,
        "process": {"scheduler": True},
        "migrations": True,
        "keys": True,
    }
    metrics = requests.get(f"{url}/metrics", timeout=10)
    assert metrics.status_code == 200
    assert metrics.headers["content-type"].startswith("text/plain")
    assert "cpims_adapter_state_store_up 1.0" in metrics.text
    assert 'cpims_adapter_key_age_days{kind="token"} 0.0' in metrics.text
    assert 'cpims_adapter_dead_letters{destination="police"} 0.0' in metrics.text


def test_not_ready_without_keys_and_not_alive_when_the_scheduler_stopped(
    store: StateStore, serve: Serve
) -> None:
    url = serve()
    assert requests.get(f"{url}/healthz", timeout=10).status_code == 200
    ready = requests.get(f"{url}/readyz", timeout=10)
    assert ready.status_code == 503
    assert ready.json()["status"] == "unavailable"
    assert "cpims-adapter keys init" in ready.json()["checks"]["keys"]

    stopped = serve(lambda: {"scheduler": False})
    assert requests.get(f"{stopped}/healthz", timeout=10).status_code == 503
    # The daemon's own verdict ("ok") decides over its informational fields.
    daemon = serve(lambda: {"scheduler": "running", "stopping": False, "jobs": 2, "ok": True})
    assert requests.get(f"{daemon}/healthz", timeout=10).status_code == 200
    stopping = serve(lambda: {"scheduler": "running", "stopping": True, "ok": False})
    answer = requests.get(f"{stopping}/healthz", timeout=10)
    assert answer.status_code == 503 and answer.json()["checks"]["process"]["stopping"] is True

    def broken() -> Mapping[str, Any]:
        raise RuntimeError("probe failed")

    assert requests.get(f"{serve(broken)}/healthz", timeout=10).status_code == 503


def test_503_when_the_state_store_is_gone(
    store: StateStore, serve: Serve, request: pytest.FixtureRequest
) -> None:
    KeyRing.init(store, KEK, ["police"])
    url = serve()
    assert requests.get(f"{url}/healthz", timeout=10).status_code == 200

    if store.backend == "sqlite":
        shutil.rmtree(Path(sa.engine.make_url(store.url).database or "").parent)
    else:
        server: PostgresServer = request.getfixturevalue("postgres_server")
        admin = sa.create_engine(server.url(), isolation_level="AUTOCOMMIT")
        with admin.connect() as conn:
            name = sa.engine.make_url(store.url).database
            conn.execute(sa.text(f'DROP DATABASE "{name}" WITH (FORCE)'))
        admin.dispose()
    store.engine.dispose()  # pooled connections to the old file or database close

    health = requests.get(f"{url}/healthz", timeout=30)
    assert health.status_code == 503
    body = health.json()
    assert body["status"] == "unavailable"
    assert "state.url" in body["checks"]["state_store"]
    assert "Traceback" not in health.text and "sqlite" not in health.text
    assert requests.get(f"{url}/readyz", timeout=30).status_code == 503
    metrics = requests.get(f"{url}/metrics", timeout=30)
    assert metrics.status_code == 200
    assert "cpims_adapter_state_store_up 0.0" in metrics.text
