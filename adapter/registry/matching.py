"""Pure name matching for the registry (privacy.md §2.2, §6.6 items 3-4). No I/O, no keys.

Pakistani names, as privacy.md §2.2 measured them:

* spelling variants (Muhammad/Mohammed, Hussain/Husain, Qureshi/Kureshi) share one Double
  Metaphone primary code, so a token's *phonetic code* is ``L`` + that code;
* abbreviations do not (``Mohd`` → MT, ``M.`` → M): they are expanded to ``muhammad`` first;
* the assimilated article (Abdul/Abdur/Abd-ur/Abdus) is folded to ``abdul`` + the next word;
* honorifics (Mst., Mr., Late) carry no identity and are dropped; very common tokens
  (Muhammad, Syed, Bibi, Khan …) are kept with a low weight (§2.2 rule 3);
* ``s/o``, ``d/o``, ``w/o``, ``bin``, ``binte``, ``walad`` (and ولد/بنت/زوجہ) split a full name
  into the person's and the father's/husband's name (§2.2 rule 1);
* Urdu script is folded by :func:`adapter.privacy.normalise.name_key` (yeh/kaf/heh variants,
  harakat, tatweel, ZWNJ) and is never transliterated (§2.2 rule 2): an Urdu token's code is
  ``U`` + the folded token, so Latin and Urdu names only ever compare within their own script.

:func:`decide` is the rule table of §6.6 item 4; the I/O around it lives in ``checks.py``.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date
from enum import StrEnum
from functools import lru_cache

from metaphone import doublemetaphone
from rapidfuzz.distance import JaroWinkler

from adapter.privacy.normalise import name_key

LOW_WEIGHT = 0.25
# Scores: privacy.md §6.6 item 4(c) "name + father + DOB scoring".
NAME_WEIGHT, FATHER_WEIGHT, DOB_WEIGHT = 0.5, 0.3, 0.2
# A candidate whose father's name the registry does not hold neither confirms nor refutes.
UNKNOWN_FATHER_SCORE = 0.5
MAX_BLOCK_TOKENS = 2


class Outcome(StrEnum):
    """The only three answers a check gives (issue 6 item 2)."""

    CLEAR = "CLEAR"
    PENDING_REVIEW = "PENDING_REVIEW"
    DO_NOT_ENGAGE = "DO_NOT_ENGAGE"


class Rule(StrEnum):
    """Why a check came out as it did: kept for officers and the audit log, never answered."""

    EXACT_MATCH = "exact_match"  # (a) CNIC hit, name, father and DOB corroborate
    EXACT_UNDER_APPEAL = "exact_under_appeal"  # (a) but the entry is under appeal
    CNIC_HIT_MISMATCH = "cnic_hit_mismatch"  # (b) CNIC hit, name or DOB differs
    FUZZY_CANDIDATE = "fuzzy_candidate"  # (c) no CNIC hit, a blocked candidate scored high
    NO_MATCH = "no_match"  # (d)


# Honorifics and words that are not part of anyone's name.
_DROP = frozenset(
    {"mst", "mussammat", "musammat", "mosammat", "mr", "mrs", "ms", "miss", "dr", "late", "marhoom"}
)
# privacy.md §6.6 item 3: "map Muhammad/Mohd/Md/M. to muhammad". Common written shortenings.
_EXPAND = {
    "m": "muhammad",
    "md": "muhammad",
    "mohd": "muhammad",
    "muhd": "muhammad",
    "mhd": "muhammad",
    "mohmd": "muhammad",
    "ch": "chaudhry",
    "chaudhary": "chaudhry",
    "sh": "sheikh",
}
_ABD = re.compile(r"\babd ?[uae]?[lrnsdzt](?=[ a-z]|$) ?")
# Relation markers that start the father's (or husband's) name inside a full name.
_PAIR_MARKERS = frozenset({("s", "o"), ("d", "o"), ("w", "o"), ("son", "of"), ("daughter", "of")})
_PAIR_MARKERS |= {("wife", "of")}
_SINGLE_MARKERS = frozenset({"bin", "bint", "binte", "walad", "ولد", "بنت", "زوجہ"})

# privacy.md §2.2 rule 3: high-frequency tokens carry little information.
_LOW_LATIN = (
    "muhammad syed bibi begum mian malik khan sheikh chaudhry rana mirza raja sardar qazi abdul"
)
_LOW_URDU = ("محمد", "سید", "بی", "بیبی", "بیگم", "خان", "ملک", "شیخ", "عبد", "عبدال")


@lru_cache(maxsize=200_000)
def phonetic_code(token: str) -> str:
    """``L`` + Double Metaphone primary for a Latin token, ``U`` + the folded token for Urdu.

    Cached: names repeat heavily (one code per distinct token, a pure function of it).
    """
    if token.isascii():
        primary = doublemetaphone(token)[0]
        return "L" + (primary or token.upper())
    return "U" + token


LOW_INFO_CODES = frozenset(
    [phonetic_code(t) for t in _LOW_LATIN.split()] + ["U" + name_key(t) for t in _LOW_URDU]
)


_NON_WORD = re.compile(r"[^\w]+")


def fold(text: str) -> str:
    """:func:`adapter.privacy.normalise.name_key`, with a fast path for plain ASCII: there NFKC,
    NFKD, NFC, the Cf/Mn filters, digit mapping and the Urdu letter folds are all identities,
    so lowercasing and splitting on non-word characters gives exactly the same key."""
    if text.isascii():
        return " ".join(_NON_WORD.sub(" ", text.lower()).split())
    return name_key(text)


def _canonical_text(text: str) -> str:
    key = fold(text)
    # Sun-letter assimilation (privacy.md §2.2): Abdur/Abd-ur/Abdus … Rahman → abdul rahman.
    return _ABD.sub("abdul ", key)


def canonical_tokens(text: str) -> tuple[str, ...]:
    """The name's tokens: folded, abbreviations expanded, honorifics and digits dropped."""
    tokens = []
    for raw in _canonical_text(text).split():
        token = _EXPAND.get(raw, raw)
        if token in _DROP or token.isdigit() or "_" in token:
            continue
        tokens.append(token)
    return tuple(tokens)


def split_relation(tokens: Sequence[str]) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """Split ``ali raza s o aslam`` into the person's and the father's tokens."""
    for i, token in enumerate(tokens):
        if token in _SINGLE_MARKERS and i > 0:
            return tuple(tokens[:i]), tuple(tokens[i + 1 :])
        if i > 0 and i + 1 < len(tokens) and (token, tokens[i + 1]) in _PAIR_MARKERS:
            return tuple(tokens[:i]), tuple(tokens[i + 2 :])
    return tuple(tokens), ()


@dataclass(frozen=True)
class NameTokens:
    """One person's given-name and father's-name tokens in one script."""

    given: tuple[str, ...]
    father: tuple[str, ...]


def person_tokens(full_name: str, father_name: str | None) -> NameTokens:
    """Tokens of a full name (which may carry ``s/o …``) and an explicit father's name.

    The explicit father's name wins over one embedded in the full name; a grandfather after a
    second marker in the father's name is dropped.
    """
    given, embedded = split_relation(canonical_tokens(full_name))
    father = split_relation(canonical_tokens(father_name))[0] if father_name else embedded
    return NameTokens(given, father)


def script_of_tokens(tokens: Iterable[str]) -> str:
    """``latin``, ``urdu`` or ``none`` (empty); a name is one script (checked at the edge)."""
    for token in tokens:
        return "latin" if token.isascii() else "urdu"
    return "none"


def informative(tokens: Sequence[str]) -> tuple[str, ...]:
    """Tokens that are not high-frequency; all of them if every token is."""
    kept = tuple(t for t in tokens if phonetic_code(t) not in LOW_INFO_CODES)
    return kept or tuple(tokens)


def token_weight(code: str) -> float:
    return LOW_WEIGHT if code in LOW_INFO_CODES else 1.0


# --- exact-stage corroboration (plaintext, after a CNIC hit) ---------------------------------


def tokens_agree(a: Sequence[str], b: Sequence[str], jw_threshold: float) -> bool:
    """Every informative token of each side has a partner on the other with the same phonetic
    code or Jaro-Winkler ≥ ``jw_threshold`` (privacy.md §6.6 item 4a). Order-insensitive.

    Token by token rather than the whole string: "muhammad ali" and "muhammad arif" share a
    long prefix and score JW 0.95 as strings, but they are different people.
    """
    left, right = informative(a), informative(b)
    if not left or not right or script_of_tokens(left) != script_of_tokens(right):
        return False

    def covered(xs: Sequence[str], ys: Sequence[str]) -> bool:
        return all(
            any(
                phonetic_code(x) == phonetic_code(y) or JaroWinkler.similarity(x, y) >= jw_threshold
                for y in ys
            )
            for x in xs
        )

    return covered(left, right) and covered(right, left)


@dataclass(frozen=True)
class Corroboration:
    """How a CNIC hit's registered identity compares with the request."""

    name: bool
    father: bool
    dob: bool

    @property
    def full(self) -> bool:
        return self.name and self.father and self.dob


def corroborate(
    request: NameTokens,
    request_dob: date,
    registered: Sequence[NameTokens],
    registered_dob: date,
    jw_threshold: float,
) -> Corroboration:
    """Compare a request with one registered identity (its names in one or two scripts).

    A registered identity without a father's name does not contradict the request's.
    """
    name = any(tokens_agree(request.given, r.given, jw_threshold) for r in registered)
    same_script = [r for r in registered if r.father and _script_matches(request.father, r)]
    if not any(r.father for r in registered):
        father = True
    else:
        father = any(tokens_agree(request.father, r.father, jw_threshold) for r in same_script)
    return Corroboration(name, father, request_dob == registered_dob)


def _script_matches(tokens: Sequence[str], registered: NameTokens) -> bool:
    return script_of_tokens(tokens) == script_of_tokens(registered.father)


# --- fuzzy stage over keyed token codes ----------------------------------------------------


def weighted_dice(
    query: Sequence[tuple[str, float]], candidate: frozenset[str], low_keys: frozenset[str]
) -> float:
    """Dice similarity of two token-key sets, each token weighted (low-information tokens at
    :data:`LOW_WEIGHT`). ``query`` pairs each key with its weight; ``candidate``'s weights are
    known from ``low_keys``."""
    if not query or not candidate:
        return 0.0
    query_total = sum(w for _, w in query)
    cand_total = sum(LOW_WEIGHT if k in low_keys else 1.0 for k in candidate)
    shared = sum(w for k, w in query if k in candidate)
    return 2.0 * shared / (query_total + cand_total)


def dob_score(same_date: bool, swapped: bool, year_gap: int) -> float:
    """1 for the same date, 0.8 day and month swapped, 0.5 the same year, 0.3 a year apart."""
    if same_date:
        return 1.0
    if swapped:
        return 0.8
    return 0.5 if year_gap == 0 else 0.3


def fuzzy_score(name: float, father: float | None, dob: float) -> float:
    """0.5 name + 0.3 father (0.5 if the registry holds none) + 0.2 DOB."""
    father_part = UNKNOWN_FATHER_SCORE if father is None else father
    return NAME_WEIGHT * name + FATHER_WEIGHT * father_part + DOB_WEIGHT * dob


def swapped_dob(dob: date) -> date | None:
    """The date with day and month exchanged, if that is a different valid date."""
    if dob.day > 12 or dob.day == dob.month:
        return None
    return dob.replace(month=dob.day, day=dob.month)


# --- the rule table ----------------------------------------------------------------------------


@dataclass(frozen=True)
class ExactHit:
    """A registry entry whose CNIC HMAC equals the request's."""

    entry_id: int
    under_appeal: bool
    corroboration: Corroboration


@dataclass(frozen=True)
class FuzzyHit:
    """A blocked candidate and its score."""

    entry_id: int
    score: float
    name_score: float


@dataclass(frozen=True)
class Decision:
    """The outcome, the rule that produced it, and the entries an officer should look at."""

    outcome: Outcome
    rule: Rule
    entry_ids: tuple[int, ...]


def decide(
    exact: Sequence[ExactHit],
    fuzzy: Sequence[FuzzyHit],
    *,
    fuzzy_threshold: float,
    name_floor: float,
) -> Decision:
    """privacy.md §6.6 item 4.

    (a) a CNIC hit whose name, father and DOB corroborate → DO_NOT_ENGAGE (PENDING_REVIEW while
    the entry is under appeal: a person, not the machine, decides a contested entry);
    (b) any other CNIC hit → PENDING_REVIEW, never CLEAR (identity fraud or a typo);
    (c) no CNIC hit, a fuzzy candidate at or above the thresholds → PENDING_REVIEW;
    (d) otherwise CLEAR. A fuzzy-only match never gives DO_NOT_ENGAGE (DBS Adult First).
    """
    if exact:
        ids = tuple(h.entry_id for h in exact)
        confirmed = [h for h in exact if h.corroboration.full]
        if any(not h.under_appeal for h in confirmed):
            return Decision(Outcome.DO_NOT_ENGAGE, Rule.EXACT_MATCH, ids)
        if confirmed:
            return Decision(Outcome.PENDING_REVIEW, Rule.EXACT_UNDER_APPEAL, ids)
        return Decision(Outcome.PENDING_REVIEW, Rule.CNIC_HIT_MISMATCH, ids)
    likely = [h for h in fuzzy if h.score >= fuzzy_threshold and h.name_score >= name_floor]
    if likely:
        ranked = sorted(likely, key=lambda h: -h.score)[:10]
        ids = tuple(h.entry_id for h in ranked)
        return Decision(Outcome.PENDING_REVIEW, Rule.FUZZY_CANDIDATE, ids)
    return Decision(Outcome.CLEAR, Rule.NO_MATCH, ())
