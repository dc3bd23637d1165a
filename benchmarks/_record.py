"""Run a ``cpims-adapter`` command with every HTTP request it makes recorded (only the
recording run uses this; timed runs start the console script itself, unwrapped)::

    .venv/bin/python benchmarks/_record.py RECORDING.jsonl -- sync health

Every request that goes through urllib3 (``requests`` hands each prepared request to
``HTTPConnectionPool.urlopen``; code using urllib3's pools directly goes through it too) is
written in the order it was sent: method, full URL, headers, the body's exact bytes (base64)
and the status answered. What is recorded is what went on the wire, less the ``Host`` and
framing headers http.client adds. The harness checks the recording against the Primero
simulator's own request counts, so a request made some other way would not go unnoticed.
"""

from __future__ import annotations

import atexit
import base64
import json
import sys
import threading
from pathlib import Path
from typing import Any

import urllib3.connectionpool

_lock = threading.Lock()
_recorded: list[dict[str, Any]] = []


def _body(body: Any) -> bytes:
    if body is None:
        return b""
    if isinstance(body, str):
        return body.encode("utf-8")
    if isinstance(body, bytes | bytearray):
        return bytes(body)
    raise TypeError(f"cannot record a streamed request body ({type(body).__name__})")


def install(path: Path) -> None:
    pool = urllib3.connectionpool.HTTPConnectionPool
    original = pool.urlopen

    def urlopen(
        self: urllib3.connectionpool.HTTPConnectionPool,
        method: str,
        url: str,
        body: Any = None,
        headers: Any = None,
        *args: Any,
        **kwargs: Any,
    ) -> Any:
        full = f"{self.scheme}://{self.host}:{self.port}{url}" if url.startswith("/") else url
        entry = {
            "method": method,
            "url": full,
            "headers": dict(headers or {}),
            "body": base64.b64encode(_body(body)).decode("ascii"),
            "status": None,
        }
        with _lock:
            _recorded.append(entry)
        response = original(self, method, url, body, headers, *args, **kwargs)
        entry["status"] = response.status
        return response

    pool.urlopen = urlopen  # type: ignore[method-assign]

    def write() -> None:
        with path.open("w") as out:
            for entry in _recorded:
                out.write(json.dumps(entry) + "\n")

    atexit.register(write)


def main() -> None:
    if len(sys.argv) < 3 or sys.argv[2] != "--":
        sys.exit("usage: _record.py RECORDING.jsonl -- CPIMS-ADAPTER-ARGS...")
    install(Path(sys.argv[1]))
    from adapter.cli import main as cli

    sys.argv = ["cpims-adapter", *sys.argv[3:]]
    sys.exit(cli())


if __name__ == "__main__":
    main()
