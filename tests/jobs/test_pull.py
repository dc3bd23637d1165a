"""The incremental pull against the Primero simulator, on SQLite and PostgreSQL."""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import pytest
import requests
from sqlalchemy.engine import Connection

from adapter.errors import LeaseHeld
from adapter.jobs.pull import STREAM_CASES, PageWriter, pull_cases
from adapter.primero import PrimeroClient
from adapter.simulator.primero import PrimeroSimulator
from adapter.state import StateStore

CASES = 120


@pytest.fixture(scope="module")
def sim() -> Iterator[PrimeroSimulator]:
    with PrimeroSimulator(cases=CASES, seed=11) as simulator:
        yield simulator


@pytest.fixture
def client(sim: PrimeroSimulator) -> Iterator[PrimeroClient]:
    with PrimeroClient(
        sim.url, auth="basic", username="cpims-adapter", password="sim-password", page_size=25
    ) as opened:
        yield opened


def touch(sim: PrimeroSimulator, count: int) -> list[str]:
    response = requests.post(f"{sim.url}/_sim/touch", json={"count": count}, timeout=10)
    response.raise_for_status()
    return [str(item["id"]) for item in response.json()["touched"]]


def test_pulls_everything_once_then_only_changes(
    sim: PrimeroSimulator, client: PrimeroClient, store: StateStore
) -> None:
    first = pull_cases(client, store, "t1", lag_seconds=0, keep_ids=True)
    assert first.status == "ok"
    assert first.records_new >= CASES
    assert first.pages >= CASES // 25
    again = pull_cases(client, store, "t1", lag_seconds=0)
    assert again.records_new == 0
    edited = touch(sim, 4)
    third = pull_cases(client, store, "t1", lag_seconds=0, keep_ids=True)
    assert sorted(set(third.new_ids)) == sorted(edited)
    runs = store.recent_runs("t1")
    assert [r.status for r in runs] == ["ok", "ok", "ok"]
    assert runs[0].stats["records_new"] == len(edited)


def test_lag_leaves_fresh_edits_to_the_next_run(
    sim: PrimeroSimulator, client: PrimeroClient, store: StateStore
) -> None:
    pull_cases(client, store, "t2", lag_seconds=0)
    touch(sim, 3)
    lagged = pull_cases(client, store, "t2", lag_seconds=3600)
    assert lagged.records_new == 0  # too fresh: Primero may still be committing around them
    caught_up = pull_cases(client, store, "t2", lag_seconds=0)
    assert caught_up.records_new >= 3


def test_a_crash_mid_run_loses_nothing_and_repeats_no_committed_page(
    client: PrimeroClient, store: StateStore
) -> None:
    handled: list[str] = []
    pages = 0

    def crash_on_third_page(records: Sequence[Mapping[str, Any]]) -> PageWriter:
        nonlocal pages
        pages += 1
        if pages == 3:
            raise RuntimeError("simulated crash")

        def write(conn: Connection) -> None:
            handled.extend(str(r["id"]) for r in records)

        return write

    with pytest.raises(RuntimeError):
        pull_cases(client, store, "t3", lag_seconds=0, on_page=crash_on_third_page)
    (failed,) = store.recent_runs("t3")
    assert failed.status == "failed" and failed.error_class == "RuntimeError"
    assert failed.error_message is None  # foreign exception text is never stored
    before_restart = len(handled)
    pull_cases(
        client,
        store,
        "t3",
        lag_seconds=0,
        on_page=lambda r: lambda conn: handled.extend(str(x["id"]) for x in r),
    )
    assert 25 < before_restart <= 50  # two pages committed before the crash
    assert len(handled) == len(set(handled)), "a committed page was handled twice"
    everything = {str(r["id"]) for r in client.iter_cases(updated_since=None, fields=["id"])}
    assert set(handled) == everything


def test_a_second_process_is_refused_while_the_lease_is_held(
    client: PrimeroClient, store: StateStore
) -> None:
    assert store.acquire_lease("job:t4", "another-process", 60) is not None
    with pytest.raises(LeaseHeld):
        pull_cases(client, store, "t4", lag_seconds=0)
    assert store.get_cursor("t4", STREAM_CASES) is None


def test_dry_run_leaves_the_watermark_alone(client: PrimeroClient, store: StateStore) -> None:
    seen: list[int] = []
    report = pull_cases(
        client, store, "t5", lag_seconds=0, dry_run=True, on_page=lambda r: seen.append(len(r))
    )
    assert report.records_new >= CASES and sum(seen) == report.records_new
    assert store.get_cursor("t5", STREAM_CASES) is None
