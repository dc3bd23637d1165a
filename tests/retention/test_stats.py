"""Published statistics: no small count can be read off one release, or off two (§7 item 23).

"Determined" is checked independently of the suppression code: exact linear algebra over the
equations an attacker has (every row and column of a block sums to its total, with the shown
entries known). A hidden entry is safe iff its unit vector is outside the row space.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from fractions import Fraction

from hypothesis import given, settings
from hypothesis import strategies as st
from sqlalchemy.engine import Connection

from adapter.retention.aggregates import Contribution, add
from adapter.retention.stats import TOTAL, Key, Release, block_entries, release, suppress_block
from adapter.state import StateStore

K = 5
NOW = datetime(2026, 2, 1, tzinfo=UTC)


def lines(entries: Mapping[Key, int]) -> list[tuple[list[Key], Key]]:
    """Each line of a block: its parts and its total."""
    rows = {k[0] for k in entries if k[0][0] != TOTAL}
    cols = {k[1] for k in entries if k[1] != TOTAL}
    found = [([(r, c) for c in cols], (r, TOTAL)) for r in rows]
    found.append(([((TOTAL, TOTAL), c) for c in cols], ((TOTAL, TOTAL), TOTAL)))
    found += [([(r, c) for r in rows], ((TOTAL, TOTAL), c)) for c in cols]
    found.append(([(r, TOTAL) for r in rows], ((TOTAL, TOTAL), TOTAL)))
    return found


def _rank(matrix: list[list[Fraction]]) -> int:
    m = [row[:] for row in matrix]
    rank, cols = 0, len(m[0]) if m else 0
    for col in range(cols):
        pivot = next((i for i in range(rank, len(m)) if m[i][col] != 0), None)
        if pivot is None:
            continue
        m[rank], m[pivot] = m[pivot], m[rank]
        for i in range(len(m)):
            if i != rank and m[i][col] != 0:
                factor = m[i][col] / m[rank][col]
                m[i] = [a - factor * b for a, b in zip(m[i], m[rank], strict=True)]
        rank += 1
    return rank


def determined(entries: Mapping[Key, int], hidden: set[Key]) -> set[Key]:
    """The hidden entries an attacker can compute exactly from the shown ones."""
    unknown = sorted(hidden, key=repr)
    if not unknown:
        return set()
    index = {k: i for i, k in enumerate(unknown)}
    matrix: list[list[Fraction]] = []
    for parts, total in lines(entries):
        row = [Fraction(0)] * len(unknown)
        for part in parts:
            if part in index:
                row[index[part]] += 1
        if total in index:
            row[index[total]] -= 1
        if any(row):
            matrix.append(row)
    base = _rank(matrix) if matrix else 0
    found = set()
    for key, i in index.items():
        unit = [Fraction(1 if j == i else 0) for j in range(len(unknown))]
        if _rank([*matrix, unit]) == base:
            found.add(key)
    return found


def block(cells: dict[tuple[str, str, str], int]) -> dict[Key, int]:
    keyed = {((c, a), s): n for (c, a, s), n in cells.items()}
    return block_entries(keyed, {k[0] for k in keyed}, {k[1] for k in keyed})


def test_small_cells_and_their_complements_are_hidden() -> None:
    entries = block(
        {
            ("S2", "5-9", "female"): 3,
            ("S2", "5-9", "male"): 12,
            ("S2", "10-14", "female"): 9,
            ("S2", "10-14", "male"): 20,
            ("S3", "10-14", "female"): 7,
            ("S3", "10-14", "male"): 8,
        }
    )
    hidden = suppress_block(entries, K)
    assert (("S2", "5-9"), "female") in hidden
    # Its row and column totals are shown, so a complement in each is hidden too.
    assert len([k for k in hidden if k[0] == ("S2", "5-9")]) >= 2
    assert len([k for k in hidden if k[1] == "female"]) >= 2
    assert determined(entries, hidden) == set()
    assert all(entries[k] == 0 or entries[k] >= K for k in entries if k not in hidden)


def test_a_small_total_is_hidden_and_protected() -> None:
    entries = block({("S3", "10-14", "female"): 2, ("S3", "10-14", "male"): 1})
    hidden = suppress_block(entries, K)
    assert ((TOTAL, TOTAL), TOTAL) in hidden and determined(entries, hidden) == set()


cells_strategy = st.dictionaries(
    st.tuples(
        st.sampled_from(["S0", "S1", "S2", "S3"]),
        st.sampled_from(["0-4", "5-9", "10-14", "15-17"]),
        st.sampled_from(["female", "male", "unknown"]),
    ),
    st.integers(min_value=0, max_value=12),
    min_size=1,
    max_size=12,
)


@settings(max_examples=60, deadline=None)
@given(cells_strategy)
def test_no_hidden_entry_can_be_recovered_from_one_release(
    cells: dict[tuple[str, str, str], int],
) -> None:
    entries = block(cells)
    hidden = suppress_block(entries, K)
    assert all(not 0 < entries[k] < K for k in entries if k not in hidden)
    assert determined(entries, hidden) == set()


def publish(conn: Connection, now: datetime = NOW) -> dict[Key, int | None]:
    published: Release = release(conn, min_cell=K, now=now)
    return {((r.concern, r.age_band), r.sex): r.count for r in published.rows}


def fill(conn: Connection, cells: dict[tuple[str, str, str], int]) -> None:
    for (concern, band, sex), n in cells.items():
        for _ in range(n):
            add(conn, Contribution("PK-SD-KHI", "2026-01", concern, band, sex), +1)


def test_two_releases_cannot_be_subtracted_to_reveal_a_few_cases(store: StateStore) -> None:
    first_cells = {
        ("S2", "5-9", "female"): 6,
        ("S2", "5-9", "male"): 12,
        ("S2", "10-14", "female"): 9,
        ("S2", "10-14", "male"): 20,
        ("S3", "10-14", "female"): 7,
        ("S3", "10-14", "male"): 3,
    }
    with store.transaction() as conn:
        fill(conn, first_cells)
        first = publish(conn)
        # One more girl of 5-9 with an S2 concern closes her case; a boy's case is reopened.
        add(conn, Contribution("PK-SD-KHI", "2026-01", "S2", "5-9", "female"), +1)
        add(conn, Contribution("PK-SD-KHI", "2026-01", "S2", "10-14", "male"), -1)
        second = publish(conn)
        third = publish(conn)  # nothing changed since: nothing new can be learnt

    for earlier, later in ((first, second), (second, third), (first, third)):
        for key in earlier.keys() & later.keys():
            a, b = earlier[key], later[key]
            if a is not None and b is not None:
                assert b == a or abs(b - a) >= K, key
    assert second[(("S2", "5-9"), "female")] is None  # changed by one: hidden
    assert second[(("S2", "5-9"), TOTAL)] is None  # so did its row total
    assert second[((TOTAL, TOTAL), "female")] is None  # and its column total
    assert second[((TOTAL, TOTAL), TOTAL)] == 57  # +1 and -1: the block total did not move
    true_second = block({**first_cells, ("S2", "5-9", "female"): 7, ("S2", "10-14", "male"): 19})
    hidden = {k for k, v in second.items() if v is None}
    assert determined(true_second, hidden) == set()
    assert {k for k, v in third.items() if v is None} == hidden  # a stable pattern


def test_releases_are_per_district_and_month_and_recorded(store: StateStore) -> None:
    with store.transaction() as conn:
        add(conn, Contribution("PK-SD-KHI", "2026-01", "S1", "5-9", "male"), +1)
        add(conn, Contribution("PK-PB-LHR", "2026-02", "S1", "5-9", "male"), +1)
        published = release(conn, min_cell=K, now=NOW)
    assert published.release_id == 1
    assert {(r.district, r.month) for r in published.rows} == {
        ("PK-SD-KHI", "2026-01"),
        ("PK-PB-LHR", "2026-02"),
    }
    assert all(r.count is None for r in published.rows if r.count != 0)
