"""Stage one of a referral: the anonymous capacity probe (privacy.md §6.3, issue 3 item 3).

Before any identified data leaves, the department is asked whether it can take a case like
this: service, district, age band, sex, urgency, and nothing that names or codes the child (not
even the case code: a probe the department declines must leave no trace it can link later).

Rare combinations are coarsened until at least ``k`` known cases share them (``[probe] k`` in
sensitivity.toml; k-anonymity ≥ 5 is privacy.md §7 item 6): district → province, then the age
band goes, then sex, then the location. Without population counts every probe is fully
coarsened (service and urgency only): the fail-safe direction.
"""

from __future__ import annotations

import secrets
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from adapter.privacy.policy import DepartmentPolicy

#: The keys :func:`build_probe` writes: the only keys a capacity probe may carry (the final
#: allow-list guard refuses any other; the FHIR probe mapping refuses them too).
PROBE_KEYS = frozenset(
    {"stage", "probe_ref", "services", "urgency", "district", "province", "age_band", "sex"}
)

AGE_BANDS: tuple[tuple[int, int, str], ...] = (
    (0, 4, "0-4"),
    (5, 9, "5-9"),
    (10, 14, "10-14"),
    (15, 17, "15-17"),
)
ADULT_BAND = "18+"
SEXES = frozenset({"male", "female"})
# service_response_timeframe → referral-form priority (emergency ≤24 h, urgent ≤72 h, normal).
URGENCY = {"1_hour": "emergency", "3_hours": "emergency", "1_day": "emergency", "3_days": "urgent"}
_URGENCY_ORDER = ("emergency", "urgent", "normal")


class Gazetteer:
    """Location codes with their admin level and parent, to reduce a location to its district
    or province. Build it from Primero's ``/api/v2/locations`` (code, admin_level, parent)."""

    def __init__(
        self,
        places: Mapping[str, tuple[int, str | None]],
        *,
        province_level: int = 1,
        district_level: int = 2,
    ) -> None:
        self._places = dict(places)
        self.province_level = province_level
        self.district_level = district_level

    def ancestor_at(self, code: str, level: int) -> str | None:
        """The code of ``code``'s ancestor (or itself) at ``level``; None if unknown."""
        seen = 0
        current: str | None = code
        while current is not None and seen < 16:  # a cycle in bad data must not hang a sync
            place = self._places.get(current)
            if place is None:
                return None
            if place[0] == level:
                return current
            if place[0] < level:
                return None
            current, seen = place[1], seen + 1
        return None

    def district(self, code: Any) -> str | None:
        return self.ancestor_at(code, self.district_level) if isinstance(code, str) else None

    def province(self, code: Any) -> str | None:
        return self.ancestor_at(code, self.province_level) if isinstance(code, str) else None


def age_years(case: Mapping[str, Any], today: date) -> int | None:
    """Age from ``date_of_birth`` (preferred) or ``age``; None when neither is usable."""
    dob = parse_date(case.get("date_of_birth"))
    if dob is not None and dob <= today:
        return today.year - dob.year - ((today.month, today.day) < (dob.month, dob.day))
    age = case.get("age")
    if isinstance(age, int) and not isinstance(age, bool) and 0 <= age < 130:
        return age
    return None


def age_band(years: int | None) -> str | None:
    if years is None:
        return None
    for low, high, label in AGE_BANDS:
        if low <= years <= high:
            return label
    return ADULT_BAND


def parse_date(value: Any) -> date | None:
    """A date from Primero's ``YYYY-MM-DD`` or ISO date-time text; None otherwise."""
    if not isinstance(value, str) or len(value) < 10:
        return None
    try:
        return date.fromisoformat(value[:10])
    except ValueError:
        return None


@dataclass(frozen=True)
class QuasiIdentifiers:
    """The combination a probe could reveal about a child."""

    district: str | None
    province: str | None
    age_band: str | None
    sex: str | None


def quasi_identifiers(
    case: Mapping[str, Any], gazetteer: Gazetteer | None, today: date
) -> QuasiIdentifiers:
    location = case.get("location_current")
    sex = case.get("sex")
    return QuasiIdentifiers(
        district=gazetteer.district(location) if gazetteer else None,
        province=gazetteer.province(location) if gazetteer else None,
        age_band=age_band(age_years(case, today)),
        sex=sex if sex in SEXES else None,
    )


class Population:
    """How many known cases share a combination; the engine builds it from its case cache."""

    def __init__(self, rows: Iterable[QuasiIdentifiers]) -> None:
        self._counts = Counter(rows)

    @classmethod
    def from_cases(
        cls, cases: Iterable[Mapping[str, Any]], gazetteer: Gazetteer | None, today: date
    ) -> Population:
        return cls(quasi_identifiers(c, gazetteer, today) for c in cases)

    def count(self, **criteria: str | None) -> int:
        """Cases matching every given criterion (district, province, age_band, sex)."""
        wanted = {k: v for k, v in criteria.items() if v is not None}
        return sum(
            n
            for row, n in self._counts.items()
            if all(getattr(row, key) == value for key, value in wanted.items())
        )


@dataclass(frozen=True)
class Probe:
    """A probe payload, the Primero fields it was derived from, and how far it was coarsened."""

    payload: dict[str, Any]
    source_fields: tuple[str, ...]
    coarsening: str


def build_probe(
    case: Mapping[str, Any],
    department: DepartmentPolicy,
    *,
    k: int,
    now: datetime,
    gazetteer: Gazetteer | None = None,
    population: Population | None = None,
    probe_ref: str | None = None,
) -> Probe | None:
    """The anonymous probe for ``department``; None when the case asks it for no service."""
    rows = [
        r
        for r in case.get("services_section") or []
        if isinstance(r, Mapping) and r.get("service_type") in department.services
    ]
    services = sorted({str(r["service_type"]) for r in rows})
    if not services:
        return None
    urgencies = [URGENCY.get(str(r.get("service_response_timeframe")), "normal") for r in rows]
    urgency = min(urgencies, key=_URGENCY_ORDER.index)
    qi = quasi_identifiers(case, gazetteer, now.date())
    steps: list[tuple[str, dict[str, str | None]]] = [
        (
            "district, age band, sex",
            {"district": qi.district, "age_band": qi.age_band, "sex": qi.sex},
        ),
        (
            "province, age band, sex",
            {"province": qi.province, "age_band": qi.age_band, "sex": qi.sex},
        ),
        ("province, sex", {"province": qi.province, "sex": qi.sex}),
        ("province", {"province": qi.province}),
        ("service and urgency only", {}),
    ]
    chosen: dict[str, str] = {}
    label = steps[-1][0]
    for step_label, criteria in steps[:-1]:
        present = {key: value for key, value in criteria.items() if value is not None}
        if present and population is not None and population.count(**present) >= k:
            chosen, label = present, step_label
            break
    payload: dict[str, Any] = {
        "stage": "probe",
        # Random per probe: the department can answer it, never link it to a later referral.
        "probe_ref": probe_ref or secrets.token_hex(8),
        "services": services,
        "urgency": urgency,
        **chosen,
    }
    sources = ["services_section.service_type", "services_section.service_response_timeframe"]
    if "district" in payload or "province" in payload:
        sources.append("location_current")
    if "age_band" in payload:
        sources.append("date_of_birth" if parse_date(case.get("date_of_birth")) else "age")
    if "sex" in payload:
        sources.append("sex")
    return Probe(payload, tuple(sources), label)
