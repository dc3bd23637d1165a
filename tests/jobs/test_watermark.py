"""The watermark: nothing handled twice across runs, nothing lost inside a shared second."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from hypothesis import given
from hypothesis import strategies as st

from adapter.jobs.watermark import Watermark, format_primero_time, parse_primero_time

BASE = datetime(2025, 3, 1, 10, 0, 0, tzinfo=UTC)


def rec(case_id: str, ms: int) -> dict[str, str]:
    return {
        "id": case_id,
        "last_updated_at": format_primero_time(BASE + timedelta(milliseconds=ms)),
    }


def test_time_format_round_trips_at_millisecond_precision() -> None:
    value = "2025-05-10T05:34:59.514Z"
    assert format_primero_time(parse_primero_time(value)) == value
    assert parse_primero_time("2025-05-10T10:34:59.514+05:00") == parse_primero_time(value)


def test_empty_watermark_takes_everything() -> None:
    assert Watermark().is_new(rec("a", 0))


def test_versions_inside_the_watermark_second_are_remembered() -> None:
    mark = Watermark().advance([rec("a", 100), rec("b", 900)])
    assert not mark.is_new(rec("a", 100))
    assert not mark.is_new(rec("b", 900))
    # Same second, unseen: a record shifted behind its neighbours by a concurrent edit.
    assert mark.is_new(rec("c", 50))
    # The same record saved again inside that second is a new version.
    assert mark.is_new(rec("a", 500))
    assert mark.is_new(rec("z", 1000))
    assert not mark.is_new(rec("old", -1))


def test_round_trips_through_text() -> None:
    mark = Watermark().advance([rec("a", 100), rec("b", 1100)])
    again = Watermark.from_text(mark.to_text())
    assert again == mark and again.second == BASE + timedelta(seconds=1)
    assert Watermark.from_text(None) == Watermark() == Watermark.from_text("{}")


@given(
    st.lists(st.tuples(st.sampled_from("abcdef"), st.integers(0, 3000)), min_size=1, max_size=40),
    st.integers(1, 10),
)
def test_splitting_a_stream_into_pages_never_loses_or_repeats(
    versions: list[tuple[str, int]], page_size: int
) -> None:
    """Records arrive in time order (as Primero returns them) in pages of any size, and each
    page re-reads from the watermark's second (closed bound): every version is handled once."""
    stream = sorted({rec(i, ms)["last_updated_at"] + "|" + i for i, ms in versions})
    records = [{"id": s.split("|")[1], "last_updated_at": s.split("|")[0]} for s in stream]
    mark, handled, position = Watermark(), [], 0
    while position < len(records):
        # Re-read from the start of the watermark's second, as the next request would.
        start = position
        while (
            start > 0
            and mark.second
            and parse_primero_time(records[start - 1]["last_updated_at"]).replace(microsecond=0)
            >= mark.second
        ):
            start -= 1
        page = records[start : start + page_size + (position - start)]
        fresh = [r for r in page if mark.is_new(r)]
        handled.extend(fresh)
        mark = mark.advance(fresh)
        position = start + len(page)
    assert sorted(map(str, handled)) == sorted(map(str, records))
