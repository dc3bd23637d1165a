"""The pure name rules and the outcome table (privacy.md §2.2, §6.6 item 4, §7 items 14-16)."""

from __future__ import annotations

import unicodedata
from datetime import date

import pytest
from hypothesis import given
from hypothesis import strategies as st

from adapter.privacy.normalise import name_key
from adapter.registry.index import CandidateScorer
from adapter.registry.matching import (
    Corroboration,
    ExactHit,
    FuzzyHit,
    Outcome,
    Rule,
    canonical_tokens,
    corroborate,
    decide,
    fold,
    person_tokens,
    phonetic_code,
    tokens_agree,
    weighted_dice,
)

JW = 0.85


@pytest.mark.parametrize(
    "variants",
    [
        ["Muhammad Ali", "Mohammad Ali", "Mohammed Ali", "Mohd. Ali", "Md Ali", "M. Ali"],
        ["Abdul Rehman", "Abdur Rahman", "Abd-ur-Rehman", "Abdulrehman", "ABDUL REHMAN"],
        ["Hussain", "Husain", "Hussein", "Hosain"],
        ["Ayesha", "Aisha", "Aysha", "Ayeshah"],
        ["Zainab", "Zenab", "Zaineb", "Zeinab"],
        ["Qureshi", "Kureshi", "Quraishi"],
        ["Farooq", "Farouk", "Faruq"],
    ],
)
def test_spelling_variants_and_abbreviations_agree(variants: list[str]) -> None:
    tokens = [canonical_tokens(v) for v in variants]
    for other in tokens[1:]:
        assert tokens_agree(tokens[0], other, JW), (tokens[0], other)


def test_different_given_names_do_not_agree_despite_a_shared_muhammad() -> None:
    # As strings "muhammad ali" ~ "muhammad arif" score JW 0.95: token by token they differ.
    assert not tokens_agree(canonical_tokens("Muhammad Ali"), canonical_tokens("Muhammad Arif"), JW)
    assert not tokens_agree(canonical_tokens("Ali Raza"), canonical_tokens("Ali Rizwan"), JW)


def test_relation_markers_split_off_the_fathers_name() -> None:
    for text in (
        "Muhammad Ali s/o Muhammad Aslam",
        "Muhammad Ali S/O Late Muhammad Aslam",
        "Muhammad Ali son of Muhammad Aslam",
        "Muhammad Ali bin Muhammad Aslam",
    ):
        assert person_tokens(text, None) == person_tokens("Muhammad Ali", "Muhammad Aslam"), text
    assert person_tokens("Mst. Zainab Bibi d/o Ghulam Rasool", None).father == ("ghulam", "rasool")
    assert person_tokens("علی ولد اسلم", None).father == ("اسلم",)


def test_explicit_fathers_name_wins_over_an_embedded_one() -> None:
    assert person_tokens("Ali s/o Akram", "Aslam").father == ("aslam",)


URDU_VARIANTS = [
    "محمد علی",  # Farsi yeh
    "محمد علي",  # Arabic yeh
    "مُحَمَّد عَلی",  # harakat
    "محـــمد علی",  # tatweel
    "مح\u200cمد عل\u200dی",  # ZWNJ / ZWJ inside words
]


def test_urdu_folding_gives_one_key() -> None:
    # privacy.md §7 item 14: ي/ی, harakat, tatweel produce the same match key.
    base = canonical_tokens(URDU_VARIANTS[0])
    for variant in URDU_VARIANTS[1:]:
        assert canonical_tokens(variant) == base
    assert canonical_tokens("کریم") == canonical_tokens("كريم") == canonical_tokens("ڪريم")
    assert canonical_tokens("فاطمہ") == canonical_tokens("فاطمه") == canonical_tokens("فاطمة")


def test_nfc_nfd_fullwidth_and_bidi_controls_fold() -> None:
    # privacy.md §7 items 15-16.
    assert canonical_tokens(unicodedata.normalize("NFD", "Zoë Ali")) == canonical_tokens("Zoe Ali")
    assert canonical_tokens("Ｍｕｈａｍｍａｄ Ａｌｉ") == canonical_tokens("Muhammad Ali")
    assert canonical_tokens("Muhammad\u202e Ali\u200b") == canonical_tokens("Muhammad Ali")


def test_latin_and_urdu_never_compare() -> None:
    assert phonetic_code("ali") != phonetic_code("علی")
    assert not tokens_agree(("ali",), ("علی",), JW)


def test_corroboration_needs_name_father_and_dob() -> None:
    request = person_tokens("Mohd Ali", "Mohammad Aslam")
    registered = [person_tokens("Muhammad Ali", "Muhammad Aslam")]
    dob = date(1990, 5, 1)
    assert corroborate(request, dob, registered, dob, JW).full
    assert not corroborate(request, date(1990, 5, 2), registered, dob, JW).full
    other_father = person_tokens("Mohd Ali", "Zafar Iqbal")
    assert not corroborate(other_father, dob, registered, dob, JW).full
    no_father = [person_tokens("Muhammad Ali", None)]
    assert corroborate(request, dob, no_father, dob, JW).full  # nothing to contradict


FULL = Corroboration(True, True, True)
PARTIAL = Corroboration(True, False, True)


def test_rule_table() -> None:
    kw = {"fuzzy_threshold": 0.8, "name_floor": 0.75}
    assert decide([ExactHit(1, False, FULL)], [], **kw).outcome is Outcome.DO_NOT_ENGAGE
    assert decide([ExactHit(1, True, FULL)], [], **kw).rule is Rule.EXACT_UNDER_APPEAL
    mismatch = decide([ExactHit(1, False, PARTIAL)], [FuzzyHit(2, 1.0, 1.0)], **kw)
    assert (mismatch.outcome, mismatch.rule) == (Outcome.PENDING_REVIEW, Rule.CNIC_HIT_MISMATCH)
    assert decide([], [FuzzyHit(2, 0.9, 0.9)], **kw).outcome is Outcome.PENDING_REVIEW
    assert decide([], [FuzzyHit(2, 0.9, 0.5)], **kw).outcome is Outcome.CLEAR  # name too weak
    assert decide([], [FuzzyHit(2, 0.7, 1.0)], **kw).outcome is Outcome.CLEAR


hits = st.builds(FuzzyHit, st.integers(1, 99), st.floats(0, 1), st.floats(0, 1))
corroborations = st.builds(Corroboration, st.booleans(), st.booleans(), st.booleans())
exact_hits = st.builds(ExactHit, st.integers(1, 99), st.booleans(), corroborations)


@given(st.lists(hits, max_size=20))
def test_a_fuzzy_only_match_is_never_do_not_engage(fuzzy: list[FuzzyHit]) -> None:
    decision = decide([], fuzzy, fuzzy_threshold=0.8, name_floor=0.75)
    assert decision.outcome is not Outcome.DO_NOT_ENGAGE


@given(st.lists(exact_hits, min_size=1, max_size=5), st.lists(hits, max_size=5))
def test_a_cnic_hit_is_never_clear(exact: list[ExactHit], fuzzy: list[FuzzyHit]) -> None:
    decision = decide(exact, fuzzy, fuzzy_threshold=0.8, name_floor=0.75)
    assert decision.outcome is not Outcome.CLEAR
    if decision.outcome is Outcome.DO_NOT_ENGAGE:
        assert any(h.corroboration.full and not h.under_appeal for h in exact)


@given(st.text(alphabet=st.characters(max_codepoint=127), max_size=60))
def test_the_ascii_fast_path_equals_name_key(text: str) -> None:
    assert fold(text) == name_key(text)


keys = st.sampled_from([f"k{i}" for i in range(8)])


@given(st.dictionaries(keys, st.sampled_from([0.25, 1.0]), max_size=5), st.sets(keys, max_size=5))
def test_the_scorers_unrolled_dice_equals_weighted_dice(
    query: dict[str, float], candidate: set[str]
) -> None:
    low = frozenset({"k0", "k1"})
    scorer = CandidateScorer.__new__(CandidateScorer)
    scorer.low_keys = low
    expected = weighted_dice(tuple(query.items()), frozenset(candidate), low)
    assert abs(scorer._best(query, " ".join(sorted(candidate))) - expected) < 1e-9
