"""Processes and figures shared by the benchmarks: servers on loopback, workers, medians.

Servers (the Primero world, the sink) are started as child processes, announce ``READY <url>``
on stdout, and are stopped by their own PID. Measurements run in ``_sync_worker.py``
subprocesses that print one JSON line.
"""

from __future__ import annotations

import json
import os
import secrets
import signal
import statistics
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import requests

HERE = Path(__file__).resolve().parent
PYTHON = sys.executable


@dataclass
class Row:
    """One line of the BENCHMARKS.md table.

    ``ratio`` is measured ÷ baseline for costs (seconds, bytes) so that lower is better and
    the goal reads "≤ goal"; ``peak_memory`` says whose memory it is.
    """

    name: str
    baseline: str
    measured: str
    ratio: float | None
    goal: float | None
    peak_memory: str = "—"
    repetitions: str = ""
    notes: list[str] = field(default_factory=list)

    @property
    def met(self) -> str:
        if self.goal is None or self.ratio is None:
            return "—"
        return "yes" if self.ratio <= self.goal else "**no**"


def median(values: Sequence[float]) -> float:
    return float(statistics.median(values))


def mib(kib: float) -> str:
    return f"{kib / 1024:,.0f} MiB"


@contextmanager
def server(script: str, *args: str) -> Iterator[str]:
    """Run ``benchmarks/<script>`` until the block ends; yields the URL it announced."""
    process = subprocess.Popen(
        [PYTHON, str(HERE / script), *args],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        line = process.stdout.readline().split()
        if len(line) < 2 or line[0] != "READY":
            raise RuntimeError(f"{script} {' '.join(args)} did not start (exit {process.poll()})")
        url = line[1]
        _wait_until_serving(url)
        yield url
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def _wait_until_serving(url: str) -> None:
    deadline = time.monotonic() + 60
    while True:
        try:
            requests.get(f"{url}/_sim/health", timeout=30)
            return
        except requests.ConnectionError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)


def worker(*args: str, kek: str | None = None) -> dict[str, Any]:
    """Run ``_sync_worker.py`` with ``args``; its JSON answer."""
    env = dict(os.environ)
    if kek is not None:
        env["CPIMS_BENCH_KEK"] = kek
    done = subprocess.run(
        [PYTHON, str(HERE / "_sync_worker.py"), *args],
        capture_output=True,
        text=True,
        env=env,
        check=False,
    )
    if done.returncode != 0:
        raise RuntimeError(f"worker {args[0]} failed:\n{done.stderr[-3000:]}")
    answer: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return answer


def new_kek() -> str:
    """A fresh key-encryption key for one state store (synthetic data only)."""
    return secrets.token_hex(32)


def say(text: str) -> None:
    print(text, flush=True)
