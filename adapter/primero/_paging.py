"""Incremental listing over Primero's offset paging without losing a record.

Primero pages by OFFSET (`page`/`per`, pagination.rb) and sorts by `data->'last_updated_at'` with
no tie-breaker (identifier_search_query.rb#apply_data_sort). Offset paging over a set that changes
while it is read skips records at page boundaries: a record edited during the listing moves to the
end, and everything behind it shifts one place forward. Its range filter compares with
`TO_TIMESTAMP(v, 'YYYY-MM-DD"T"HH24:MI:SS')` [search_filters/date_range.rb, report.rb], i.e. at
whole seconds, while `last_updated_at` carries milliseconds (primero-api.md §3).

So we emulate keyset paging (architecture.md §5.3):

1. Always ask for page 1 with a closed lower bound = the last seen second; de-duplicate the
   overlap by `(id, last_updated_at)`. Every record before the page's last second was on the page.
2. When a whole page falls in one second (bulk imports), that second cannot be split by the
   filter: page through `L..L` and re-scan it from page 1 until a pass (a) saw the same total on
   every page, (b) found no unseen record, and (c) the records seen since the total last changed
   number at least that total. Under Primero's stable order an edit inside the pass shows up as a
   new `(id, last_updated_at)` (a), a record leaving the second changes the total (b); (c) also
   covers PostgreSQL returning ties in a different order on each request.
3. Then continue from the next second. Stop when a page is short; refuse to loop when Primero
   ignores the filter, the order or the page number.
A record changed after it was listed can appear again; none that existed at the start is missed.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from adapter.errors import PrimeroProtocolError
from adapter.primero.models import CasePage, Record

SECOND = timedelta(seconds=1)
# The open lower bound of a first pull: Primero's own `SearchFilters::DateRange.dawn_of_time`,
# `Time.zone.at(0)` (app/models/search_filters/date_range.rb). Not the web UI's year 0000
# (value-handlers.js): PostgreSQL's TO_TIMESTAMP, which the filter applies to the bound, has
# no year zero, and how it takes one differs between versions.
DAWN = "1970-01-01T00:00:00Z"
MAX_GROUP_PASSES = 50


@dataclass(frozen=True)
class Batch:
    """One page as Primero returned it; ``per`` is the page size it applied (it caps at 1000)."""

    records: list[Record]
    total: int
    per: int


#: fetch(lower, upper, page) -> Batch, for `last_updated_at=lower..upper` at whole seconds.
Fetch = Callable[[datetime | None, datetime | None, int], Batch]


def floor_second(value: datetime) -> datetime:
    """`value` in UTC, truncated to the second (the granularity of Primero's filter)."""
    if value.tzinfo is None:
        raise ValueError(
            "datetimes given to the Primero client must be timezone-aware (use UTC): "
            "Primero compares wall-clock digits and ignores offsets (primero-api.md §3)"
        )
    return value.astimezone(UTC).replace(microsecond=0)


def format_bound(value: datetime) -> str:
    """A range bound as Primero's filter expects it: UTC `Z`, whole seconds."""
    # Primero ignores the tz offset in range filters (primero-api.md §3): always send UTC Z.
    return floor_second(value).strftime("%Y-%m-%dT%H:%M:%SZ")


def range_param(lower: datetime | None, upper: datetime | None) -> str | None:
    """The `last_updated_at` value for a closed range; None for no filter at all."""
    if lower is None and upper is None:
        return None
    start = format_bound(lower) if lower is not None else DAWN
    # An open range `from..` becomes `>= from` (search_filters/date_range.rb#json_from_query).
    end = format_bound(upper) if upper is not None else ""
    return f"{start}..{end}"


def record_time(record: Record) -> datetime | None:
    """The record's `last_updated_at` as an aware datetime, None if missing or unparseable."""
    value = record.get("last_updated_at")
    if not isinstance(value, str):
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


class _Seen:
    """`(id, last_updated_at)` pairs already yielded, forgotten once below the lower bound."""

    def __init__(self) -> None:
        self._keys: dict[tuple[str, str], datetime] = {}

    def take(self, records: list[Record], seconds: list[datetime]) -> list[Record]:
        fresh = []
        for record, second in zip(records, seconds, strict=True):
            key = (str(record.get("id")), str(record.get("last_updated_at")))
            if key not in self._keys:
                self._keys[key] = second
                fresh.append(record)
        return fresh

    def prune(self, lower: datetime) -> None:
        self._keys = {key: second for key, second in self._keys.items() if second >= lower}


def iter_pages(
    fetch: Fetch,
    *,
    since: datetime | None,
    until: datetime | None,
    where: str = "GET /api/v2/cases",
    max_group_passes: int = MAX_GROUP_PASSES,
) -> Iterator[CasePage]:
    """Yield every page of records with `last_updated_at` in `[since, until]` (whole seconds)."""
    lower = floor_second(since) if since is not None else None
    upper = floor_second(until) if until is not None else None
    seen = _Seen()
    while upper is None or lower is None or lower <= upper:
        batch = fetch(lower, upper, 1)
        seconds = _checked_seconds(batch, lower, upper, where)
        fresh = seen.take(batch.records, seconds)
        if len(batch.records) < batch.per:  # the rest of the range fitted on this page
            last = seconds[-1] if seconds else lower
            yield CasePage(fresh, batch.total, lower, 1, last)
            return
        top = seconds[-1]
        if seconds[0] < top:
            yield CasePage(fresh, batch.total, lower, 1, top)
            lower = top
            seen.prune(lower)
            continue
        # The whole page shares one second (nothing lies between `lower` and it): the filter
        # cannot split it, so page through it by offset, re-scanned until complete.
        yield CasePage(fresh, batch.total, lower, 1, top)
        yield from _scan_second(fetch, top, seen, where, max_group_passes)
        lower = top + SECOND
        seen.prune(lower)


def _scan_second(
    fetch: Fetch, second: datetime, seen: _Seen, where: str, max_passes: int
) -> Iterator[CasePage]:
    window_total = -1  # the total since it last changed
    window_ids: set[str] = set()  # ids returned since then
    window_whole_from = 1  # first pass that lies entirely inside the window
    for pass_no in range(1, max_passes + 1):
        page = 1
        pass_fresh = 0
        most = 0
        while True:
            batch = fetch(second, second, page)
            seconds = _checked_seconds(batch, second, second, where)
            if batch.total != window_total:
                window_total = batch.total
                window_ids = set()
                window_whole_from = pass_no if page == 1 else pass_no + 1
            window_ids.update(str(record.get("id")) for record in batch.records)
            fresh = seen.take(batch.records, seconds)
            pass_fresh += len(fresh)
            yield CasePage(fresh, batch.total, second, page, second)
            most = max(most, batch.total)
            if len(batch.records) < batch.per:
                break
            if (page - 1) * batch.per >= most:
                raise PrimeroProtocolError(
                    f"{where}: Primero returned full pages beyond its total "
                    f"({most} records): it ignored the `page` parameter. Paging stopped rather "
                    "than loop.",
                    method="GET",
                    resource=where.split(" ", 1)[-1],
                )
            page += 1
        if window_whole_from <= pass_no and pass_fresh == 0 and len(window_ids) >= window_total:
            return
    raise PrimeroProtocolError(
        f"{where}: the records updated within one second ({window_total} of them) kept changing "
        f"or reordering for {max_passes} passes; paging stopped so that none is skipped silently. "
        "Retry the run later.",
        method="GET",
        resource=where.split(" ", 1)[-1],
    )


def _checked_seconds(
    batch: Batch, lower: datetime | None, upper: datetime | None, where: str
) -> list[datetime]:
    """Each record's second; refuse answers that would make the algorithm lose records."""
    path = where.split(" ", 1)[-1]
    seconds: list[datetime] = []
    for record in batch.records:
        when = record_time(record)
        if when is None or not isinstance(record.get("id"), str):
            raise PrimeroProtocolError(
                f"{where}: a listed record has no id or no valid last_updated_at; Primero "
                "always returns both (record_data_service.rb).",
                method="GET",
                resource=path,
            )
        second = floor_second(when)
        if (lower is not None and second < lower) or (upper is not None and second > upper):
            raise PrimeroProtocolError(
                f"{where}: Primero returned records outside the requested last_updated_at range: "
                "it ignored the filter (it drops filters on fields the role may not read, "
                "search_filter_service.rb). Paging stopped rather than miss records.",
                method="GET",
                resource=path,
            )
        if seconds and second < seconds[-1]:
            raise PrimeroProtocolError(
                f"{where}: Primero did not order the records by last_updated_at ascending; "
                "paging stopped rather than miss records.",
                method="GET",
                resource=path,
            )
        seconds.append(second)
    if batch.per < 1:
        raise PrimeroProtocolError(
            f"{where}: Primero reported a page size below 1.", method="GET", resource=path
        )
    return seconds
