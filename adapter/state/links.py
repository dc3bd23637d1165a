"""Links: what the adapter knows about each referral it carries to a department.

One row per ``link_key`` (``<department>:<referral key>``): the case it belongs to (kept inside
the adapter), the department's case code, the stage reached, the hash of the last content
enqueued (so an unchanged case, or the echo of our own write-back, enqueues nothing), the
department's reference and status, and what was last written back into Primero.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, fields
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from adapter.clock import utcnow
from adapter.state import schema
from adapter.state.store import StateStore


@dataclass(frozen=True)
class Link:
    link_key: str
    job: str
    department: str
    case_id: str
    referral_id: str | None
    case_code: str
    stage: str
    content_hash: str | None
    external_ref: str | None
    remote_status: str | None
    remote_note: str | None
    remote_outputs: list[str] | None
    remote_updated_at: datetime | None
    remote_version: str | None
    primero_status: str | None
    written_back_status: str | None
    created_at: datetime
    updated_at: datetime

    @property
    def referral_key(self) -> str:
        return self.link_key.split(":", 1)[1]


_COLUMNS = {f.name for f in fields(Link)}
# Bound parameters per IN lookup: far below SQLite's 32,766 and PostgreSQL's 65,535 limits.
_KEYS_PER_LOOKUP = 500
# Statements built once, with bind parameters: SQLAlchemy memoises a statement's cache key on
# the object, so a hot call (a link per delivery and per polled Task) neither rebuilds the
# expression nor recomputes its key (issue 15: statement building was the top of the profile).
_BY_KEY = sa.select(schema.links).where(schema.links.c.link_key == sa.bindparam("_link_key"))
_UPDATE_BY_KEY = schema.links.update().where(schema.links.c.link_key == sa.bindparam("_link_key"))
_INSERT = schema.links.insert()


def link_key(department: str, referral_key: str) -> str:
    return f"{department}:{referral_key}"


class Links:
    """Read and write links; writes take the caller's connection (the page's transaction)."""

    def __init__(self, store: StateStore) -> None:
        self.store = store

    def get(self, key: str, conn: Connection | None = None) -> Link | None:
        if conn is not None:
            row = conn.execute(_BY_KEY, {"_link_key": key}).first()
        else:
            with self.store.transaction() as own:
                row = own.execute(_BY_KEY, {"_link_key": key}).first()
        return Link(**row._mapping) if row else None

    def many(self, keys: list[str]) -> dict[str, Link]:
        if not keys:
            return {}
        with self.store.transaction() as conn:
            rows = conn.execute(sa.select(schema.links).where(schema.links.c.link_key.in_(keys)))
            return {row.link_key: Link(**row._mapping) for row in rows}

    def cases_linked(self, department: str, case_ids: Sequence[str]) -> set[str]:
        """The ids among ``case_ids`` with at least one link to ``department``."""
        return cases_with_rows(self.store, schema.links, department, case_ids)

    def for_job(
        self, job: str, *, stage: str | None = None, remote_status: str | None = None
    ) -> list[Link]:
        """The job's links, optionally only those at ``stage`` with ``remote_status``."""
        table = schema.links
        query = sa.select(table).where(table.c.job == job).order_by(table.c.link_key)
        if stage is not None:
            query = query.where(table.c.stage == stage)
        if remote_status is not None:
            query = query.where(table.c.remote_status == remote_status)
        with self.store.transaction() as conn:
            return [Link(**row._mapping) for row in conn.execute(query)]

    def upsert(self, conn: Connection, key: str, **values: Any) -> None:
        """Insert the link or update the given columns (the one-link case of
        :meth:`upsert_many`)."""
        self.upsert_many(conn, [(key, values)])

    def upsert_many(self, conn: Connection, rows: Sequence[tuple[str, Mapping[str, Any]]]) -> None:
        """Insert each ``(link_key, columns)`` link or update the given columns, in the
        caller's transaction, with the outcome of one :meth:`upsert` per row in order.

        Many rows (a sync page): one lookup per 500 keys, then one ``executemany`` for the new
        links and one per column set for the known ones, instead of up to two statements per
        link (BENCHMARKS.md). One row (a delivery): UPDATE, then INSERT only if no row was
        updated, so the common case stays one statement.
        """
        for _, values in rows:
            unknown = set(values) - _COLUMNS
            if unknown:
                raise ValueError(f"unknown link columns: {sorted(unknown)}")
        now = utcnow()
        table = schema.links
        if len(rows) == 1:
            key, values = rows[0]
            # The SET columns are the parameters' keys (as in the executemany below).
            updated = conn.execute(_UPDATE_BY_KEY, {"_link_key": key, "updated_at": now, **values})
            if updated.rowcount == 0:
                conn.execute(
                    _INSERT, {"link_key": key, "created_at": now, "updated_at": now, **values}
                )
            return
        # Later rows for the same key update what earlier rows wrote: merged, in order.
        merged: dict[str, dict[str, Any]] = {}
        for key, values in rows:
            merged.setdefault(key, {}).update(values)
        keys = list(merged)
        known: set[str] = set()
        for start in range(0, len(keys), _KEYS_PER_LOOKUP):
            chunk = keys[start : start + _KEYS_PER_LOOKUP]
            known.update(
                conn.execute(
                    sa.select(table.c.link_key).where(table.c.link_key.in_(chunk))
                ).scalars()
            )
        inserts: dict[frozenset[str], list[dict[str, Any]]] = {}
        updates: dict[frozenset[str], list[dict[str, Any]]] = {}
        for key, values in merged.items():
            if key in known:
                updates.setdefault(frozenset(values), []).append(
                    {"_link_key": key, "updated_at": now, **values}
                )
            else:
                inserts.setdefault(frozenset(values), []).append(
                    {"link_key": key, "created_at": now, "updated_at": now, **values}
                )
        for batch in inserts.values():
            conn.execute(table.insert(), batch)
        for batch in updates.values():
            conn.execute(table.update().where(table.c.link_key == sa.bindparam("_link_key")), batch)

    def update_existing(
        self, conn: Connection, rows: Sequence[tuple[str, Mapping[str, Any]]]
    ) -> None:
        """Update the given columns of links that exist; a missing link is skipped, never
        created. For deliveries: every message's link was created with it, and one that is
        gone was destroyed under retention meanwhile (policy §3.6) and must not come back."""
        for _, values in rows:
            unknown = set(values) - _COLUMNS
            if unknown:
                raise ValueError(f"unknown link columns: {sorted(unknown)}")
        now = utcnow()
        table = schema.links
        merged: dict[str, dict[str, Any]] = {}
        for key, values in rows:
            merged.setdefault(key, {}).update(values)
        updates: dict[frozenset[str], list[dict[str, Any]]] = {}
        for key, values in merged.items():
            updates.setdefault(frozenset(values), []).append(
                {"_link_key": key, "updated_at": now, **values}
            )
        for batch in updates.values():
            conn.execute(table.update().where(table.c.link_key == sa.bindparam("_link_key")), batch)

    def update(self, key: str, **values: Any) -> None:
        with self.store.transaction() as conn:
            self.upsert(conn, key, **values)


def cases_with_rows(
    store: StateStore, table: sa.Table, department: str, case_ids: Sequence[str]
) -> set[str]:
    """The ids among ``case_ids`` that have a row of ``table`` (a table with ``department``
    and ``case_id`` columns) for ``department``, looked up in chunks."""
    found: set[str] = set()
    with store.transaction() as conn:
        for start in range(0, len(case_ids), _KEYS_PER_LOOKUP):
            chunk = list(case_ids[start : start + _KEYS_PER_LOOKUP])
            query = sa.select(table.c.case_id).where(
                table.c.department == department, table.c.case_id.in_(chunk)
            )
            found.update(row.case_id for row in conn.execute(query))
    return found
