"""`cpims-adapter run` through an outage of its PostgreSQL state store (issue 13 item 10).

The drill operators ran: PostgreSQL stops in the middle of a run and comes back 15 s later.
The service must live through it by itself, say so in one WARNING a minute (no traceback, no
database user, password, host or port anywhere in its log), record the run the outage cut
off as interrupted by it (not as a dead process's), and run the job again successfully.

The test stops a PostgreSQL of its own, never the suite's shared one.
"""

from __future__ import annotations

import os
import re
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from adapter.simulator.hospital import Hospital
from tests.jobs.crash_support import CrashWorld, crash_world
from tests.jobs.test_service import Instances, _service_config, _slow_primero
from tests.support.servers import PostgresServer, start_postgres

CHILDREN = 12
OUTAGE_SECONDS = 15
# The state store's login, in the URL the service is given: none of it may reach the log.
USER = "drill_operator"
PASSWORD = "drill-pw-7Q2xv"  # a throwaway test password


@pytest.fixture
def own_postgres() -> Iterator[PostgresServer]:
    if os.environ.get("CPIMS_ADAPTER_SKIP_POSTGRES") == "1":
        pytest.skip("CPIMS_ADAPTER_SKIP_POSTGRES=1")
    server = start_postgres()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def outage_world(tmp_path: Path, own_postgres: PostgresServer) -> Iterator[CrashWorld]:
    import psycopg

    with psycopg.connect(
        f"host=127.0.0.1 port={own_postgres.port} user={own_postgres.superuser} dbname=postgres",
        autocommit=True,
    ) as conn:
        conn.execute(f"CREATE ROLE {USER} LOGIN PASSWORD '{PASSWORD}'")
        conn.execute(f"CREATE DATABASE drill OWNER {USER}")
    url = f"postgresql+psycopg://{USER}:{PASSWORD}@127.0.0.1:{own_postgres.port}/drill"
    with crash_world(tmp_path, url, children=CHILDREN, page_size=2) as world:
        _service_config(world)
        yield world


@pytest.mark.postgres
def test_a_state_store_outage_is_one_warning_and_the_service_recovers_by_itself(
    outage_world: CrashWorld, own_postgres: PostgresServer
) -> None:
    world = outage_world
    _slow_primero(world, 0.5)  # a run spans several seconds: the outage lands inside it
    instances = Instances(world)
    try:
        process = instances.start()
        instances.wait_for(
            lambda: any(run.status == "running" for run in instances.runs()), 60, "a run"
        )
        (cut,) = instances.runs()

        own_postgres.shut_down()
        down_at = time.monotonic()
        instances.observer.dispose()  # its pooled connections died with the server
        time.sleep(OUTAGE_SECONDS)
        assert process.poll() is None, instances.tails()
        own_postgres.start_again()
        outage = time.monotonic() - down_at
        requests.delete(f"{world.sim.url}/_sim/faults", timeout=10).raise_for_status()

        def recovered() -> bool:
            runs = {run.id: run for run in instances.runs()}
            return runs[cut.id].status == "interrupted" and any(
                run.id > cut.id and run.status == "ok" for run in runs.values()
            )

        instances.wait_for(recovered, 120, "the cut run recorded and a later run ok")
        instances.wait_for(
            lambda: len(world.hospital.referral_tasks()) >= CHILDREN, 60, "every referral"
        )
        assert process.poll() is None, instances.tails()
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=60) == 0, instances.tails()

        # The cut-off run: interrupted by the outage, its process alive all along.
        runs = {run.id: run for run in instances.runs()}
        assert runs[cut.id].error_class == "StateStoreUnavailable", runs[cut.id]
        assert runs[cut.id].finished_at is not None
        assert not [run for run in runs.values() if run.error_class == "ProcessDied"], runs
        # Every referral reached the hospital exactly once, outage or not.
        keys = sorted(Hospital.referral_key(task) for task in world.hospital.referral_tasks())
        assert keys == sorted(f"ref-{referral_id}" for _, referral_id in world.referred)

        log = instances.logs[0].read_text(encoding="utf-8", errors="replace")
        assert "Traceback" not in log, log
        for secret in (USER, PASSWORD):
            assert secret not in log, f"{secret!r} in the log:\n{log}"
        assert not re.search(rf"(?<!\d){own_postgres.port}(?!\d)", log), log
        warnings = [line for line in log.splitlines() if " WARNING " in line]
        about_store = [line for line in warnings if "state store" in line]
        assert 1 <= len(about_store) <= 1 + int(outage // 60), warnings
        assert about_store == warnings, "every warning was about the outage"
        assert not [line for line in log.splitlines() if " ERROR " in line], log
        assert re.search(r" INFO .*state store .* answers again after \d+ s", log), log
    finally:
        instances.close()
