"""Run a ``cpims-adapter`` command with every HTTP request it makes recorded (only the
recording run uses this; timed runs start the console script itself, unwrapped)::

    .venv/bin/python benchmarks/_record.py RECORDING.jsonl -- sync health

Every request that goes through ``requests`` (the adapter's only HTTP client: Primero, FHIR
and REST departments) is written in the order it was sent: method, URL, the prepared headers,
the body's exact bytes (base64) and the status answered. ``HTTPAdapter.send`` is where
``requests`` hands a finished ``PreparedRequest`` to urllib3, so what is recorded is what went
on the wire (less the ``Host`` and framing headers http.client adds). The harness checks the
recording against the Primero simulator's own request counts, so a request made some other way
would not go unnoticed.
"""

from __future__ import annotations

import atexit
import base64
import json
import sys
import threading
from pathlib import Path
from typing import Any

import requests.adapters

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
    original = requests.adapters.HTTPAdapter.send

    def send(self: requests.adapters.HTTPAdapter, request: Any, *args: Any, **kwargs: Any) -> Any:
        entry = {
            "method": request.method,
            "url": request.url,
            "headers": dict(request.headers),
            "body": base64.b64encode(_body(request.body)).decode("ascii"),
            "status": None,
        }
        with _lock:
            _recorded.append(entry)
        response = original(self, request, *args, **kwargs)
        entry["status"] = response.status_code
        return response

    requests.adapters.HTTPAdapter.send = send  # type: ignore[method-assign]

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
