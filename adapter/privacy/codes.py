"""Case codes with their bookkeeping: issue, resolve (raising security events), short printed
codes, and the crosswalk a rotation produced.

Two kinds of code (privacy.md §1.2, §6.1):

* the **case code** ``cp1.<dept>.<kv>.<52 base32>``: deterministic, authenticated, reversible
  only with the department's key (``KeyRing.case_code``). Departments receive nothing else as a
  case reference: never Primero's ``id``, ``unique_identifier``, ``case_id``,
  ``case_id_display`` or ``short_id``, each of which would let two departments join records.
* the **short code** ``CP-XXXXXXXX`` for printed forms: 7 random Crockford base32 symbols and a
  Luhn mod 32 check symbol (a mistyped code is rejected instead of naming another child). Only
  the ``short_codes`` vault links it to a case, one per department and case.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterable
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from adapter.clock import utcnow
from adapter.privacy._tables import code_crosswalk, issued_codes, short_codes
from adapter.privacy.errors import CodeRefused
from adapter.privacy.events import SecurityEventKind, record_security_event
from adapter.privacy.keys import KeyRing
from adapter.state import StateStore

CROCKFORD = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
SHORT_PREFIX = "CP-"
_SHORT_RANDOM = 7
# Bound parameters per IN lookup: far below SQLite's 32,766 and PostgreSQL's 65,535 limits.
_CODES_PER_LOOKUP = 500
# Crockford decoding: the letters people confuse with digits read as those digits.
_CROCKFORD_READ = str.maketrans({"O": "0", "I": "1", "L": "1"})


class CaseCodes:
    """The code service over a store and its key ring (the sync engine holds one)."""

    def __init__(self, store: StateStore, keyring: KeyRing) -> None:
        self.store = store
        self.keyring = keyring

    def case_code(self, case_id: str, department: str) -> str:
        """The department's current code for a case (pure; nothing recorded)."""
        return self.keyring.case_code(case_id, department)

    def resolve(self, code: str, department: str, *, now: datetime | None = None) -> str:
        """The case id behind a code ``department`` presented, or CodeRefused.

        A refusal is also written to ``security_events`` in its own transaction, so it
        survives even when the caller's work rolls back.
        """
        try:
            return self.keyring.open_case_code(code, department, now=now)
        except CodeRefused as refused:
            with self.store.transaction() as conn:
                record_security_event(
                    conn, refused.kind, department=department, detail=str(refused), now=now
                )
            raise

    def record_issued(
        self, conn: Connection, department: str, code: str, *, now: datetime | None = None
    ) -> None:
        """Remember that ``code`` reached ``department`` (a rotation re-issues it)."""
        self.record_issued_many(conn, [(department, code)], now=now)

    @staticmethod
    def record_issued_many(
        conn: Connection, issued: Iterable[tuple[str, str]], *, now: datetime | None = None
    ) -> set[str]:
        """:meth:`record_issued` for many ``(department, code)`` pairs (a sync page): one
        lookup per 500 codes and one ``executemany`` insert instead of two statements per code
        (BENCHMARKS.md). Returns the codes recorded now (those not issued before)."""
        pairs: dict[str, str] = {}
        for department, code in issued:
            pairs.setdefault(code, department)
        codes = list(pairs)
        known: set[str] = set()
        for start in range(0, len(codes), _CODES_PER_LOOKUP):
            chunk = codes[start : start + _CODES_PER_LOOKUP]
            known.update(
                conn.execute(
                    sa.select(issued_codes.c.code).where(issued_codes.c.code.in_(chunk))
                ).scalars()
            )
        at = now or utcnow()
        rows = [
            {
                "code": code,
                "department": department,
                "key_version": int(code.split(".")[2]),
                "issued_at": at,
            }
            for code, department in pairs.items()
            if code not in known
        ]
        if rows:
            conn.execute(issued_codes.insert(), rows)
        return {str(row["code"]) for row in rows}

    @staticmethod
    def was_issued(conn: Connection, code: str) -> bool:
        """Whether ``code`` was ever handed to its department."""
        query = sa.select(issued_codes.c.code).where(issued_codes.c.code == code)
        return conn.execute(query).first() is not None

    def crosswalk(
        self, department: str, *, new_version: int | None = None
    ) -> list[tuple[str, str]]:
        """Old → new code pairs from the rotations of ``department`` (all, or to one version)."""
        query = (
            sa.select(code_crosswalk.c.old_code, code_crosswalk.c.new_code)
            .where(code_crosswalk.c.department == department)
            .order_by(code_crosswalk.c.id)
        )
        if new_version is not None:
            query = query.where(code_crosswalk.c.new_version == new_version)
        with self.store.transaction() as conn:
            return [(row.old_code, row.new_code) for row in conn.execute(query)]

    # -- short printed codes ------------------------------------------------------------

    def short_code(
        self,
        case_id: str,
        department: str,
        *,
        conn: Connection | None = None,
        now: datetime | None = None,
    ) -> str:
        """The department's short code for a case, created on first use."""
        if conn is None:
            with self.store.transaction() as own:
                return self.short_code(case_id, department, conn=own, now=now)
        existing = conn.execute(
            sa.select(short_codes.c.code).where(
                short_codes.c.department == department, short_codes.c.case_id == case_id
            )
        ).scalar()
        if existing is not None:
            return str(existing)
        while True:
            code = new_short_code()
            try:
                with conn.begin_nested():
                    conn.execute(
                        short_codes.insert().values(
                            code=code,
                            department=department,
                            case_id=case_id,
                            issued_at=now or utcnow(),
                        )
                    )
                return code
            except sa.exc.IntegrityError:
                # A collision with another code (35 random bits) or a concurrent writer that
                # just created this case's code: re-read, then try a fresh code.
                existing = conn.execute(
                    sa.select(short_codes.c.code).where(
                        short_codes.c.department == department, short_codes.c.case_id == case_id
                    )
                ).scalar()
                if existing is not None:
                    return str(existing)

    def resolve_short_code(self, code: str, department: str, *, now: datetime | None = None) -> str:
        """The case behind a short code typed in by ``department``; CodeRefused otherwise."""
        normal = normalise_short_code(code)
        row = None
        if normal is not None:
            with self.store.transaction() as conn:
                row = conn.execute(
                    sa.select(short_codes.c.department, short_codes.c.case_id).where(
                        short_codes.c.code == normal
                    )
                ).first()
        if row is None or row.department != department:
            kind = (
                SecurityEventKind.UNKNOWN_SHORT_CODE
                if row is None
                else SecurityEventKind.WRONG_DEPARTMENT
            )
            detail = (
                "short code unknown or mistyped"
                if row is None
                else f"short code of department '{row.department}' presented by '{department}'"
            )
            with self.store.transaction() as conn:
                record_security_event(conn, kind, department=department, detail=detail, now=now)
            raise CodeRefused(f"{detail}: refused.", kind=str(kind), department=department)
        return str(row.case_id)


def new_short_code() -> str:
    """A fresh random short code with its check symbol, e.g. ``CP-7K3QX9M2``."""
    body = "".join(secrets.choice(CROCKFORD) for _ in range(_SHORT_RANDOM))
    return SHORT_PREFIX + body + _check_symbol(body)


def normalise_short_code(text: str) -> str | None:
    """Read a short code the way a person may type it (case, spaces, O/I/L for 0/1/1, missing
    dash); None when the shape or the check symbol is wrong."""
    if not isinstance(text, str) or len(text) > 40:
        return None
    compact = "".join(text.split()).upper().replace("-", "")
    if not compact.startswith("CP"):
        return None
    body = compact[2:].translate(_CROCKFORD_READ)
    if len(body) != _SHORT_RANDOM + 1 or any(ch not in CROCKFORD for ch in body):
        return None
    if _check_symbol(body[:-1]) != body[-1]:
        return None
    return SHORT_PREFIX + body


def _check_symbol(body: str) -> str:
    # Luhn mod N (N = 32): catches every single-symbol error and every adjacent swap except
    # 0 <-> Z (the 09 <-> 90 blind spot of decimal Luhn).
    factor, total, n = 2, 0, len(CROCKFORD)
    for ch in reversed(body):
        addend = factor * CROCKFORD.index(ch)
        factor = 1 if factor == 2 else 2
        total += addend // n + addend % n
    return CROCKFORD[(n - total % n) % n]
