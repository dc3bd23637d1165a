"""Published statistics: small-cell suppression, complementary suppression, and releases that
cannot be differenced (privacy.md §6.7, §7 item 23).

A release is one table per (district, month), GBVIMS monthly-report style: rows are
(concern, age band), columns are sex, with row totals, column totals and the block total.
Nothing is summed across districts or months, so blocks are independent tables.

Which entries (cells *and* totals) are hidden:

1. **primary**: a count from 1 to ``min_cell - 1``;
2. **change**: an entry an earlier release showed, whose value has since changed by 1 to
   ``min_cell - 1``. "Two releases" are the same table published at two times (e.g. monthly,
   after more closures or a reopening): subtracting one from the other must not reveal a small
   number of cases, which is the same risk as a small cell (§7 item 23);
3. **complementary**: until no hidden entry can be computed from the shown ones. With every
   line of the table summing to its total, a hidden entry is determined exactly iff it is a
   *bridge* of the bipartite graph whose nodes are rows and columns (totals included) and whose
   edges are the hidden entries; each bridge gets a complement that closes a cycle through it.
   Complements are chosen among entries the previous release hid (a stable pattern gives a
   second release nothing new), then the smallest non-zero counts.

Every release is recorded (``retention_published``): the next one is suppressed against what
was actually shown. Known limit: hidden entries are protected against exact recovery, not
against narrow bounds (a hidden pair known to sum to 5 bounds each to 0-5).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from adapter.retention._tables import retention_published, retention_releases
from adapter.retention.aggregates import AGE_BANDS, SEXES, counts

TOTAL = "total"
Row = tuple[str, str]  # (concern, age band), or (TOTAL, TOTAL) for the column totals
Key = tuple[Row, str]  # (row, sex or TOTAL)
Node = tuple[str, Row | str]  # ("r", row) or ("c", column)


@dataclass(frozen=True)
class Prior:
    """What earlier releases showed of one entry."""

    shown: int | None
    hidden_last: bool


@dataclass(frozen=True)
class StatRow:
    """One published entry; ``count`` is None when suppressed. TOTAL marks a margin."""

    district: str
    month: str
    concern: str
    age_band: str
    sex: str
    count: int | None


@dataclass(frozen=True)
class Release:
    """One statistics release."""

    release_id: int | None
    released_at: datetime
    rows: tuple[StatRow, ...]

    @property
    def suppressed(self) -> int:
        return sum(1 for r in self.rows if r.count is None)


def _row_order(row: Row) -> tuple[int, str, int]:
    concern, band = row
    return (
        1 if concern == TOTAL else 0,
        concern,
        AGE_BANDS.index(band) if band in AGE_BANDS else len(AGE_BANDS),
    )


def _col_order(col: str) -> int:
    return SEXES.index(col) if col in SEXES else len(SEXES)


def block_entries(cells: Mapping[Key, int], rows: set[Row], cols: set[str]) -> dict[Key, int]:
    """Cells (missing ones are 0) plus row totals, column totals and the block total."""
    entries: dict[Key, int] = {}
    for row in rows:
        for col in cols:
            entries[(row, col)] = cells.get((row, col), 0)
        entries[(row, TOTAL)] = sum(entries[(row, col)] for col in cols)
    for col in cols:
        entries[((TOTAL, TOTAL), col)] = sum(entries[(row, col)] for row in rows)
    entries[((TOTAL, TOTAL), TOTAL)] = sum(entries[(row, TOTAL)] for row in rows)
    return entries


def _bridge(hidden: set[Key]) -> tuple[Key, set[Node], set[Node]] | None:
    """A hidden entry that is a bridge, with the node sets on either side of it."""
    adjacency: dict[Node, set[Node]] = defaultdict(set)
    for row, col in hidden:
        adjacency[("r", row)].add(("c", col))
        adjacency[("c", col)].add(("r", row))
    for key in sorted(hidden, key=repr):
        row_node: Node = ("r", key[0])
        col_node: Node = ("c", key[1])
        seen: set[Node] = {row_node}
        todo: list[Node] = [row_node]
        while todo:
            node = todo.pop()
            for other in adjacency[node]:
                if {node, other} == {row_node, col_node} or other in seen:
                    continue
                seen.add(other)
                todo.append(other)
        if col_node not in seen:
            far: set[Node] = {col_node}
            todo = [col_node]
            while todo:
                node = todo.pop()
                for other in adjacency[node]:
                    if {node, other} == {row_node, col_node} or other in far:
                        continue
                    far.add(other)
                    todo.append(other)
            return key, seen, far
    return None


def suppress_block(
    entries: Mapping[Key, int], min_cell: int, prior: Mapping[Key, Prior] | None = None
) -> set[Key]:
    """The entries of one block to hide (primary, change and complementary rules above)."""
    prior = prior or {}
    hidden: set[Key] = set()
    for key, value in entries.items():
        before = prior.get(key)
        if 0 < value < min_cell:
            hidden.add(key)
        elif before is not None and before.shown is not None:
            if 0 < abs(value - before.shown) < min_cell:
                hidden.add(key)

    def preference(key: Key) -> tuple[int, int, int, str]:
        before = prior.get(key)
        value = entries[key]
        return (0 if before and before.hidden_last else 1, 1 if value == 0 else 0, value, repr(key))

    while True:
        found = _bridge(hidden)
        if found is None:
            return hidden
        _, near, far = found
        shown = [k for k in entries if k not in hidden]
        closing = [
            k
            for k in shown
            if (("r", k[0]) in near and ("c", k[1]) in far)
            or (("r", k[0]) in far and ("c", k[1]) in near)
        ]
        touching = [k for k in shown if {("r", k[0]), ("c", k[1])} & (near | far)]
        choice = closing or touching
        if not choice:  # everything is hidden already: nothing left to compute from
            return hidden
        hidden.add(min(choice, key=preference))


def _prior(conn: Connection) -> tuple[dict[tuple[str, str], dict[Key, Prior]], int | None]:
    last = conn.execute(sa.select(sa.func.max(retention_releases.c.id))).scalar()
    found: dict[tuple[str, str], dict[Key, Prior]] = defaultdict(dict)
    for r in conn.execute(sa.select(retention_published)):
        key: Key = ((r.concern, r.age_band), r.sex)
        found[(r.district, r.month)][key] = Prior(
            None if r.shown is None else int(r.shown),
            last is not None and r.hidden_in == last,
        )
    return found, last


def release(conn: Connection, *, min_cell: int, now: datetime, record: bool = True) -> Release:
    """Build the current release from the aggregates, suppressed against every earlier one;
    with ``record`` it becomes the new baseline (every printed release counts as published)."""
    priors, _ = _prior(conn)
    cells: dict[tuple[str, str], dict[Key, int]] = defaultdict(dict)
    for cell, count in counts(conn).items():
        cells[(cell.district, cell.month)][((cell.concern, cell.age_band), cell.sex)] = count
    out: list[tuple[str, str, Key, int, bool]] = []
    for block in sorted(set(cells) | set(priors)):
        known = set(cells[block]) | {k for k in priors.get(block, {}) if k[0][0] != TOTAL}
        rows = {k[0] for k in known if k[1] != TOTAL}
        cols = {k[1] for k in known if k[1] != TOTAL}
        if not rows or not cols:
            continue
        entries = block_entries(cells[block], rows, cols)
        hidden = suppress_block(entries, min_cell, priors.get(block))
        ordered = sorted(
            entries,
            key=lambda k: (_row_order(k[0]), 1 if k[1] == TOTAL else 0, _col_order(k[1])),
        )
        out.extend((block[0], block[1], k, entries[k], k in hidden) for k in ordered)
    release_id = None
    if record:
        result = conn.execute(
            retention_releases.insert().values(
                released_at=now, entries=len(out), suppressed=sum(1 for o in out if o[4])
            )
        )
        assert result.inserted_primary_key is not None
        release_id = int(result.inserted_primary_key[0])
        for district, month, key, value, is_hidden in out:
            (concern, band), sex = key
            where = (
                retention_published.c.district == district,
                retention_published.c.month == month,
                retention_published.c.concern == concern,
                retention_published.c.age_band == band,
                retention_published.c.sex == sex,
            )
            before = priors.get((district, month), {}).get(key)
            shown = (before.shown if before else None) if is_hidden else value
            values = {
                "shown": shown,
                "hidden_in": release_id if is_hidden else None,
                "release_id": release_id,
            }
            if before is None:
                conn.execute(
                    retention_published.insert().values(
                        district=district,
                        month=month,
                        concern=concern,
                        age_band=band,
                        sex=sex,
                        **values,
                    )
                )
            else:
                conn.execute(retention_published.update().where(*where).values(**values))
    published = tuple(
        StatRow(d, m, k[0][0], k[0][1], k[1], None if h else v) for d, m, k, v, h in out
    )
    return Release(release_id, now, published)
