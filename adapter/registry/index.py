"""Keyed matching material: what an entry stores and what a check looks up (privacy.md §2.4).

The pure rules live in :mod:`adapter.registry.matching`; this module applies the registry keys
to them, so that nothing stored or compared in the fuzzy stage is a name, a phonetic code or a
date of birth in the clear:

* ``name_keys`` / ``father_keys``: keyed token codes per script, ``"k1 k2|u1 u2"``;
* ``block_keys``: keyed (given-name code × father's-name code × birth year), see
  :func:`block_codes`;
* ``dob_mac``: keyed date of birth (equality only; the year comes from the block).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date

from adapter.registry._crypto import RegistryKeys
from adapter.registry.matching import (
    DOB_WEIGHT,
    FATHER_WEIGHT,
    LOW_INFO_CODES,
    LOW_WEIGHT,
    MAX_BLOCK_TOKENS,
    NAME_WEIGHT,
    UNKNOWN_FATHER_SCORE,
    FuzzyHit,
    NameTokens,
    dob_score,
    fuzzy_score,
    informative,
    person_tokens,
    phonetic_code,
    swapped_dob,
    token_weight,
)
from adapter.registry.models import Identity

NO_FATHER = "-"


def block_codes(tokens: NameTokens, *, probe_unknown_father: bool = False) -> set[str]:
    """``given code + father code`` pairs of the first informative tokens of each name.

    privacy.md §2.4 blocks on DM(first name) × birth year; at 1,000,000 entries a common name
    (Ali, Ahmed) then makes blocks of 2,000-3,000 rows per year, too many to score in 10 ms.
    The father's name is part of the block as well: a candidate that shares no informative
    father's-name token scores at most 0.5 + 0.3 x 0.2 + 0.2 < 0.8 and can never reach review,
    so nothing reviewable is lost. An entry without a father's name is blocked under ``-``,
    which a check also probes (``probe_unknown_father``).
    """
    given = [phonetic_code(t) for t in informative(tokens.given)[:MAX_BLOCK_TOKENS]]
    fathers = [phonetic_code(t) for t in informative(tokens.father)[:MAX_BLOCK_TOKENS]]
    if not fathers or probe_unknown_father:
        fathers.append(NO_FATHER)
    return {f"{g}+{f}" for g in given for f in fathers}


def name_versions(identity: Identity) -> list[NameTokens]:
    """The identity's names, one :class:`NameTokens` per script it was recorded in."""
    versions = [person_tokens(identity.full_name, identity.father_name)]
    if identity.full_name_urdu:
        versions.append(person_tokens(identity.full_name_urdu, identity.father_name_urdu))
    return [v for v in versions if v.given]


@dataclass(frozen=True)
class EntryIndex:
    """The matching columns of one registry entry."""

    cnic_mac: str | None
    name_keys: str
    father_keys: str
    dob_mac: str
    block_keys: tuple[str, ...]


def _keys_of(keys: RegistryKeys, tokens: Sequence[str]) -> str:
    return " ".join(sorted({keys.token_key(phonetic_code(t)) for t in tokens}))


def index_entry(identity: Identity, keys: RegistryKeys) -> EntryIndex:
    """Everything the exact and fuzzy stages need to find this entry, keyed."""
    versions = name_versions(identity)
    year = identity.date_of_birth.year
    blocks = {keys.block_key(code, year) for v in versions for code in block_codes(v)}
    return EntryIndex(
        cnic_mac=keys.cnic_mac(identity.cnic) if identity.cnic else None,
        name_keys="|".join(_keys_of(keys, v.given) for v in versions),
        father_keys="|".join(_keys_of(keys, v.father) for v in versions if v.father),
        dob_mac=keys.dob_mac(identity.date_of_birth),
        block_keys=tuple(sorted(blocks)),
    )


def block_rows(index: EntryIndex, entry_id: int) -> list[dict[str, object]]:
    """The ``registry_blocks`` rows of one entry: each block key with the scoring material."""
    return [
        {
            "block_key": key,
            "entry_id": entry_id,
            "name_keys": index.name_keys,
            "father_keys": index.father_keys,
            "dob_mac": index.dob_mac,
        }
        for key in index.block_keys
    ]


@dataclass(frozen=True)
class QueryIndex:
    """A check request, keyed: what the exact and fuzzy stages look up and score with."""

    cnic_mac: str
    near_mac: str
    tokens: NameTokens
    name_query: tuple[tuple[str, float], ...]
    father_query: tuple[tuple[str, float], ...]
    dob: date
    dob_mac: str
    swapped_mac: str | None
    blocks: dict[str, int]  # block key → year gap (0 or 1)


def _weighted(keys: RegistryKeys, tokens: Sequence[str]) -> tuple[tuple[str, float], ...]:
    seen: dict[str, float] = {}
    for token in tokens:
        code = phonetic_code(token)
        seen[keys.token_key(code)] = token_weight(code)
    return tuple(seen.items())


def index_query(
    cnic: str, full_name: str, father_name: str, dob: date, keys: RegistryKeys
) -> QueryIndex:
    """Key a request. Blocks cover the birth year and the years either side (a DOB typo or a
    falsified year must not escape the fuzzy stage)."""
    tokens = person_tokens(full_name, father_name)
    blocks: dict[str, int] = {}
    for code in sorted(block_codes(tokens, probe_unknown_father=True)):
        for gap in (0, -1, 1):
            blocks.setdefault(keys.block_key(code, dob.year + gap), abs(gap))
    swapped = swapped_dob(dob)
    return QueryIndex(
        cnic_mac=keys.cnic_mac(cnic),
        near_mac=keys.near_mac(int(cnic[:10])),
        tokens=tokens,
        name_query=_weighted(keys, tokens.given),
        father_query=_weighted(keys, tokens.father),
        dob=dob,
        dob_mac=keys.dob_mac(dob),
        swapped_mac=keys.dob_mac(swapped) if swapped else None,
        blocks=blocks,
    )


def near_macs(cnic: str, keys: RegistryKeys) -> tuple[str, str, str]:
    """The CNIC's run of 1,000 numbers and the runs either side (sequential enumeration)."""
    prefix = int(cnic[:10])
    return keys.near_mac(prefix - 1), keys.near_mac(prefix), keys.near_mac(prefix + 1)


def low_information_keys(keys: RegistryKeys) -> frozenset[str]:
    """Keyed codes of the high-frequency tokens, to weight a candidate's keys."""
    return frozenset(keys.token_key(code) for code in LOW_INFO_CODES)


class CandidateScorer:
    """Scores one query's blocked candidates (privacy.md §6.6 item 4c).

    Name and father scores are memoised per distinct key string: names are concentrated
    (privacy.md §2.2), so at 1,000,000 entries a common name's 1,000+ candidates carry a few
    hundred distinct name/father combinations. Only the query's keys are held, never a name.
    """

    def __init__(self, query: QueryIndex, low_keys: frozenset[str]) -> None:
        self.query = query
        self.low_keys = low_keys
        self._names: dict[str, float] = {}
        self._fathers: dict[str, float | None] = {}
        self._given = dict(query.name_query)
        self._father = dict(query.father_query)

    def _best(self, wanted: dict[str, float], groups: str) -> float:
        # weighted_dice, unrolled for the hot loop: a group's keys are already distinct.
        total = sum(wanted.values())
        best = 0.0
        for group in groups.split("|"):
            shared = candidate = 0.0
            for key in group.split():
                candidate += LOW_WEIGHT if key in self.low_keys else 1.0
                shared += wanted.get(key, 0.0)
            if candidate and total:
                best = max(best, 2.0 * shared / (total + candidate))
        return best

    def score(
        self, entry_id: int, name_keys: str, father_keys: str, dob_mac: str, year_gap: int
    ) -> FuzzyHit:
        """Best script version of each name, then the DOB."""
        name = self._names.get(name_keys)
        if name is None:
            name = self._names[name_keys] = self._best(self._given, name_keys)
        if father_keys in self._fathers:
            father = self._fathers[father_keys]
        else:
            father = self._fathers[father_keys] = (
                self._best(self._father, father_keys) if father_keys else None
            )
        q = self.query
        dob = dob_score(dob_mac == q.dob_mac, dob_mac == q.swapped_mac, year_gap)
        return FuzzyHit(entry_id, fuzzy_score(name, father, dob), name)

    def best_hits(self, rows: Iterable[tuple[str, int, str, str, str]]) -> list[FuzzyHit]:
        """Each candidate entry's best-scoring blocking row, as :meth:`score` would rank them
        one by one (same scores to the bit, same order, the first of equal scores kept).

        The hot loop of every check (1,000+ rows for a common name at 1,000,000 entries): the
        name and father scores are memoised per key string, a row's score is a float pair
        until its entry's best is known, and only the winners become :class:`FuzzyHit`.
        """
        q = self.query
        gaps, dob_mac_q, swapped_q = q.blocks, q.dob_mac, q.swapped_mac
        names, fathers = self._names, self._fathers
        # dob_score by (same date, swapped, year gap): at most 2 × 2 × 2 values.
        dobs = {
            (same, swapped, gap): dob_score(same, swapped, gap)
            for same in (False, True)
            for swapped in (False, True)
            for gap in (0, 1)
        }
        best: dict[int, tuple[float, float]] = {}
        for block_key, entry_id, name_keys, father_keys, dob_mac in rows:
            name = names.get(name_keys)
            if name is None:
                name = names[name_keys] = self._best(self._given, name_keys)
            if father_keys in fathers:
                father = fathers[father_keys]
            else:
                father = fathers[father_keys] = (
                    self._best(self._father, father_keys) if father_keys else None
                )
            dob = dobs[(dob_mac == dob_mac_q, dob_mac == swapped_q, gaps[block_key])]
            # fuzzy_score, inlined: the same expression, so the same float.
            father_part = UNKNOWN_FATHER_SCORE if father is None else father
            score = NAME_WEIGHT * name + FATHER_WEIGHT * father_part + DOB_WEIGHT * dob
            known = best.get(entry_id)
            if known is None or score > known[0]:
                best[entry_id] = (score, name)
        return [FuzzyHit(entry_id, score, name) for entry_id, (score, name) in best.items()]
