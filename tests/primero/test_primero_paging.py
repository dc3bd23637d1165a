"""Incremental listing: keyset emulation over Primero's offset paging loses no record.

`FakeCases` models what matters of `GET /api/v2/cases` (primero-api.md §3): the range filter
compares whole seconds, records are ordered by `last_updated_at` (milliseconds) with ties in an
arbitrary order, pages are offsets, an edit moves a record to "now".
"""

from __future__ import annotations

import json
import random
from collections.abc import Callable
from datetime import UTC, datetime, timedelta, timezone
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
import responses
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from requests import PreparedRequest

from adapter.errors import PrimeroProtocolError
from adapter.primero import CasePage, PrimeroClient
from adapter.primero._paging import Batch, iter_pages, range_param

BASE = "https://primero.test"
EPOCH = datetime(2026, 3, 1, 8, 0, 0, tzinfo=UTC)
Make = Callable[..., PrimeroClient]


def at(ms: int) -> datetime:
    return EPOCH + timedelta(milliseconds=ms)


def iso(ms: int) -> str:
    return at(ms).strftime("%Y-%m-%dT%H:%M:%S.") + f"{ms % 1000:03d}Z"


class FakeCases:
    """An in-memory Primero case list with offset paging."""

    def __init__(self, rng: random.Random | None = None, shuffle_ties: bool = False) -> None:
        self.rows: dict[str, tuple[int, float]] = {}  # id -> (ms, tie-break)
        self.rng = rng or random.Random(0)
        self.shuffle_ties = shuffle_ties
        self.clock = 0
        self.requests = 0
        self.before_each: Callable[[FakeCases], None] = lambda fake: None
        self.ignore_filter = False
        self.ignore_page = False

    def put(self, case_id: str, ms: int) -> None:
        self.rows[case_id] = (ms, self.rng.random())
        self.clock = max(self.clock, ms)

    def edit(self, case_id: str, step_ms: int = 1) -> None:
        """A concurrent edit: the record's last_updated_at becomes now."""
        self.clock += step_ms
        self.put(case_id, self.clock)

    def fetch(self, lower: datetime | None, upper: datetime | None, page: int, per: int) -> Batch:
        self.requests += 1
        self.before_each(self)

        def second(ms: int) -> datetime:
            return at(ms).replace(microsecond=0)

        rows = [
            (ms, tie, case_id)
            for case_id, (ms, tie) in self.rows.items()
            if self.ignore_filter
            or ((lower is None or second(ms) >= lower) and (upper is None or second(ms) <= upper))
        ]
        if self.shuffle_ties:
            rows = [(ms, self.rng.random(), case_id) for ms, _, case_id in rows]
        rows.sort()
        start = 0 if self.ignore_page else (page - 1) * per
        chosen = rows[start : start + per]
        records = [{"id": case_id, "last_updated_at": iso(ms)} for ms, _, case_id in chosen]
        return Batch(records, len(rows), per)

    def fetcher(self, per: int) -> Callable[[datetime | None, datetime | None, int], Batch]:
        return lambda lower, upper, page: self.fetch(lower, upper, page, per)


def listed(fake: FakeCases, per: int, since: datetime | None = None, **kw: Any) -> list[CasePage]:
    return list(iter_pages(fake.fetcher(per), since=since, until=kw.get("until")))


def ids(pages: list[CasePage]) -> list[str]:
    return [record["id"] for page in pages for record in page.records]


def naive_offset_ids(fake: FakeCases, per: int) -> list[str]:
    """What plain page=1,2,3... paging would return (to show a scenario really loses records)."""
    seen, page = [], 1
    while True:
        batch = fake.fetch(None, None, page, per)
        seen += [record["id"] for record in batch.records]
        if len(batch.records) < per:
            return seen
        page += 1


# --- example-based ------------------------------------------------------------------------------


def test_ties_within_a_second_across_a_page_boundary_are_all_listed_once() -> None:
    fake = FakeCases()
    for n, ms in enumerate([100, 200, 1100, 1100, 2500, 2600, 3100]):
        fake.put(f"c{n}", ms)

    pages = listed(fake, per=3)

    assert sorted(ids(pages)) == sorted(fake.rows)
    assert len(ids(pages)) == len(fake.rows)
    assert all(page.page == 1 for page in pages)  # keyset steps, no offsets needed


def test_a_whole_page_in_one_second_is_scanned_by_offset_and_confirmed() -> None:
    fake = FakeCases()
    fake.put("before", 0)
    for n in range(7):
        fake.put(f"bulk{n}", 5000 + n)  # a bulk import: seven records in one second
    fake.put("after", 9000)

    pages = listed(fake, per=3)

    assert sorted(ids(pages)) == sorted(fake.rows)
    assert len(ids(pages)) == len(fake.rows)
    assert max(page.page for page in pages) == 3  # offsets only inside the crowded second
    assert pages[-1].checkpoint == at(9000)


def test_a_record_moved_by_a_concurrent_edit_is_not_lost() -> None:
    def build() -> FakeCases:
        fake = FakeCases()
        for n in range(6):
            fake.put(f"c{n}", 3000 + n)  # one crowded second, per=2
        fake.clock = 60_000

        def edit_c0_after_the_first_page(fake: FakeCases) -> None:
            if fake.requests == 2:  # c0 moves to "now": everything behind it shifts forward
                fake.edit("c0")

        fake.before_each = edit_c0_after_the_first_page
        return fake

    assert "c2" not in naive_offset_ids(build(), per=2)  # plain offset paging skips c2

    pages = listed(build(), per=2)

    assert set(ids(pages)) == {f"c{n}" for n in range(6)}
    assert ids(pages).count("c0") == 2  # changed after it was listed: listed again


def test_ties_returned_in_a_different_order_on_every_request_are_all_found() -> None:
    fake = FakeCases(rng=random.Random(3), shuffle_ties=True)
    for n in range(9):
        fake.put(f"c{n}", 4000)  # identical milliseconds: PostgreSQL may order them freely

    pages = listed(fake, per=2)

    assert set(ids(pages)) == set(fake.rows)


def test_an_ignored_filter_stops_paging_instead_of_looping() -> None:
    fake = FakeCases()
    for n in range(5):
        fake.put(f"c{n}", n * 1000)
    fake.ignore_filter = True

    with pytest.raises(PrimeroProtocolError, match="ignored the filter"):
        listed(fake, per=2, since=at(3000))


def test_an_ignored_page_number_stops_paging_instead_of_looping() -> None:
    fake = FakeCases()
    for n in range(6):
        fake.put(f"c{n}", 2000 + n)
    fake.ignore_page = True

    with pytest.raises(PrimeroProtocolError, match="ignored the `page`"):
        listed(fake, per=2)
    assert fake.requests < 10


def test_records_out_of_order_stop_paging() -> None:
    def fetch(lower: datetime | None, upper: datetime | None, page: int) -> Batch:
        records = [
            {"id": "a", "last_updated_at": iso(5000)},
            {"id": "b", "last_updated_at": iso(0)},
        ]
        return Batch(records, 2, 2)

    with pytest.raises(PrimeroProtocolError, match="did not order"):
        list(iter_pages(fetch, since=None, until=None))


def test_the_upper_bound_is_inclusive_at_the_second() -> None:
    fake = FakeCases()
    fake.put("in", 2999)
    fake.put("out", 3000)

    assert ids(listed(fake, per=10, until=at(2000))) == ["in"]


def test_naive_datetimes_are_refused(make_client: Make) -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        make_client().iter_case_pages(datetime(2026, 1, 1))


# --- through the HTTP client ---------------------------------------------------------------------


def serve(
    mocked: responses.RequestsMock, fake: FakeCases, seen: list[dict[str, list[str]]]
) -> None:
    def callback(request: PreparedRequest) -> tuple[int, dict[str, str], str]:
        query = parse_qs(urlsplit(request.url or "").query)
        seen.append(query)
        lower = upper = None
        if "last_updated_at" in query:
            start, _, end = query["last_updated_at"][0].partition("..")
            lower = datetime.fromisoformat(start)
            upper = datetime.fromisoformat(end) if end else None
        per = min(int(query["per"][0]), 1000)
        batch = fake.fetch(lower, upper, int(query["page"][0]), per)
        body = {"data": batch.records, "metadata": {"total": batch.total, "per": per, "page": 1}}
        return 200, {}, json.dumps(body)

    mocked.add_callback(responses.GET, f"{BASE}/api/v2/cases", callback=callback)


def test_iter_cases_sends_utc_whole_second_bounds_order_and_fields(
    mocked: responses.RequestsMock, make_client: Make
) -> None:
    fake = FakeCases()
    for n in range(5):
        fake.put(f"c{n}", 10_000 + n * 400)
    queries: list[dict[str, list[str]]] = []
    serve(mocked, fake, queries)
    karachi = timezone(timedelta(hours=5))
    since = (at(10_000) + timedelta(microseconds=250_000)).astimezone(karachi)

    records = list(
        make_client().iter_cases(
            since,
            at(60_000),
            fields=["sex", "age"],
            filters={"record_state": True, "module_id": "primeromodule-cp"},
            per=5000,
        )
    )

    assert [record["id"] for record in records] == [f"c{n}" for n in range(5)]
    first = queries[0]
    assert first["last_updated_at"] == ["2026-03-01T08:00:10Z..2026-03-01T08:01:00Z"]
    assert first["order_by"] == ["last_updated_at"] and first["order"] == ["asc"]
    assert first["per"] == ["1000"] and first["page"] == ["1"]
    assert first["fields"] == ["id,last_updated_at,sex,age"]
    assert first["record_state"] == ["true"] and first["module_id"] == ["primeromodule-cp"]


def test_iter_case_pages_reports_pages_for_checkpointing(
    mocked: responses.RequestsMock, make_client: Make
) -> None:
    fake = FakeCases()
    for n in range(5):
        fake.put(f"c{n}", n * 1000)
    serve(mocked, fake, [])

    pages = list(make_client(page_size=2).iter_case_pages(None))

    # Each request starts at the last second seen, so the boundary record comes back (deduped).
    assert [len(page.records) for page in pages] == [2, 1, 1, 1, 0]
    assert [page.checkpoint for page in pages] == [at(n * 1000) for n in (1, 2, 3, 4, 4)]
    assert pages[0].lower_bound is None and pages[1].lower_bound == at(1000)


def test_reserved_filters_are_refused(make_client: Make) -> None:
    with pytest.raises(ValueError, match="order_by"):
        make_client().iter_case_pages(None, filters={"order_by": "created_at"})


# --- property: nothing that existed at the start is ever missed ---------------------------------


@st.composite
def scenarios(draw: st.DrawFn) -> dict[str, Any]:
    n = draw(st.integers(0, 30))
    # Few distinct seconds and milliseconds: many ties, many crowded seconds.
    times = draw(
        st.lists(
            st.integers(0, 4).map(lambda s: s * 1000) | st.integers(0, 4999), min_size=n, max_size=n
        )
    )
    return {
        "times": times,
        "per": draw(st.integers(1, 6)),
        "seed": draw(st.integers(0, 2**32 - 1)),
        "edit_chance": draw(st.floats(0, 0.9)),
        "edit_budget": draw(st.integers(0, 25)),
        "step_ms": draw(st.integers(1, 1500)),
        "creates": draw(st.booleans()),
        "since": draw(st.none() | st.integers(0, 3)),
    }


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(scenarios())
def test_every_record_that_existed_at_the_start_is_yielded(scenario: dict[str, Any]) -> None:
    rng = random.Random(scenario["seed"])
    fake = FakeCases(rng=rng)
    for n, ms in enumerate(scenario["times"]):
        fake.put(f"c{n}", ms)
    initial = dict(fake.rows)
    fake.clock += rng.randint(0, 1000)  # "now" may still be inside the last crowded second
    budget = {"edits": scenario["edit_budget"], "created": 0}

    def concurrent_activity(fake: FakeCases) -> None:
        fake.clock += rng.randint(0, scenario["step_ms"])
        while budget["edits"] > 0 and fake.rows and rng.random() < scenario["edit_chance"]:
            budget["edits"] -= 1
            if scenario["creates"] and rng.random() < 0.3:
                budget["created"] += 1
                fake.edit(f"new{budget['created']}", rng.randint(0, 3))
            else:
                fake.edit(rng.choice(sorted(fake.rows)), rng.randint(0, 3))

    fake.before_each = concurrent_activity
    since_s = scenario["since"]
    since = at(since_s * 1000) if since_s is not None else None

    pages = list(iter_pages(fake.fetcher(scenario["per"]), since=since, until=None))

    yielded = [
        (record["id"], record["last_updated_at"]) for page in pages for record in page.records
    ]
    assert len(yielded) == len(set(yielded)), "a version was yielded twice"
    wanted = {
        case_id for case_id, (ms, _) in initial.items() if since is None or ms >= since_s * 1000
    }
    missing = wanted - {case_id for case_id, _ in yielded}
    assert not missing, f"records missed: {sorted(missing)}"
    checkpoints = [page.checkpoint for page in pages if page.checkpoint is not None]
    assert checkpoints == sorted(checkpoints)
    assert fake.requests < 2000


@settings(max_examples=150, deadline=None)
@given(
    times=st.lists(st.integers(0, 2).map(lambda s: s * 1000), max_size=25),
    per=st.integers(1, 5),
    seed=st.integers(0, 2**32 - 1),
)
def test_ties_in_a_new_order_on_every_request_lose_nothing(
    times: list[int], per: int, seed: int
) -> None:
    fake = FakeCases(rng=random.Random(seed), shuffle_ties=True)
    for n, ms in enumerate(times):
        fake.put(f"c{n}", ms)

    pages = list(iter_pages(fake.fetcher(per), since=None, until=None))

    assert set(ids(pages)) == set(fake.rows)


def test_a_first_pull_starts_at_the_unix_epoch_not_year_zero(
    mocked: responses.RequestsMock, make_client: Make
) -> None:
    # date_range.rb dawn_of_time = Time.zone.at(0); year 0000 is no year for PostgreSQL.
    assert range_param(None, at(0)) == "1970-01-01T00:00:00Z..2026-03-01T08:00:00Z"
    fake = FakeCases()
    fake.put("c0", 1_000)
    queries: list[dict[str, list[str]]] = []
    serve(mocked, fake, queries)

    records = list(make_client().iter_cases(None, at(60_000)))

    assert [record["id"] for record in records] == ["c0"]
    start = queries[0]["last_updated_at"][0].partition("..")[0]
    assert start == "1970-01-01T00:00:00Z"
    assert datetime.fromisoformat(start) == datetime(1970, 1, 1, tzinfo=UTC)
