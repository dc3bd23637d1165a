"""The fuzzy stage's batch scoring (issue 15) ranks exactly as scoring row by row did.

``CandidateScorer.best_hits`` replaced a loop that built a ``FuzzyHit`` per blocking row with
:meth:`CandidateScorer.score` and kept each entry's best. On generated blocking rows — shared
and repeated key strings, missing fathers' names, swapped and equal dates, both year gaps,
one entry under several blocks, equal scores — both give the same hits, in the same order,
to the bit, and so the same decision.
"""

from __future__ import annotations

from datetime import date

from hypothesis import given, settings
from hypothesis import strategies as st

from adapter.registry.index import CandidateScorer, QueryIndex
from adapter.registry.matching import FuzzyHit, NameTokens, decide

Weighted = tuple[tuple[str, float], ...]
KEYS = [f"k{i:02d}" for i in range(12)]
LOW = frozenset(KEYS[:3])
DOBS = ["dob-same", "dob-swapped", "dob-other", "dob-else"]
BLOCKS = {"b0": 0, "b1": 1, "b2": 0, "b3": 1}

group = st.lists(st.sampled_from(KEYS), min_size=1, max_size=4, unique=True).map(
    lambda keys: " ".join(sorted(keys))
)
groups = st.lists(group, min_size=1, max_size=2).map("|".join)
weighted = st.lists(
    st.tuples(st.sampled_from(KEYS), st.sampled_from([0.25, 1.0])),
    min_size=0,
    max_size=4,
    unique_by=lambda pair: pair[0],
).map(tuple)
row = st.tuples(
    st.sampled_from(sorted(BLOCKS)),
    st.integers(1, 25),
    groups,
    st.one_of(st.just(""), groups),
    st.sampled_from(DOBS),
)


def _query(
    name: tuple[tuple[str, float], ...], father: tuple[tuple[str, float], ...]
) -> QueryIndex:
    return QueryIndex(
        cnic_mac="c",
        near_mac="n",
        tokens=NameTokens(("a",), ("b",)),
        name_query=name,
        father_query=father,
        dob=date(1990, 5, 1),
        dob_mac="dob-same",
        swapped_mac="dob-swapped",
        blocks=BLOCKS,
    )


def row_by_row(query: QueryIndex, rows: list[tuple[str, int, str, str, str]]) -> list[FuzzyHit]:
    """The fuzzy stage before issue 15, verbatim."""
    scorer = CandidateScorer(query, LOW)
    best: dict[int, FuzzyHit] = {}
    for block_key, entry_id, name_keys, father_keys, dob_mac in rows:
        hit = scorer.score(entry_id, name_keys, father_keys, dob_mac, query.blocks[block_key])
        known = best.get(entry_id)
        if known is None or hit.score > known.score:
            best[entry_id] = hit
    return list(best.values())


@settings(max_examples=400, deadline=None)
@given(name=weighted, father=weighted, rows=st.lists(row, max_size=60))
def test_batch_scoring_finds_the_same_candidates_as_row_by_row(
    name: Weighted,
    father: Weighted,
    rows: list[tuple[str, int, str, str, str]],
) -> None:
    query = _query(name, father)
    expected = row_by_row(query, rows)
    found = CandidateScorer(query, LOW).best_hits(rows)
    assert found == expected
    for threshold, floor in ((0.8, 0.6), (0.5, 0.0), (0.95, 0.9)):
        assert decide([], found, fuzzy_threshold=threshold, name_floor=floor) == decide(
            [], expected, fuzzy_threshold=threshold, name_floor=floor
        )
