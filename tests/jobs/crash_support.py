"""A world for crash tests: `cpims-adapter sync health` as a real process, killed with SIGKILL.

The Primero simulator runs in the test process, sekmet (a real FHIR server) in its own; the
sync runs exactly as an operator runs it, from a TOML config file plus the KEK in the
environment. :class:`SyncProcesses` starts runs, kills them mid-run and always reaps them.
"""

from __future__ import annotations

import base64
import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import requests
import sqlalchemy as sa

from adapter.primero import PrimeroClient
from adapter.primero.linked_records import FORM_ID, install_forms
from adapter.privacy import KeyRing
from adapter.simulator.fhir_server import start_fhir_server
from adapter.simulator.hospital import Hospital
from adapter.simulator.primero import PrimeroSimulator
from adapter.simulator.scenario import HEALTH_AGENCY, POLICY_DIR, refer_children_to_health
from adapter.state import StateStore, schema
from adapter.state.store import normalise_url

JOB = "health"
SYNC_COMMAND = [
    sys.executable,
    "-c",
    "import sys; from adapter.cli import main; sys.exit(main())",
    "sync",
    JOB,
]
EXIT_LEASE_HELD = 75  # adapter/cli/__init__.py: another process holds the job's lease
RUN_TIMEOUT = 180.0  # seconds; a whole run of the crash world takes a few


@dataclass
class CrashWorld:
    """Everything a crash test needs, and the environment of an operator's `cpims-adapter`."""

    sim: PrimeroSimulator
    hospital: Hospital
    state_url: str
    kek: bytes
    config_path: Path
    workdir: Path
    referred: list[tuple[str, str]]

    def env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("CPIMS_ADAPTER_")}
        env["CPIMS_ADAPTER_CONFIG"] = str(self.config_path)
        env["CPIMS_ADAPTER_PRIVACY__KEK"] = base64.b64encode(self.kek).decode()
        return env


@contextmanager
def crash_world(
    tmp_path: Path, state_url: str, *, children: int, page_size: int
) -> Iterator[CrashWorld]:
    """``children`` consented cases, each referred to the hospital; keys initialised."""
    fhir = start_fhir_server(tmp_path)
    try:
        with PrimeroSimulator(cases=0) as sim, Hospital(fhir.base_url) as hospital:
            install_linked_records_form(sim)
            kek = secrets.token_bytes(32)
            with StateStore(state_url) as store:
                KeyRing.init(store, kek, [JOB])
            config = write_config(
                tmp_path / "adapter.toml",
                primero_url=sim.url,
                fhir_url=fhir.base_url,
                state_url=state_url,
                page_size=page_size,
            )
            yield CrashWorld(
                sim=sim,
                hospital=hospital,
                state_url=state_url,
                kek=kek,
                config_path=config,
                workdir=tmp_path,
                referred=refer_children_to_health(sim.url, children),
            )
    finally:
        fhir.cleanup()


def install_linked_records_form(sim: PrimeroSimulator) -> None:
    """What an administrator does once: install the form, grant it to the adapter's role."""
    with PrimeroClient(
        sim.url, auth="basic", username="primero_admin", password="sim-password"
    ) as admin:
        install_forms(admin)
    answer = requests.put(
        f"{sim.url}/_sim/roles/role-integration/forms", json={"forms": {FORM_ID: "rw"}}, timeout=10
    )
    answer.raise_for_status()


def write_config(
    path: Path, *, primero_url: str, fhir_url: str, state_url: str, page_size: int
) -> Path:
    """An operator's config file (config/adapter.example.toml), every other key at its
    default. Small pages make many page transactions for a kill to land between."""
    sections: dict[str, dict[str, Any]] = {
        "primero": {
            "url": primero_url,
            "username": "cpims-adapter",
            "password": "sim-password",
            "page_size": page_size,
        },
        "state": {"url": state_url},
        "sync": {"lag_seconds": 0},
        "privacy": {"policy_dir": str(POLICY_DIR)},
        "departments.health": {"base_url": fhir_url, "organization": "civil-hospital-karachi"},
        "jobs.health": {
            "department": "health",
            "agencies": [HEALTH_AGENCY],
            "gateway_users": ["health_gateway"],
            "services": ["health_medical_service", "psychosocial_service"],
            "requester_organization": "child-protection-unit-sindh",
        },
    }
    lines: list[str] = []
    for name, values in sections.items():
        lines.append(f"[{name}]")
        # A JSON string or list of strings is a valid TOML value.
        lines.extend(f"{key} = {json.dumps(value)}" for key, value in values.items())
        lines.append("")
    path.write_text("\n".join(lines), encoding="utf-8")
    return path


# The stages of a run, in order, as the state store shows them (see Progress.stage_reached).
STARTING, PULLING, DELIVERING, WRITING_BACK = (
    "start-up or first page",
    "pull and planning",
    "delivery",
    "write-back",
)
STAGES = (STARTING, PULLING, DELIVERING, WRITING_BACK)


@dataclass(frozen=True)
class Progress:
    """What the state store shows of a run's work: enough to tell where a kill landed."""

    cases_cursor: str | None
    sent: Counter[str]  # outbox rows sent, by destination
    pending: Counter[str]  # outbox rows pending, by destination

    def stage_reached(self, before: Progress) -> str:
        """The last stage a run has committed anything in since ``before``."""
        if self.sent["primero"] > before.sent["primero"]:
            return WRITING_BACK
        if self.sent[JOB] > before.sent[JOB]:
            return DELIVERING
        if self.cases_cursor != before.cases_cursor or self.pending[JOB] > before.pending[JOB]:
            return PULLING
        return STARTING


class SyncProcesses:
    """Runs `cpims-adapter sync health` as child processes of the test; never leaves one."""

    def __init__(self, world: CrashWorld) -> None:
        self.world = world
        # A plain engine for watching (no BEGIN IMMEDIATE): reading never blocks the run.
        self.observer = sa.create_engine(normalise_url(world.state_url))
        self._started = 0

    def close(self) -> None:
        self.observer.dispose()

    def run_to_end(self) -> dict[str, Any]:
        """One whole run, not killed; returns its stats as recorded in the runs table."""
        process, log = self._start()
        try:
            process.wait(timeout=RUN_TIMEOUT)
        finally:
            _reap(process)
        _expect_success(process, log)
        return self.last_run_stats()

    def kill_mid_run(self, stage: str, delay: float) -> str:
        """Start a run and SIGKILL it ``delay`` seconds after it first committed work in
        ``stage`` (``STARTING``: after it took the job's lease). Returns the last stage it
        committed work in, or "finished" if it ended before the kill.
        """
        before = self.progress()
        process, log = self._start()
        try:
            if self._wait_for_lease(process, log) and self._wait_for_stage(process, before, stage):
                time.sleep(delay)
                if process.poll() is None:
                    os.kill(process.pid, signal.SIGKILL)
                    process.wait(timeout=30)
                    return self.progress().stage_reached(before)
            process.wait(timeout=RUN_TIMEOUT)
        finally:
            _reap(process)
        _expect_success(process, log)
        return "finished"

    def _wait_for_stage(
        self, process: subprocess.Popen[bytes], before: Progress, stage: str
    ) -> bool:
        """True once the run has committed work in ``stage`` or later; False if it ended."""
        wanted = STAGES.index(stage)
        deadline = time.monotonic() + RUN_TIMEOUT
        while process.poll() is None and time.monotonic() < deadline:
            if STAGES.index(self.progress().stage_reached(before)) >= wanted:
                return True
            time.sleep(0.005)
        return False

    def _start(self) -> tuple[subprocess.Popen[bytes], Path]:
        self._started += 1
        log = self.world.workdir / f"sync-{self._started:03d}.log"
        with log.open("wb") as out:
            process = subprocess.Popen(
                SYNC_COMMAND,
                env=self.world.env(),
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        return process, log

    def _wait_for_lease(self, process: subprocess.Popen[bytes], log: Path) -> bool:
        """True once ``process`` holds the job's lease; False if it exited first."""
        prefix = f"{socket.gethostname()}:{process.pid}:"
        query = sa.select(schema.leases.c.owner).where(schema.leases.c.name == f"job:{JOB}")
        deadline = time.monotonic() + RUN_TIMEOUT
        while time.monotonic() < deadline:
            if process.poll() is not None:
                return False
            with self.observer.connect() as conn:
                owner = conn.execute(query).scalar()
            if owner and owner.startswith(prefix):
                return True
            time.sleep(0.005)
        raise AssertionError(f"sync took no lease in {RUN_TIMEOUT}s:\n{_tail(log)}")

    def progress(self) -> Progress:
        outbox = schema.outbox
        with self.observer.connect() as conn:
            cursor = conn.execute(
                sa.select(schema.cursors.c.value).where(
                    schema.cursors.c.job == JOB, schema.cursors.c.stream == "cases"
                )
            ).scalar()
            rows = conn.execute(
                sa.select(outbox.c.destination, outbox.c.status, sa.func.count()).group_by(
                    outbox.c.destination, outbox.c.status
                )
            ).all()
        sent: Counter[str] = Counter()
        pending: Counter[str] = Counter()
        for destination, status, count in rows:
            if status == "sent":
                sent[destination] += count
            elif status == "pending":
                pending[destination] += count
        return Progress(cursor, sent, pending)

    def last_run_stats(self) -> dict[str, Any]:
        runs = schema.runs
        with self.observer.connect() as conn:
            row = conn.execute(
                sa.select(runs.c.status, runs.c.stats)
                .where(runs.c.job == JOB)
                .order_by(runs.c.id.desc())
                .limit(1)
            ).one()
        assert row.status == "ok", row.status
        return dict(row.stats)


def _expect_success(process: subprocess.Popen[bytes], log: Path) -> None:
    if process.returncode == EXIT_LEASE_HELD:
        # Every run before this one was killed and reaped: none holds the lease any more.
        raise AssertionError(
            "a restart after SIGKILL was refused (exit 75): the killed run's lease was not "
            f"taken over (StateStore.acquire_lease):\n{_tail(log)}"
        )
    if process.returncode != 0:
        raise AssertionError(f"sync exited {process.returncode}:\n{_tail(log)}")


def _tail(log: Path) -> str:
    return log.read_text(errors="replace")[-3000:]


def _reap(process: subprocess.Popen[bytes]) -> None:
    """Kill (if still running) and wait: no child outlives its test, no zombie is left."""
    if process.poll() is None:
        os.kill(process.pid, signal.SIGKILL)
    process.wait(timeout=30)


def nothing_left_to_do(stats: dict[str, Any]) -> bool:
    """A run that sent, polled and wrote back nothing."""
    return (
        not stats["enqueued"]
        and not stats["delivered"]
        and not stats["status_updates"]
        and not stats["write_backs"]
        and not stats["retrying"]
        and not stats["dead_lettered"]
    )


# --- any `cpims-adapter` command as a child process, killed at a chosen moment ---------------

CLI_PREFIX = [sys.executable, "-c", "import sys; from adapter.cli import main; sys.exit(main())"]


def start_cli(args: list[str], env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    """``cpims-adapter ARGS`` as an operator runs it, its output in ``log``."""
    with log.open("ab") as out:
        return subprocess.Popen(
            [*CLI_PREFIX, *args], env=env, stdin=subprocess.DEVNULL, stdout=out, stderr=out
        )


def start_python(
    code: str, args: list[str], env: dict[str, str], log: Path
) -> subprocess.Popen[bytes]:
    """A small Python program (a stand-in for a long-running adapter process) as a child."""
    with log.open("ab") as out:
        return subprocess.Popen(
            [sys.executable, "-c", code, *args],
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=out,
        )


def kill_when(
    process: subprocess.Popen[bytes],
    ready: Callable[[], bool],
    delay: float,
    *,
    timeout: float = RUN_TIMEOUT,
    poll: float = 0.005,
) -> bool:
    """SIGKILL ``process`` ``delay`` seconds after ``ready()`` first holds (asked every
    ``poll`` seconds). True if it was killed, False if it ended first (reaped either way)."""
    deadline = time.monotonic() + timeout
    try:
        while process.poll() is None and not ready():
            if time.monotonic() > deadline:
                raise AssertionError(f"the process showed no progress in {timeout}s")
            time.sleep(poll)
        if process.poll() is None:
            time.sleep(delay)
        if process.poll() is None:
            os.kill(process.pid, signal.SIGKILL)
            process.wait(timeout=30)
            return True
        return False
    finally:
        _reap(process)


def wait_ok(process: subprocess.Popen[bytes], log: Path, *, ok: tuple[int, ...] = (0,)) -> int:
    """Wait for ``process`` to end by itself; its exit status must be one of ``ok``."""
    try:
        process.wait(timeout=RUN_TIMEOUT)
    finally:
        _reap(process)
    if process.returncode not in ok:
        raise AssertionError(f"exited {process.returncode}:\n{_tail(log)}")
    return process.returncode
