"""Long-lived HTTP sessions read the proxy and CA environment once, and still honour it.

What an operator cares about: ``HTTPS_PROXY`` / ``HTTP_PROXY`` / ``NO_PROXY`` and
``REQUESTS_CA_BUNDLE`` keep working for the Primero client and every department connector, TLS
is verified, and nothing is looked up again per request (adapter/connection.py: that lookup was
11.7% of a sync's CPU samples). Real servers on 127.0.0.1: a tiny forward proxy, and an HTTPS
server whose certificate only a test CA vouches for.
"""

from __future__ import annotations

import json
import ssl
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import requests

from adapter.config import DepartmentSettings
from adapter.connection import environment_proxies, environment_verify
from adapter.departments import FhirClient
from adapter.departments.health import HealthConnector
from adapter.departments.rest import RestConnector
from adapter.errors import Retryable
from adapter.primero import PrimeroClient
from tests.api.certs import TestCA
from tests.support.servers import free_port

_VARIABLES = (
    "HTTP_PROXY",
    "HTTPS_PROXY",
    "ALL_PROXY",
    "NO_PROXY",
    "REQUESTS_CA_BUNDLE",
    "CURL_CA_BUNDLE",
)
CAPABILITIES = {"resourceType": "CapabilityStatement", "fhirVersion": "4.0.1"}


@pytest.fixture(autouse=True)
def _clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in _VARIABLES:
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(name.lower(), raising=False)


class _Answering(BaseHTTPRequestHandler):
    """Answers every GET with a CapabilityStatement and records the request target (a proxy
    is sent the absolute URL, an origin server the path)."""

    seen: list[str]

    def do_GET(self) -> None:
        self.seen.append(self.path)
        body = json.dumps(CAPABILITIES).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/fhir+json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:  # quiet: no access log on stderr
        pass


def _serve(tls: ssl.SSLContext | None = None) -> Iterator[tuple[str, list[str]]]:
    seen: list[str] = []
    handler = type("Handler", (_Answering,), {"seen": seen})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    if tls is not None:
        server.socket = tls.wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        scheme = "https" if tls else "http"
        yield f"{scheme}://127.0.0.1:{server.server_address[1]}", seen
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture
def proxy() -> Iterator[tuple[str, list[str]]]:
    yield from _serve()


@pytest.fixture
def tls_server(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    ca = TestCA(tmp_path)
    issued = ca.issue("127.0.0.1", "hospital", server=True)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(issued.cert, issued.key)
    for url, _seen in _serve(context):
        yield url, ca.path


def test_a_proxy_in_the_environment_carries_the_fhir_calls(
    monkeypatch: pytest.MonkeyPatch, proxy: tuple[str, list[str]]
) -> None:
    proxy_url, seen = proxy
    monkeypatch.setenv("HTTP_PROXY", proxy_url)
    # fhir.invalid does not resolve (RFC 2606): only the proxy can have answered.
    with FhirClient("http://fhir.invalid/fhir") as client:
        monkeypatch.delenv("HTTP_PROXY")  # read once, when the client was built
        assert client.capability_statement() == CAPABILITIES
        assert client.capability_statement() == CAPABILITIES
    assert seen == ["http://fhir.invalid/fhir/metadata"] * 2


def test_no_proxy_sends_an_origin_direct(
    monkeypatch: pytest.MonkeyPatch, proxy: tuple[str, list[str]]
) -> None:
    server_url, seen = proxy  # here it is the FHIR server itself
    monkeypatch.setenv("HTTP_PROXY", f"http://127.0.0.1:{free_port()}")  # nothing listens
    monkeypatch.setenv("NO_PROXY", "127.0.0.1")
    with FhirClient(f"{server_url}/fhir") as client:
        assert client.capability_statement() == CAPABILITIES
    assert seen == ["/fhir/metadata"]
    assert environment_proxies(server_url) == {}


def test_tls_is_verified_against_the_environments_ca_bundle(
    monkeypatch: pytest.MonkeyPatch, tls_server: tuple[str, Path]
) -> None:
    url, ca = tls_server
    with FhirClient(f"{url}/fhir") as client:  # the system's CAs do not know this server
        with pytest.raises(Retryable, match="TLS verification failed"):
            client.capability_statement()
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(ca))
    with FhirClient(f"{url}/fhir") as client:
        assert client.capability_statement() == CAPABILITIES


def test_verification_is_never_turned_off_by_the_environment(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    assert environment_verify(True) is True
    monkeypatch.setenv("CURL_CA_BUNDLE", str(tmp_path / "ca.pem"))
    assert environment_verify(True) == str(tmp_path / "ca.pem")
    assert environment_verify("/etc/site-ca.pem") == "/etc/site-ca.pem"  # configured wins
    assert environment_verify(False) is False  # only the configuration turns it off


def _session_of(client: Any) -> requests.Session:
    for path in (("_transport", "session"), ("client", "_session"), ("session",)):
        found = client
        try:
            for name in path:
                found = getattr(found, name)
        except AttributeError:
            continue
        assert isinstance(found, requests.Session)
        return found
    raise AssertionError("no session found")


def test_every_long_lived_client_resolves_the_environment_at_start(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("HTTPS_PROXY", "http://proxy.site:3128")
    monkeypatch.setenv("NO_PROXY", "token.site")
    settings = DepartmentSettings(
        connector="rest",
        base_url="https://api.site/v1",
        auth="oauth2",
        token_url="https://token.site/oauth/token",
        client_id="adapter",
        client_secret="s3cret",
    )
    mapping: Any = None  # from_settings only stores it
    clients = [
        PrimeroClient("https://primero.site", auth="basic", username="u", password="p"),
        HealthConnector.from_settings(
            "health",
            DepartmentSettings(base_url="https://fhir.site/fhir", organization="dhq-1"),
        ),
        RestConnector.from_settings("police", settings, mapping),
    ]
    expected = [
        {"https://primero.site": "http://proxy.site:3128"},
        {"https://fhir.site": "http://proxy.site:3128"},
        {"https://api.site": "http://proxy.site:3128"},  # the token endpoint is in NO_PROXY
    ]
    for client, proxies in zip(clients, expected, strict=True):
        session = _session_of(client)
        assert session.trust_env is False
        assert session.proxies == proxies
        client.close()


THREADS = 16  # more than urllib3's default pool of 10


class _KeepAlive(_Answering):
    """HTTP/1.1 with keep-alive; each request waits until THREADS are in flight, so every
    round really is THREADS concurrent requests. Records the client's port per request."""

    protocol_version = "HTTP/1.1"
    barrier = threading.Barrier(THREADS, timeout=10)
    ports: list[int]

    def do_GET(self) -> None:
        self.ports.append(self.client_address[1])
        self.barrier.wait()
        super().do_GET()


def test_connections_are_kept_for_every_thread_that_shares_a_client() -> None:
    """No "Connection pool is full, discarding connection": the second round of THREADS
    concurrent calls reuses the first round's connections instead of opening new ones."""
    ports: list[int] = []
    handler = type("Handler", (_KeepAlive,), {"seen": [], "ports": ports})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        with FhirClient(f"http://127.0.0.1:{server.server_address[1]}/fhir") as client:
            for _round in range(2):
                calls = [
                    threading.Thread(target=client.capability_statement) for _ in range(THREADS)
                ]
                for call in calls:
                    call.start()
                for call in calls:
                    call.join()
    finally:
        server.shutdown()
        server.server_close()
    assert len(ports) == 2 * THREADS
    assert len(set(ports)) == THREADS
