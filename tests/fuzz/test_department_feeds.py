"""Hypothesis against a REST department's status feed (adapter/mappings/mapped.py): whatever
``updated_at`` a department's system sends, the status update carries a time the state store
can hold, or none.

Before: a time without a zone (``2026-03-05T10:00:00``) reached the links table naive, and
``9999-12-31T23:59:59-05:00`` has no UTC form; either failed the page transaction on every
poll, so one bad item stopped all of the department's statuses.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from adapter.app.departments import load_mapping
from adapter.mappings.mapped import MappedMapping
from adapter.state.types import UTCDateTime

MAPPINGS = Path(__file__).resolve().parents[2] / "config" / "mappings"
ZONES = st.one_of(
    st.none(),
    st.just(UTC),
    st.integers(-14 * 60, 14 * 60).map(lambda m: timezone(timedelta(minutes=m))),
)
times = st.one_of(
    st.datetimes(timezones=ZONES).map(datetime.isoformat),
    st.datetimes(timezones=ZONES).map(lambda d: d.isoformat().replace("+00:00", "Z")),
    st.sampled_from(
        ["", "yesterday", "2026-02-30T10:00:00Z", "0001-01-01T00:00:00+05:00", "2026-03-05"]
    ),
    st.text(max_size=30),
)


@pytest.fixture(scope="module")
def police() -> MappedMapping:
    return load_mapping(MAPPINGS / "police.toml", "police")


def item(updated_at: Any) -> dict[str, Any]:
    return {
        "referral_key": "ref-1",
        "status": "registered",
        "station": "PS-Kalri",
        "year": 2026,
        "serial": 14,
        "updated_at": updated_at,
    }


def storable(value: datetime) -> None:
    """What the state store does with a link's remote_updated_at (adapter/state/types.py)."""
    UTCDateTime().process_bind_param(value, None)  # type: ignore[arg-type]


def test_any_updated_at_gives_a_storable_time_or_none(
    police: MappedMapping, long_mode: bool
) -> None:
    @settings(max_examples=2000 if long_mode else 200, deadline=None, database=None)
    @given(updated_at=times)
    def each(updated_at: str) -> None:
        update, _ = police.status_update(item(updated_at))
        assert update is not None
        if update.updated_at is not None:
            assert update.updated_at.tzinfo is not None
            storable(update.updated_at)

    each()


@pytest.mark.parametrize(
    ("sent", "read"),
    [
        ("2026-03-05T10:00:00", datetime(2026, 3, 5, 5, 0, tzinfo=UTC)),  # no zone: PKT
        ("2026-03-05T10:00:00Z", datetime(2026, 3, 5, 10, 0, tzinfo=UTC)),
        ("9999-12-31T23:59:59-05:00", None),
        ("0001-01-01T00:00:00+05:00", None),
    ],
)
def test_a_time_without_a_zone_is_pakistan_time_and_an_impossible_one_is_none(
    police: MappedMapping, sent: str, read: datetime | None
) -> None:
    update, _ = police.status_update(item(sent))
    assert update is not None
    assert update.updated_at == read
