"""A department that answers instantly, and the connector that posts documents to it.

The sink is a stdlib ``ThreadingHTTPServer`` (HTTP/1.1 keep-alive) that reads each POST body and
answers ``201 {"id": n}`` in a single write with ``TCP_NODELAY`` set — without that, Nagle and
delayed ACKs cost ~40 ms a request on loopback (architecture.md §4, "harness gotcha"). It counts
the documents and bytes it took (``GET /_stats``, ``POST /_reset``), so a benchmark can check that
the engine and its baseline sent the same number of requests.

Run as a program it serves in its own process and prints ``READY <url>``::

    .venv/bin/python benchmarks/_sink.py [--port 0]

``SinkConnector`` is the smallest ``adapter.departments.base.Connector``: it posts each document
as JSON and reports no status changes, so a sync run measures the engine, not a FHIR server.
"""

from __future__ import annotations

import argparse
import json
import socket
import sys
import threading
from collections.abc import Iterator, Mapping
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import requests
from requests.adapters import HTTPAdapter

from adapter.departments.base import Delivery
from adapter.mappings.vocabulary import StatusUpdate


class _Counts:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.posts = 0
        self.bytes = 0


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    counts = _Counts()

    def setup(self) -> None:
        super().setup()
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def _answer(self, status: int, body: bytes) -> None:
        head = (
            f"HTTP/1.1 {status} OK\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\n\r\n"
        ).encode()
        self.wfile.write(head + body)  # one write: no Nagle stall

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        if self.path == "/_reset":
            with self.counts.lock:
                self.counts.posts = self.counts.bytes = 0
            self._answer(200, b"{}")
            return
        with self.counts.lock:
            self.counts.posts += 1
            self.counts.bytes += len(body)
            number = self.counts.posts
        self._answer(201, b'{"id":"%d"}' % number)

    def do_GET(self) -> None:
        with self.counts.lock:
            stats = {"posts": self.counts.posts, "bytes": self.counts.bytes}
        self._answer(200, json.dumps(stats).encode())

    def log_message(self, format: str, *args: Any) -> None:
        pass


def serve(port: int = 0) -> None:
    """Serve until killed, after printing ``READY <url>``."""
    server = ThreadingHTTPServer(("127.0.0.1", port), _Handler)
    server.daemon_threads = True
    print(f"READY http://127.0.0.1:{server.server_address[1]}", flush=True)
    server.serve_forever()


def new_session(pool: int = 16) -> requests.Session:
    """A keep-alive session with room for every delivery thread (urllib3 keeps 10 by default)."""
    session = requests.Session()
    adapter = HTTPAdapter(pool_connections=1, pool_maxsize=pool)
    session.mount("http://", adapter)
    return session


def sink_stats(url: str) -> dict[str, int]:
    """What the sink took since its last reset."""
    with requests.get(f"{url}/_stats", timeout=10) as answer:
        answer.raise_for_status()
        stats: dict[str, int] = answer.json()
        return stats


def reset_sink(url: str) -> None:
    """Zero the sink's counters."""
    requests.post(f"{url}/_reset", timeout=10).raise_for_status()


class SinkConnector:
    """Posts every document, whatever its kind, to ``<url>/<kind>``; no statuses come back."""

    def __init__(self, department: str, url: str) -> None:
        self.department = department
        self.url = url
        self.session = new_session()

    def deliver(self, kind: str, document: Mapping[str, Any], *, idempotency_key: str) -> Delivery:
        answer = self.session.post(
            f"{self.url}/{kind}",
            data=json.dumps(document, separators=(",", ":")),
            headers={"Content-Type": "application/json", "Idempotency-Key": idempotency_key},
            timeout=30,
        )
        answer.raise_for_status()
        return Delivery(f"Task/{answer.json()['id']}")

    def status_updates(self, since: str | None) -> Iterator[tuple[StatusUpdate, str]]:
        return iter(())

    def close(self) -> None:
        self.session.close()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description="A loopback department that answers at once.")
    parser.add_argument("--port", type=int, default=0)
    serve(parser.parse_args().port)
