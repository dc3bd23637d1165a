"""Archive, destruction and closure decisions on a state store alone (no Primero)."""

from __future__ import annotations

import secrets
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa

from adapter.config import Settings
from adapter.privacy import KeyRing, PolicySet
from adapter.retention import RetentionReport, destroy_due, is_destroyed, run_retention
from adapter.retention._tables import case_archives
from adapter.retention.aggregates import age_band, counts
from adapter.retention.run import _Pass, add_years, closed_at
from adapter.simulator.scenario import POLICY_DIR
from adapter.state import StateStore
from adapter.state.schema import links

CASE = "0b7c2f3e-8c1d-4e2a-9a55-6f0e2d1c3b4a"
NOW = datetime(2026, 1, 20, tzinfo=UTC)


def held_case(store: StateStore) -> KeyRing:
    ring = KeyRing.init(store, secrets.token_bytes(32), ["health"])
    with store.transaction() as conn:
        conn.execute(
            links.insert().values(
                link_key="health:ref-1",
                job="health",
                department="health",
                case_id=CASE,
                case_code="cp1.health.1.x",
                stage="identified",
                remote_note="Seen by the duty medical officer.",
                created_at=NOW,
                updated_at=NOW,
            )
        )
    return ring


def page(store: StateStore, ring: KeyRing, record: dict[str, object]) -> RetentionReport:
    report = RetentionReport(dry_run=False)
    work = _Pass(Settings(), ring, PolicySet.load(POLICY_DIR), report, NOW)
    with store.transaction() as conn:
        work.page(conn, [record])
    return report


def closed_record(**extra: object) -> dict[str, object]:
    return {
        "id": CASE,
        "status": "closed",
        "date_closure": "2026-01-10",
        "last_updated_at": "2026-01-10T10:00:00.000Z",
        "sex": "female",
        "age": 12,
        "location_current": "PK-SD-KHI",
        **extra,
    }


def test_a_record_without_a_status_never_unarchives(store: StateStore) -> None:
    ring = held_case(store)
    assert page(store, ring, closed_record()).archived == 1
    report = page(store, ring, {"id": CASE, "last_updated_at": "2026-01-11T00:00:00.000Z"})
    assert report.status_unknown == 1 and report.unarchived == 0
    with store.transaction() as conn:
        assert len(counts(conn)) == 1


def test_free_text_never_becomes_a_district(store: StateStore) -> None:
    ring = held_case(store)
    page(store, ring, closed_record(location_current="near the old mosque, house 12"))
    with store.transaction() as conn:
        (cell,) = counts(conn)
    assert cell.district == "unknown" and cell.age_band == "10-14" and cell.sex == "female"


def test_an_archive_that_cannot_be_opened_is_still_shredded_and_its_rows_found(
    store: StateStore,
) -> None:
    ring = held_case(store)
    page(store, ring, closed_record())
    with store.transaction() as conn:
        conn.execute(case_archives.update().values(blob=b"\0" * 64))  # damaged on disk
    report = destroy_due(store, ring, now=add_years(NOW, 7))
    assert report.destroyed_unreadable == 1 and report.destroyed == 0
    with store.transaction() as conn:
        assert conn.execute(sa.select(links)).first() is None
        assert is_destroyed(conn, ring, CASE)


def test_closure_dates_and_bands() -> None:
    assert closed_at({"date_closure": "2026-03-31", "last_updated_at": "x"}) == datetime(
        2026, 3, 31, tzinfo=UTC
    )
    record = {"date_closure": "not a date", "last_updated_at": "2026-04-01T08:00:00.000Z"}
    assert closed_at(record) == datetime(2026, 4, 1, 8, tzinfo=UTC)
    assert add_years(datetime(2024, 2, 29, tzinfo=UTC), 7) == datetime(2031, 2, 28, tzinfo=UTC)
    assert [age_band(a) for a in (None, 0, 4, 5, 14, 15, 17, 18, -1)] == [
        "unknown",
        "0-4",
        "0-4",
        "5-9",
        "10-14",
        "15-17",
        "15-17",
        "18+",
        "unknown",
    ]


class OnePage:
    """A Primero stand-in for the pull: one page holding ``records``."""

    def __init__(self, records: list[dict[str, object]]) -> None:
        self.records = records

    def iter_case_pages(self, updated_since: object, updated_until: object, fields: object) -> Any:
        yield self


def test_a_stopped_run_is_recorded_as_interrupted_and_resumes(store: StateStore) -> None:
    ring = held_case(store)
    later = add_years(NOW, 8)
    policy = PolicySet.load(POLICY_DIR)
    source = OnePage([closed_record()])
    stopped = run_retention(
        Settings(), store, ring, source, policy=policy, now=later, should_stop=lambda: True
    )
    assert stopped.interrupted and stopped.archived == 1 and stopped.destroyed == 0
    assert store.recent_runs("retention")[0].status == "interrupted"
    resumed = run_retention(Settings(), store, ring, OnePage([]), policy=policy, now=later)
    assert resumed.destroyed == 1 and store.recent_runs("retention")[0].status == "ok"
