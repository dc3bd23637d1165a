"""The state store on SQLite and PostgreSQL alike: migrations, cursors, leases, runs."""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime

import pytest
import sqlalchemy as sa

from adapter.errors import StateError
from adapter.state import StateStore, schema
from adapter.state.migrations import MIGRATIONS


def test_first_use_applies_every_migration_once(store: StateStore) -> None:
    assert store.schema_version() == MIGRATIONS[-1].version
    assert store.upgrade() == []  # idempotent
    with store.transaction() as conn:
        recorded = conn.execute(sa.select(schema.schema_migrations.c.version)).scalars().all()
    assert sorted(recorded) == [m.version for m in MIGRATIONS]


def test_migrated_schema_matches_the_query_tables(store: StateStore) -> None:
    """schema.py must describe exactly what the migrations build."""
    inspector = sa.inspect(store.engine)
    for table in schema.metadata.sorted_tables:
        columns = {col["name"] for col in inspector.get_columns(table.name)}
        assert columns == set(table.columns.keys()), table.name


def test_concurrent_upgrades_do_not_collide(state_url: str) -> None:
    errors: list[BaseException] = []

    def upgrade() -> None:
        try:
            StateStore(state_url).close()
        except BaseException as exc:  # noqa: BLE001 - collected for the assertion
            errors.append(exc)

    threads = [threading.Thread(target=upgrade) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    with StateStore(state_url) as check:
        assert check.schema_version() == MIGRATIONS[-1].version


def test_cursor_round_trip_and_overwrite(store: StateStore) -> None:
    assert store.get_cursor("health", "cases") is None
    store.set_cursor("health", "cases", "2025-01-01T00:00:00.000Z")
    store.set_cursor("health", "cases", "2025-02-01T00:00:00.000Z")
    store.set_cursor("police", "cases", "x")
    assert store.get_cursor("health", "cases") == "2025-02-01T00:00:00.000Z"
    assert [c["job"] for c in store.cursors()] == ["health", "police"]


def test_cursor_commits_with_its_transaction_or_not_at_all(store: StateStore) -> None:
    store.set_cursor("health", "cases", "before")
    with pytest.raises(RuntimeError), store.transaction() as conn:
        store.set_cursor("health", "cases", "after", conn)
        raise RuntimeError("crash between cursor and commit")
    assert store.get_cursor("health", "cases") == "before"


def test_lease_is_exclusive_until_released_or_expired(store: StateStore) -> None:
    first = store.acquire_lease("job:health", "proc-a", ttl_seconds=60)
    assert first is not None
    assert store.acquire_lease("job:health", "proc-b", ttl_seconds=60) is None
    store.release_lease(first)
    second = store.acquire_lease("job:health", "proc-b", ttl_seconds=60)
    assert second is not None and second.token > first.token
    # A stale holder cannot renew or release a lease that moved on.
    assert store.renew_lease(first, 60) is None
    store.release_lease(first)
    assert store.acquire_lease("job:health", "proc-c", ttl_seconds=60) is None


def test_expired_lease_can_be_taken_over(store: StateStore, state_url: str) -> None:
    # The holder's process ends without releasing (on PostgreSQL its connection, and with it
    # the advisory lock, goes away too).
    gone = StateStore(state_url, migrate=False)
    assert gone.acquire_lease("job", "dead-process", ttl_seconds=-1) is not None
    gone.close()
    taken = store.acquire_lease("job", "survivor", ttl_seconds=60)
    assert taken is not None and taken.owner == "survivor"


@pytest.mark.postgres
def test_postgres_lease_of_a_live_holder_is_never_taken_even_when_expired(
    postgres_server: object,
) -> None:
    """Two instances on one PostgreSQL: an expired lease whose holder still runs (a long GC
    pause, a stuck call) stays with it — the advisory lock says it is alive — so a job never
    runs twice at once; when the holder's connection ends, the other takes over at once."""
    from tests.support.servers import PostgresServer

    assert isinstance(postgres_server, PostgresServer)
    url = postgres_server.create_database("lease_live_holder")
    with StateStore(url) as one, StateStore(url, migrate=False) as two:
        held = one.acquire_lease("job:health", "one", ttl_seconds=-1)
        assert held is not None
        assert two.acquire_lease("job:health", "two", ttl_seconds=60) is None
        # What a SIGKILL does: the holder's connection drops (and the server frees the lock).
        connection, _token = one._advisory.pop("job:health")
        connection.invalidate()
        connection.close()
        # The server frees the lock once it sees the connection gone: a moment, not a TTL.
        deadline = time.monotonic() + 10
        while (taken := two.acquire_lease("job:health", "two", ttl_seconds=60)) is None:
            assert time.monotonic() < deadline, "the dead holder's lock was never freed"
            time.sleep(0.05)
        assert taken.token > held.token
        # The stale holder can neither renew nor release the lease it lost.
        assert one.renew_lease(held, 60) is None


def test_only_one_of_many_contenders_gets_the_lease(store: StateStore, state_url: str) -> None:
    winners: list[str] = []
    barrier, tried = threading.Barrier(6), threading.Barrier(6)

    def contend(owner: str) -> None:
        own = StateStore(state_url, migrate=False)
        barrier.wait()
        if own.acquire_lease("job:race", owner, ttl_seconds=60):
            winners.append(owner)
        # Every contender stays up until all have tried: a process that ends (its store
        # closed: on PostgreSQL the advisory lock goes with it) may rightly be taken over.
        tried.wait()
        own.close()

    threads = [threading.Thread(target=contend, args=(f"p{i}",)) for i in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(winners) == 1


def test_runs_are_recorded_with_outcome(store: StateStore) -> None:
    run_id = store.start_run("health", "proc-a")
    store.finish_run(
        run_id, "failed", {"pages": 2}, "PrimeroTimeout", "GET /api/v2/cases timed out"
    )
    (run,) = store.recent_runs("health")
    assert run.status == "failed" and run.stats == {"pages": 2}
    assert run.started_at.tzinfo is UTC and run.finished_at is not None
    assert run.finished_at >= run.started_at


def test_naive_datetimes_are_refused(store: StateStore) -> None:
    with pytest.raises(StateError), store.transaction() as conn:
        conn.execute(
            schema.cursors.insert().values(
                job="j", stream="s", value="v", updated_at=datetime(2025, 1, 1)
            )
        )


def test_unsupported_url_is_a_clear_error() -> None:
    with pytest.raises(StateError, match="only sqlite and postgresql"):
        StateStore("mysql://localhost/x")
    with pytest.raises(StateError, match="not a database URL"):
        StateStore("not a url")


def _orphaned_lease(store: StateStore, name: str, owner: str) -> object:
    """A lease row left behind by a process that died (on PostgreSQL its connection, and the
    advisory lock with it, are gone too)."""
    lease = store.acquire_lease(name, owner, ttl_seconds=900)
    held = store._advisory.pop(name, None)
    if held is not None:
        held[0].invalidate()
        held[0].close()
    return lease


def test_a_lease_held_by_a_dead_process_on_this_host_is_taken_over(store: StateStore) -> None:
    import socket
    import subprocess
    import sys

    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()  # the holder is gone, without releasing (as after SIGKILL)
    dead_owner = f"{socket.gethostname()}:{child.pid}:123:deadbeef"
    assert _orphaned_lease(store, "job:crash", dead_owner) is not None
    run_id = store.start_run("crash", dead_owner)
    taken = store.acquire_lease("job:crash", "restarted", ttl_seconds=900)
    assert taken is not None and taken.owner == "restarted"
    (run,) = [r for r in store.recent_runs("crash") if r.id == run_id]
    assert run.status == "abandoned" and run.finished_at is not None


def test_a_restarted_process_with_the_dead_holders_pid_takes_over(store: StateStore) -> None:
    """PID 1 in a container: the restarted process has the same PID, not the same start."""
    import os
    import socket

    from adapter.state.store import process_owner

    earlier = f"{socket.gethostname()}:{os.getpid()}:1:cafe"  # same PID, another start time
    assert _orphaned_lease(store, "job:pid1", earlier) is not None
    me = process_owner()
    assert store.acquire_lease("job:pid1", me, ttl_seconds=900) is not None


def test_a_lease_held_by_a_live_process_or_another_host_is_respected(store: StateStore) -> None:
    import os
    import socket

    from adapter.state.store import _start_time

    alive = f"{socket.gethostname()}:{os.getppid()}:{_start_time(os.getppid())}:live"
    assert store.acquire_lease("job:a", alive, ttl_seconds=900) is not None
    assert store.acquire_lease("job:a", "other", ttl_seconds=900) is None
    remote = "another-host:1:x"
    assert store.acquire_lease("job:b", remote, ttl_seconds=900) is not None
    assert store.acquire_lease("job:b", "other", ttl_seconds=900) is None


@pytest.mark.postgres
def test_postgres_holder_whose_lock_connection_died_stops_renewing(
    postgres_server: object,
) -> None:
    """A network blip kills the connection that holds the advisory lock while the process
    lives on: its next renewal (after each page, between phases) fails, so it stops before
    another instance, which may now take the job, could overlap with it."""
    from tests.support.servers import PostgresServer

    assert isinstance(postgres_server, PostgresServer)
    url = postgres_server.create_database("lease_blip")
    with StateStore(url) as one, StateStore(url, migrate=False) as two:
        held = one.acquire_lease("job:police", "one", ttl_seconds=60)
        assert held is not None and one.renew_lease(held, 60) is not None
        one._advisory["job:police"][0].invalidate()  # the connection is gone
        assert one.renew_lease(held, 60) is None
        deadline = time.monotonic() + 10
        while (taken := two.acquire_lease("job:police", "two", ttl_seconds=60)) is None:
            assert time.monotonic() < deadline, "the freed lock was never taken"
            time.sleep(0.05)
        assert taken.token > held.token
