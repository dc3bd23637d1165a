"""The end-to-end demo on embedded defaults: a Primero simulator, a SQLite state store, and the
adapter's incremental pull run three times (everything, nothing new, just the edits)."""

from __future__ import annotations

import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import requests
from pydantic import SecretStr

from adapter.config import PrimeroSettings
from adapter.jobs.pull import PullReport, pull_cases
from adapter.primero import PrimeroClient
from adapter.state import StateStore

DEMO_USER = "cpims-adapter"
DEMO_PASSWORD = "sim-password"  # noqa: S105 - the simulator's synthetic account, not a secret
DEMO_JOB = "demo"


@dataclass
class DemoResult:
    primero_url: str
    primero_version: str
    state_url: str
    runs: list[tuple[str, PullReport]]

    @property
    def ok(self) -> bool:
        first, second, third = (report for _, report in self.runs)
        return (
            second.records_new == 0 and third.records_new == self.edited and first.records_new > 0
        )

    edited: int = 0


def run_demo(
    cases: int = 300,
    edits: int = 5,
    state_dir: Path | None = None,
    say: Callable[[str], None] = print,
) -> DemoResult:
    """Run the demo and return what each pull did."""
    from adapter.simulator.primero import PrimeroSimulator

    workdir = state_dir or Path(tempfile.mkdtemp(prefix="cpims-demo-"))
    state_url = f"sqlite:///{workdir}/demo-state.sqlite3"
    lag = 1  # seconds; production uses minutes (sync.lag_seconds)
    with PrimeroSimulator(cases=cases, seed=42) as sim, StateStore(state_url) as store:
        say(f"Primero simulator with {cases} synthetic cases at {sim.url}")
        settings = PrimeroSettings(
            url=sim.url, username=DEMO_USER, password=SecretStr(DEMO_PASSWORD), auth="basic"
        )
        with PrimeroClient.from_settings(settings) as client:
            version = client.primero_version()
            result = DemoResult(sim.url, version, state_url, [], edited=edits)

            def pull(label: str) -> None:
                report = pull_cases(client, store, DEMO_JOB, lag_seconds=lag)
                result.runs.append((label, report))
                say(
                    f"{label}: {report.records_new} new of {report.records_read} read "
                    f"in {report.pages} page(s), {report.duration_seconds:.2f}s"
                )

            time.sleep(lag)  # let the seed settle behind the lag window
            pull("pull 1 (everything)")
            pull("pull 2 (nothing changed)")
            response = requests.post(f"{sim.url}/_sim/touch", json={"count": edits}, timeout=10)
            response.raise_for_status()
            say(f"a CPO edits {edits} cases in Primero")
            time.sleep(lag + 1.1)  # past the lag window, and into a new second
            pull("pull 3 (only the edits)")
    return result
