"""Helpers shared by the simulator tests (kept out of conftest so they can be imported)."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import requests

from adapter.simulator.primero import PrimeroSimulator

PASSWORD = "sim-password"
ADAPTER = ("cpims-adapter", PASSWORD)
ADMIN = ("primero_admin", PASSWORD)


def url(sim: PrimeroSimulator, path: str) -> str:
    """Absolute URL on the simulator."""
    return sim.url + path


def new_case(api: requests.Session, sim: PrimeroSimulator, **fields: Any) -> dict[str, Any]:
    """Create a CP case with consent given and return the response data."""
    data = {
        "name": "Test Child",
        "age": 12,
        "sex": "female",
        "consent_for_services": True,
        "disclosure_other_orgs": True,
        "module_id": "primeromodule-cp",
    }
    data.update(fields)
    response = api.post(url(sim, "/api/v2/cases"), json={"data": data}, timeout=5)
    assert response.status_code == 200, response.text
    return dict(response.json()["data"])


def wait_for(condition: Callable[[], Any], timeout: float = 5.0) -> Any:
    """Poll until condition() is truthy; return its value."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.02)
    raise AssertionError("condition not met in time")


class Receiver:
    """Records JSON POSTs; answers with `status`."""

    def __init__(self) -> None:
        self.posts: list[dict[str, Any]] = []
        self.status = 200
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("content-length") or 0)
                body = json.loads(self.rfile.read(length) or b"null")
                receiver.posts.append(
                    {"path": self.path, "body": body, "headers": dict(self.headers)}
                )
                self.send_response(receiver.status)
                self.send_header("content-length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> Receiver:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=5)
