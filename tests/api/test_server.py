"""The API on a real uvicorn server on 127.0.0.1: plain HTTP, mutual TLS, and the CLI command."""

from __future__ import annotations

import base64
import os
import secrets
import signal
import socket
import ssl
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from adapter.api import ApiSettings
from adapter.api.server import ApiServer
from adapter.errors import ConfigError
from adapter.primero import PrimeroClient
from adapter.privacy import KeyRing
from adapter.simulator.primero import PrimeroSimulator
from adapter.state import StateStore
from tests.api.certs import TestCA
from tests.api.conftest import (
    DEPARTMENTS,
    KEYS,
    api_settings,
    fir_body,
    make_app,
    referral_body,
    settings_for,
    sha256,
)

POLICE_SUBJECT = "CN=police-gateway,O=Sindh Police,C=PK"
ROOT = Path(__file__).resolve().parents[2]


def serve(
    sim: PrimeroSimulator, tmp_path: Path, api: ApiSettings | None = None, **departments: Any
) -> tuple[ApiServer, StateStore, KeyRing]:
    kek = secrets.token_bytes(32)
    state_url = f"sqlite:///{tmp_path}/state.sqlite3"
    store = StateStore(state_url)
    keyring = KeyRing.init(store, kek, DEPARTMENTS)
    settings = settings_for(sim.url, state_url, kek, **departments)
    app = make_app(
        settings,
        store,
        keyring,
        lambda: PrimeroClient.from_settings(settings.primero),
        **(api.model_dump() if api else {}),
    )
    return ApiServer(app, api or api_settings()), store, keyring


@pytest.fixture
def plain(sim: PrimeroSimulator, tmp_path: Path) -> Iterator[tuple[ApiServer, KeyRing]]:
    server, store, keyring = serve(sim, tmp_path)
    with server, store:
        yield server, keyring


def test_a_real_server_takes_referrals_and_refuses_oversized_bodies(
    plain: tuple[ApiServer, KeyRing],
) -> None:
    server, _ = plain
    auth = {"Authorization": f"Bearer {KEYS['police']}"}
    with httpx.Client(base_url=server.url, timeout=10) as client:
        body = referral_body()
        first = client.post("/v1/referrals", json=body, headers=auth)
        assert first.status_code == 202
        again = client.post("/v1/referrals", json=body, headers=auth)
        assert again.json() == first.json() and again.headers["Idempotent-Replayed"] == "true"
        assert "/v1/fir-links" in client.get("/openapi.json").json()["paths"]
        assert client.get("/v1/health").json()["status"] == "ok"
        assert "server" not in client.get("/v1/health").headers  # no version banner

    # A client announcing 10 MB is answered 413 without the server reading it.
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
        sock.sendall(
            b"POST /v1/referrals HTTP/1.1\r\nHost: 127.0.0.1\r\n"
            + f"Authorization: Bearer {KEYS['police']}\r\n".encode()
            + b"Content-Type: application/json\r\nContent-Length: 10000000\r\n\r\n{"
        )
        head = sock.recv(4096).decode()
    assert head.startswith("HTTP/1.1 413")


@pytest.fixture
def mutual(sim: PrimeroSimulator, tmp_path: Path) -> Iterator[tuple[ApiServer, KeyRing, TestCA]]:
    ca = TestCA(tmp_path)
    served = ca.issue("127.0.0.1", "cpims-adapter", server=True)
    api = api_settings(tls_certfile=served.cert, tls_keyfile=served.key, tls_client_ca_file=ca.path)
    server, store, keyring = serve(
        sim, tmp_path, api, police={"inbound_client_cert_subjects": [POLICE_SUBJECT]}
    )
    with server, store:
        yield server, keyring, ca


def tls_client(server: ApiServer, ca: TestCA, cert: Any | None) -> httpx.Client:
    context = ssl.create_default_context(cafile=str(ca.path))
    if cert is not None:
        context.load_cert_chain(str(cert.cert), str(cert.key))
    return httpx.Client(base_url=server.url, verify=context, timeout=10)


def test_mutual_tls_identifies_the_department_by_its_certificate(
    mutual: tuple[ApiServer, KeyRing, TestCA], sim: PrimeroSimulator, tmp_path: Path
) -> None:
    server, keyring, ca = mutual
    assert server.url.startswith("https://127.0.0.1:")
    with PrimeroClient(sim.url, username="cp_worker1", password="sim-password") as cpo:
        case_id = cpo.create_case({"name": "Synthetic Child", "sex": "male", "age": 9}).id
    body = fir_body(keyring.case_code(case_id, "police"))

    police = ca.issue("police-gateway", "Sindh Police")
    with tls_client(server, ca, police) as client:
        assert client.post("/v1/fir-links", json=body).status_code == 202  # no API key needed
        # A key of another department on the same connection contradicts the certificate.
        mixed = client.post(
            "/v1/fir-links", json=fir_body(body["case_code"]), headers={"X-API-Key": KEYS["health"]}
        )
        assert mixed.status_code == 401

    stranger = ca.issue("someone-else", "Sindh Police")
    with tls_client(server, ca, stranger) as client:
        assert client.post("/v1/fir-links", json=fir_body(body["case_code"])).status_code == 401
        # A forged header cannot stand in for a certificate.
        forged = client.post(
            "/v1/fir-links",
            json=fir_body(body["case_code"]),
            headers={"X-Client-Cert-Subject": POLICE_SUBJECT, "X-SSL-Client-S-DN": POLICE_SUBJECT},
        )
        assert forged.status_code == 401

    with tls_client(server, ca, None) as client, pytest.raises(httpx.TransportError):
        client.get("/v1/health")  # the handshake itself fails without a client certificate

    (tmp_path / "other").mkdir()
    other_ca = TestCA(tmp_path / "other", name="Other CA")
    outsider = other_ca.issue("police-gateway-2", "Sindh Police")
    with tls_client(server, ca, outsider) as client, pytest.raises(httpx.TransportError):
        client.get("/v1/health")


def test_serving_off_loopback_without_tls_is_refused(plain: tuple[ApiServer, KeyRing]) -> None:
    server, _ = plain
    with pytest.raises(ConfigError, match="TLS is off"):
        ApiServer(server.app, api_settings(), host="0.0.0.0")


def test_the_serve_command_prints_where_the_openapi_is(
    sim: PrimeroSimulator, tmp_path: Path
) -> None:
    kek = secrets.token_bytes(32)
    state_url = f"sqlite:///{tmp_path}/state.sqlite3"
    with StateStore(state_url) as store:
        KeyRing.init(store, kek, DEPARTMENTS)
    config = tmp_path / "adapter.toml"
    config.write_text(
        f'[primero]\nurl = "{sim.url}"\nusername = "cpims-adapter"\n\n'
        f'[state]\nurl = "{state_url}"\n\n'
        '[departments.police]\nconnector = "rest"\nbase_url = "http://127.0.0.1:9"\n'
        f'inbound_api_key_sha256 = ["{sha256(KEYS["police"])}"]\n',
        encoding="utf-8",
    )
    env = {
        **os.environ,
        "CPIMS_ADAPTER_CONFIG": str(config),
        "CPIMS_ADAPTER_PRIVACY__KEK": base64.b64encode(kek).decode(),
        "CPIMS_ADAPTER_PRIMERO__PASSWORD": "sim-password",
    }
    script = (
        "import sys; from adapter.cli import main, app; from adapter.cli._serve import register; "
        "register(app) if not any(c.name == 'serve' for c in app.registered_commands) else None; "
        "sys.exit(main())"
    )
    process = subprocess.Popen(
        [sys.executable, "-c", script, "serve", "--port", "0"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
        cwd=ROOT,
    )
    try:
        assert process.stdout is not None
        line = process.stdout.readline()
        assert "Inbound API on http://127.0.0.1:" in line and "/openapi.json" in line
        url = line.split("OpenAPI at ")[1].strip()
        spec = httpx.get(url, timeout=10).json()
        assert "/v1/referrals" in spec["paths"]
        answer = httpx.post(
            url.replace("/openapi.json", "/v1/referrals"),
            json=referral_body(),
            headers={"X-API-Key": KEYS["police"]},
            timeout=10,
        )
        assert answer.status_code == 202
    finally:
        os.kill(process.pid, signal.SIGTERM)
        _, stderr = process.communicate(timeout=20)
    assert process.returncode == 0
    assert "Traceback" not in stderr
