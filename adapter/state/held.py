"""Referrals held for a person's decision: what ``status``, metrics and the CPO's row show.

The sync engine writes one row per held referral in the page's transaction (``hold_many``) and
removes it when the referral leaves, is revoked, or stops waiting for a decision
(``release_many``). ``held_since`` survives every re-check, so the age is the real wait.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from adapter.state import schema
from adapter.state.links import cases_with_rows
from adapter.state.store import StateStore

_KEYS_PER_LOOKUP = 500
# The outbox link key (and "Linked department records" row key) of a held referral's note to
# the CPO: its own key, so it never waits behind the referral's own messages.
NOTE_PREFIX = "decision:"


def note_key(link_key: str) -> str:
    """The key of the note that tells the CPO why the referral ``link_key`` is held."""
    return f"{NOTE_PREFIX}{link_key}"


@dataclass(frozen=True)
class Held:
    """One referral waiting for a decision (``awaiting``: s3_approval | consent_or_override)."""

    link_key: str
    job: str
    department: str
    case_id: str
    referral_id: str | None
    awaiting: str
    reason: str
    held_since: datetime
    checked_at: datetime


@dataclass(frozen=True)
class HeldSummary:
    """Per department: how many referrals wait for a decision, and since when the oldest."""

    department: str
    awaiting: str
    count: int
    oldest: datetime


class HeldReferrals:
    """The ``held_referrals`` table; writes take the caller's connection."""

    def __init__(self, store: StateStore) -> None:
        self.store = store

    def hold_many(self, conn: Connection, rows: Sequence[Held]) -> dict[str, datetime]:
        """Record or refresh held referrals; returns each one's ``held_since`` (a known one
        keeps its own)."""
        if not rows:
            return {}
        table = schema.held_referrals
        known: dict[str, datetime] = {}
        keys = [row.link_key for row in rows]
        for start in range(0, len(keys), _KEYS_PER_LOOKUP):
            chunk = keys[start : start + _KEYS_PER_LOOKUP]
            for key, since in conn.execute(
                sa.select(table.c.link_key, table.c.held_since).where(table.c.link_key.in_(chunk))
            ):
                known[key] = since
        fresh = {row.link_key: row for row in rows if row.link_key not in known}
        if fresh:
            conn.execute(table.insert(), [vars(row) for row in fresh.values()])
        again = [
            {
                "_key": r.link_key,
                "awaiting": r.awaiting,
                "reason": r.reason,
                "checked_at": r.checked_at,
            }
            for r in rows
            if r.link_key in known
        ]
        if again:
            conn.execute(
                table.update()
                .where(table.c.link_key == sa.bindparam("_key"))
                .values(
                    awaiting=sa.bindparam("awaiting"),
                    reason=sa.bindparam("reason"),
                    checked_at=sa.bindparam("checked_at"),
                ),
                again,
            )
        return {**{key: row.held_since for key, row in fresh.items()}, **known}

    def release_many(self, conn: Connection, link_keys: Iterable[str]) -> set[str]:
        """Forget held referrals that left or ended; returns the keys that were held."""
        keys = sorted(set(link_keys))
        if not keys:
            return set()
        table = schema.held_referrals
        gone: set[str] = set()
        for start in range(0, len(keys), _KEYS_PER_LOOKUP):
            chunk = keys[start : start + _KEYS_PER_LOOKUP]
            found = (
                conn.execute(sa.select(table.c.link_key).where(table.c.link_key.in_(chunk)))
                .scalars()
                .all()
            )
            if found:  # the common case on a sync page: nothing of it was held
                conn.execute(table.delete().where(table.c.link_key.in_(found)))
                gone.update(found)
        return gone

    def get_many(self, link_keys: Iterable[str]) -> dict[str, Held]:
        keys = sorted(set(link_keys))
        table = schema.held_referrals
        found: dict[str, Held] = {}
        with self.store.transaction() as conn:
            for start in range(0, len(keys), _KEYS_PER_LOOKUP):
                chunk = keys[start : start + _KEYS_PER_LOOKUP]
                for row in conn.execute(sa.select(table).where(table.c.link_key.in_(chunk))):
                    found[row.link_key] = Held(**row._mapping)
        return found

    def cases_held(self, department: str, case_ids: Sequence[str]) -> set[str]:
        """The ids among ``case_ids`` with a referral to ``department`` held."""
        return cases_with_rows(self.store, schema.held_referrals, department, case_ids)

    def listed(self, *, department: str | None = None, case_id: str | None = None) -> list[Held]:
        """Held referrals, oldest first."""
        table = schema.held_referrals
        query = sa.select(table).order_by(table.c.held_since, table.c.link_key)
        if department is not None:
            query = query.where(table.c.department == department)
        if case_id is not None:
            query = query.where(table.c.case_id == case_id)
        with self.store.transaction() as conn:
            return [Held(**row._mapping) for row in conn.execute(query)]

    def summary(self, conn: Connection | None = None) -> list[HeldSummary]:
        """Count and oldest ``held_since`` per department and kind of decision awaited."""
        table = schema.held_referrals
        query = (
            sa.select(
                table.c.department,
                table.c.awaiting,
                sa.func.count(),
                sa.func.min(table.c.held_since),
            )
            .group_by(table.c.department, table.c.awaiting)
            .order_by(table.c.department, table.c.awaiting)
        )
        if conn is None:
            with self.store.transaction() as own:
                rows = own.execute(query).all()
        else:
            rows = conn.execute(query).all()
        return [HeldSummary(d, a, int(n), _aware(oldest)) for d, a, n, oldest in rows]


def _aware(value: datetime) -> datetime:
    # min() over a UTCDateTime column comes back as the backend's raw value on some drivers.
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    return value if value.tzinfo else value.replace(tzinfo=UTC)
