"""A Primero that cannot be reached at all fails at once, naming the URL; one that went away
after answering (a restart) is retried. Real sockets on 127.0.0.1, no mocks."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from adapter.errors import PrimeroTimeout, PrimeroUnreachable
from adapter.primero import PrimeroClient
from tests.support.servers import free_port

CASE_ID = "6f1c2b9e-3a4d-4e5f-8a9b-0c1d2e3f4a5b"


class _Case(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        body = json.dumps({"data": {"id": CASE_ID}}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def primero_that_stops() -> Iterator[tuple[str, ThreadingHTTPServer]]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Case)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", server
    finally:
        server.shutdown()
        server.server_close()


def client(url: str, sleeps: list[float]) -> PrimeroClient:
    return PrimeroClient(url, username="svc", password="pw", max_retries=4, sleep=sleeps.append)


def test_a_refused_first_connection_fails_at_once_naming_the_url() -> None:
    url = f"http://127.0.0.1:{free_port()}"
    sleeps: list[float] = []
    started = time.monotonic()
    with pytest.raises(PrimeroUnreachable) as caught:
        client(url, sleeps).get_case(CASE_ID)
    assert sleeps == [] and time.monotonic() - started < 2
    message = str(caught.value)
    assert f"GET {url}/api/v2/cases/:id: connection refused" in message
    assert "primero.url" in message and "\n" not in message


def test_a_host_that_does_not_resolve_fails_at_once() -> None:
    sleeps: list[float] = []
    with pytest.raises(PrimeroUnreachable, match=r"https://primero\.invalid/api/v2/cases.*resolve"):
        client("https://primero.invalid", sleeps).get_case(CASE_ID)
    assert sleeps == []


def test_credentials_in_the_url_are_never_printed() -> None:
    url = f"http://svc:s3cret@127.0.0.1:{free_port()}"
    with pytest.raises(PrimeroUnreachable) as caught:
        client(url, []).get_case(CASE_ID)
    assert "s3cret" not in str(caught.value) and "svc:" not in str(caught.value)


def test_a_primero_that_answered_and_then_refuses_is_retried(
    primero_that_stops: tuple[str, ThreadingHTTPServer],
) -> None:
    url, server = primero_that_stops
    sleeps: list[float] = []
    primero = client(url, sleeps)
    assert primero.get_case(CASE_ID) == {"id": CASE_ID}
    server.shutdown()
    server.server_close()  # now refused: Primero restarting, not a wrong URL

    with pytest.raises(PrimeroTimeout) as caught:
        primero.get_case(CASE_ID)

    assert not isinstance(caught.value, PrimeroUnreachable)
    assert len(sleeps) == 4  # every retry of the policy was spent
    assert url in str(caught.value)
