"""`cpims-adapter run` as operators run it: real processes, SIGKILL and SIGTERM.

High availability (issue 7): two instances on one PostgreSQL store; the one running the job is
killed mid-run; the other takes the job over within one schedule interval; every referral
reaches the hospital exactly once and no two runs of the job ever overlap.
"""

from __future__ import annotations

import itertools
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
import sqlalchemy as sa

from adapter.simulator.hospital import Hospital
from adapter.state import schema
from adapter.state.store import normalise_url
from tests.jobs.crash_support import CrashWorld, crash_world

RUN_COMMAND = [sys.executable, "-c", "import sys; from adapter.cli import main; sys.exit(main())"]
EVERY_SECONDS = 10
CHILDREN = 16


def _service_config(world: CrashWorld) -> None:
    """The crash world's config, scheduled: the health job every 10 s, no jitter."""
    text = world.config_path.read_text(encoding="utf-8")
    text = text.replace("[jobs.health]\n", f"[jobs.health]\nevery_seconds = {EVERY_SECONDS}\n")
    text += "\n[scheduler]\njitter_seconds = 0\nmisfire_grace_seconds = 60\n\n[ops]\nport = 0\n"
    world.config_path.write_text(text, encoding="utf-8")


def _slow_primero(world: CrashWorld, seconds: float) -> None:
    """Every case request waits ``seconds``: a run spans many seconds, so a kill lands in it."""
    answer = requests.post(
        f"{world.sim.url}/_sim/faults",
        json={"count": 100_000, "delay_seconds": seconds, "path_prefix": "/api/v2/cases"},
        timeout=10,
    )
    answer.raise_for_status()


class Instances:
    """`cpims-adapter run` processes of one test; every one is reaped."""

    def __init__(self, world: CrashWorld) -> None:
        self.world = world
        self.processes: list[subprocess.Popen[bytes]] = []
        self.logs: list[Path] = []
        self.observer = sa.create_engine(normalise_url(world.state_url))

    def start(self) -> subprocess.Popen[bytes]:
        log = self.world.workdir / f"run-{len(self.processes) + 1}.log"
        with log.open("wb") as out:
            process = subprocess.Popen(
                [*RUN_COMMAND, "run"],
                env=self.world.env(),
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        self.processes.append(process)
        self.logs.append(log)
        return process

    def lease_holder(self) -> subprocess.Popen[bytes] | None:
        with self.observer.connect() as conn:
            owner = conn.execute(
                sa.select(schema.leases.c.owner).where(schema.leases.c.name == "job:health")
            ).scalar()
        for process in self.processes:
            if owner and owner.startswith(f"{socket.gethostname()}:{process.pid}:"):
                return process
        return None

    def runs(self) -> list[sa.Row[tuple[object, ...]]]:
        with self.observer.connect() as conn:
            return list(
                conn.execute(
                    sa.select(schema.runs)
                    .where(schema.runs.c.job == "health")
                    .order_by(schema.runs.c.id)
                )
            )

    def wait_for(self, condition: object, timeout: float, what: str) -> None:
        assert callable(condition)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if condition():
                return
            time.sleep(0.05)
        raise AssertionError(f"timed out waiting for {what}:\n{self.tails()}")

    def tails(self) -> str:
        return "\n".join(
            f"--- {log.name}\n" + log.read_text(errors="replace")[-3000:] for log in self.logs
        )

    def close(self) -> None:
        for process in self.processes:
            if process.poll() is None:
                process.kill()
            process.wait(timeout=30)
        self.observer.dispose()


@pytest.fixture
def ha_world(tmp_path: Path, postgres_server: object) -> Iterator[CrashWorld]:
    from tests.support.servers import PostgresServer

    assert isinstance(postgres_server, PostgresServer)
    url = postgres_server.create_database(f"ha_{os.getpid()}_{time.monotonic_ns()}")
    with crash_world(tmp_path, url, children=CHILDREN, page_size=2) as world:
        _service_config(world)
        yield world


@pytest.mark.postgres
def test_two_instances_killed_leader_is_replaced_without_duplicates_or_overlap(
    ha_world: CrashWorld,
) -> None:
    world = ha_world
    _slow_primero(world, 0.4)
    instances = Instances(world)
    try:
        first, second = instances.start(), instances.start()
        # One of them takes the job; it commits a page or more and is then killed mid-run.
        instances.wait_for(lambda: instances.lease_holder() is not None, 60, "a leader")
        leader = instances.lease_holder()
        assert leader is not None
        instances.wait_for(
            lambda: world.hospital.referral_tasks() != [], 60, "the leader's first deliveries"
        )
        assert leader.poll() is None, "the run ended before the kill: slow Primero down more"
        leader.send_signal(signal.SIGKILL)
        leader.wait(timeout=30)
        survivor = second if leader is first else first

        # The survivor takes over within one schedule interval (plus the run itself) and
        # finishes the work.
        killed_at = time.monotonic()
        instances.wait_for(
            lambda: instances.lease_holder() is survivor, EVERY_SECONDS + 20, "the takeover"
        )
        takeover_seconds = time.monotonic() - killed_at
        requests.delete(f"{world.sim.url}/_sim/faults", timeout=10).raise_for_status()
        instances.wait_for(
            lambda: (
                len(world.hospital.referral_tasks()) >= CHILDREN
                and any(run.status == "ok" for run in instances.runs())
            ),
            120,
            "every referral delivered",
        )
        assert survivor.poll() is None, instances.tails()
        assert takeover_seconds <= EVERY_SECONDS + 20

        # Exactly once at the hospital.
        keys = sorted(Hospital.referral_key(task) for task in world.hospital.referral_tasks())
        assert keys == sorted(f"ref-{referral_id}" for _, referral_id in world.referred)

        # No two runs overlapped; the killed leader's run is recorded as abandoned.
        survivor.send_signal(signal.SIGTERM)
        assert survivor.wait(timeout=60) == 0, instances.tails()
        runs = instances.runs()
        assert any(run.status == "abandoned" for run in runs), runs
        spans = sorted((run.started_at, run.finished_at) for run in runs)
        assert all(end is not None for _, end in spans), runs
        for (_, end), (start, _) in itertools.pairwise(spans):
            assert end is not None and end <= start, runs
    finally:
        instances.close()


@pytest.mark.postgres
def test_sigterm_ends_the_current_run_between_pages_and_exits_zero(
    ha_world: CrashWorld,
) -> None:
    world = ha_world
    _slow_primero(world, 0.3)
    instances = Instances(world)
    try:
        process = instances.start()
        instances.wait_for(lambda: instances.lease_holder() is process, 60, "the first run")
        instances.wait_for(
            lambda: world.hospital.referral_tasks() != [] or len(instances.runs()) > 0,
            60,
            "the run under way",
        )
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=60) == 0, instances.tails()
        (run,) = instances.runs()
        assert run.status == "interrupted", run  # stopped between pages, not killed
        assert run.finished_at is not None
        with instances.observer.connect() as conn:
            instance = conn.execute(sa.select(schema.service_instances)).one()
            lease = conn.execute(
                sa.select(schema.leases).where(schema.leases.c.name == "job:health")
            ).one()
        assert instance.stopped_at is not None
        assert lease.owner is None  # released, so a restart (or a standby) runs at once
    finally:
        instances.close()
