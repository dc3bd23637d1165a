"""A real FHIR R4 server for the demo and tests: sekmet-fhir 0.1.1 (departments.md §2) on 127.0.0.1.

Sekmet runs from its own venv (``scripts/install-fhir-server``, run here on first use) so its
dependencies never meet the adapter's. Each server gets a settings file, a SQLite database and a
working directory inside a temp dir, a free loopback port, and is stopped by PID.

Safety of the settings written here, checked against ``sekmet/config.py``:
- ``host`` defaults to 0.0.0.0 there: we bind 127.0.0.1 and pass ``--host`` too.
- ``base_url`` defaults to localhost:8090 and is what sekmet writes into ``link[next]`` and
  ``Location``: it must name our port or paging walks off to another server.
- ``simulator.enabled`` defaults to true (it would answer our Tasks by itself): off.
- No ``peers``, no ``Subscription`` resources, no ``validator_jar`` and no SMART clients: those are
  the only code paths in sekmet that make outbound HTTP calls (subscriptions/engine.py,
  auth/server.py JWKS fetch), so the server never reaches the network.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]  # the source checkout (scripts/ lives there)
INSTALL_SCRIPT = ROOT / "scripts" / "install-fhir-server"
STARTUP_TIMEOUT = 60.0


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def fhir_venv() -> Path:
    """Where sekmet is installed: $CPIMS_ADAPTER_FHIR_VENV or .venv-fhir in the repo."""
    return Path(os.environ.get("CPIMS_ADAPTER_FHIR_VENV") or ROOT / ".venv-fhir")


def sekmet_executable() -> Path:
    """The ``sekmet`` command, installed first when missing (the script is idempotent)."""
    exe = fhir_venv() / "bin" / "sekmet"
    if exe.exists() and (fhir_venv() / ".cpims-installed").exists():
        return exe
    done = subprocess.run(
        [str(INSTALL_SCRIPT)], check=True, stdout=subprocess.PIPE, text=True, timeout=600
    )
    return Path(done.stdout.strip().splitlines()[-1])


@dataclass
class FhirServer:
    """A running sekmet process; ``base_url`` ends in ``/fhir``."""

    port: int
    workdir: Path
    process: subprocess.Popen[bytes]
    log_path: Path
    settings: dict[str, Any] = field(default_factory=dict)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/fhir"

    def log_tail(self, chars: int = 4000) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-chars:]
        except OSError:
            return ""

    def stop(self) -> None:
        """SIGTERM the server's PID (uvicorn shuts down cleanly), SIGKILL if it lingers."""
        if self.process.poll() is None:
            try:
                os.kill(self.process.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.kill(self.process.pid, signal.SIGKILL)
                self.process.wait()

    def cleanup(self) -> None:
        self.stop()
        shutil.rmtree(self.workdir, ignore_errors=True)


def _settings(port: int, workdir: Path, server_auth: dict[str, Any] | None) -> dict[str, Any]:
    return {
        "host": "127.0.0.1",
        "port": port,
        "base_url": f"http://127.0.0.1:{port}/fhir",
        "public_url": f"http://127.0.0.1:{port}",
        "data_dir": str(workdir / "data"),
        "db_path": str(workdir / "data" / "sekmet.db"),
        "own_private_key_path": str(workdir / "keys" / "sekmet_private.pem"),
        "simulator": {"enabled": False},
        "peers": {},
        "validation": {"inbound": "strict", "validator_jar": None},
        "server_auth": server_auth or {"types": ["none"]},
        # The traffic log stores every request body; nothing reads it in our tests.
        "log_inbound": False,
    }


def start_fhir_server(
    tmp_dir: Path | str | None = None, *, server_auth: dict[str, Any] | None = None
) -> FhirServer:
    """Start sekmet on a free 127.0.0.1 port and wait until ``GET /fhir/metadata`` answers 200.

    ``tmp_dir`` holds the settings, database and logs (a new temp dir when None). ``server_auth``
    is sekmet's ``server_auth`` block, e.g. ``{"types": ["bearer"], "tokens": ["t"]}``.
    """
    exe = sekmet_executable()
    workdir = Path(tempfile.mkdtemp(prefix="sekmet-", dir=tmp_dir))
    port = free_port()
    settings = _settings(port, workdir, server_auth)
    config = workdir / "settings.yaml"
    # JSON is YAML: no need for a YAML writer in the adapter's venv.
    config.write_text(json.dumps(settings, indent=2))
    env = {k: v for k, v in os.environ.items() if not k.startswith("SEKMET_")}
    env["SEKMET_CONFIG"] = str(config)
    log_path = workdir / "server.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [
                str(exe),
                "serve",
                "--config",
                str(config),
                "--host",
                "127.0.0.1",
                "--port",
                str(port),
            ],
            cwd=workdir,  # sekmet resolves relative paths (reports/, keys/) from here
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    server = FhirServer(port, workdir, process, log_path, settings)
    try:
        _wait_ready(server)
    except Exception:
        server.cleanup()
        raise
    return server


def _wait_ready(server: FhirServer) -> None:
    deadline = time.monotonic() + STARTUP_TIMEOUT
    url = f"{server.base_url}/metadata"
    while True:
        if server.process.poll() is not None:
            raise RuntimeError(
                f"sekmet exited with {server.process.returncode}:\n{server.log_tail()}"
            )
        try:
            with urllib.request.urlopen(url, timeout=2) as answer:  # noqa: S310 - http://127.0.0.1 only
                if answer.status == 200:
                    return
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            pass
        if time.monotonic() > deadline:
            raise TimeoutError(
                f"sekmet did not answer {url} in {STARTUP_TIMEOUT}s:\n{server.log_tail()}"
            )
        time.sleep(0.1)
