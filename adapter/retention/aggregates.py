"""De-identified counts of closed cases: district × month × concern × age band × sex.

privacy.md §6.7: before a case is shredded it is rolled into these counts; record-level
"pseudonymised" extracts are never kept as statistics (the EDPB treats them as personal data).
Every dimension is a coarse code chosen here, never a value copied from free text:

* district: Primero's ``location_current`` *code* if it looks like one, else ``unknown``;
* month: the closure month, ``YYYY-MM``;
* concern: the case's sensitivity level S0-S3 (adapter/privacy/sensitivity.py), the coarse
  category the disclosure policy already derives from Primero's protection-concern codes;
* age band: 0-4, 5-9, 10-14, 15-17, 18+ or unknown (``age``, else from ``date_of_birth`` at
  closure);
* sex: female, male, other or unknown.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from datetime import date, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from adapter.privacy.policy import PolicySet
from adapter.privacy.sensitivity import classify
from adapter.retention._tables import retention_aggregates

AGE_BANDS = ("0-4", "5-9", "10-14", "15-17", "18+", "unknown")
SEXES = ("female", "male", "other", "unknown")
UNKNOWN = "unknown"
# Primero location codes are short upper-case codes such as PK-SD-KHI (seed locations); a value
# that does not look like one might be typed text, so it is counted as unknown.
_LOCATION_CODE = re.compile(r"\A[A-Za-z0-9][A-Za-z0-9_.-]{0,59}\Z")


@dataclass(frozen=True)
class Contribution:
    """The one cell a closed case adds to the aggregates (kept only inside its archive, so
    a reopening can subtract exactly what was added)."""

    district: str
    month: str
    concern: str
    age_band: str
    sex: str

    def as_dict(self) -> dict[str, str]:
        return asdict(self)


def age_band(age: int | None) -> str:
    """The band of an age in whole years (None or a negative age: unknown)."""
    if age is None or age < 0:
        return UNKNOWN
    for upper, band in ((4, "0-4"), (9, "5-9"), (14, "10-14"), (17, "15-17")):
        if age <= upper:
            return band
    return "18+"


def _age(case: Mapping[str, Any], closed_at: datetime) -> int | None:
    value = case.get("age")
    if isinstance(value, int | float) and not isinstance(value, bool):
        return int(value)
    if isinstance(value, str) and value.strip().isdigit():
        return int(value.strip())
    born = case.get("date_of_birth")
    if isinstance(born, str):
        try:
            dob = date.fromisoformat(born[:10])
        except ValueError:
            return None
        on = closed_at.date()
        return on.year - dob.year - ((on.month, on.day) < (dob.month, dob.day))
    return None


def _sex(case: Mapping[str, Any]) -> str:
    value = case.get("sex")
    if isinstance(value, str) and value.lower() in SEXES:
        return value.lower()
    return UNKNOWN


def _district(case: Mapping[str, Any]) -> str:
    value = case.get("location_current")
    if isinstance(value, str) and _LOCATION_CODE.match(value):
        return value
    return UNKNOWN


def contribution(case: Mapping[str, Any], policy: PolicySet, closed_at: datetime) -> Contribution:
    """The aggregate cell of a case closed at ``closed_at`` (pure)."""
    return Contribution(
        district=_district(case),
        month=closed_at.strftime("%Y-%m"),
        concern=str(classify(case, policy).level),
        age_band=age_band(_age(case, closed_at)),
        sex=_sex(case),
    )


def add(conn: Connection, cell: Contribution, delta: int) -> None:
    """Add ``delta`` (+1 on closure, -1 when a reopening reverses it) to one cell; a cell
    that reaches zero is removed. The caller holds the job lease: one writer at a time."""
    where = [getattr(retention_aggregates.c, k) == v for k, v in cell.as_dict().items()]
    current = conn.execute(sa.select(retention_aggregates.c.count).where(*where)).scalar()
    if current is None:
        if delta > 0:
            conn.execute(retention_aggregates.insert().values(**cell.as_dict(), count=delta))
        return
    value = int(current) + delta
    if value <= 0:
        conn.execute(retention_aggregates.delete().where(*where))
    else:
        conn.execute(retention_aggregates.update().where(*where).values(count=value))


def counts(conn: Connection) -> dict[Contribution, int]:
    """Every non-zero cell."""
    rows = conn.execute(sa.select(retention_aggregates))
    return {
        Contribution(r.district, r.month, r.concern, r.age_band, r.sex): int(r._mapping["count"])
        for r in rows
    }
