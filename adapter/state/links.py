"""Links: what the adapter knows about each referral it carries to a department.

One row per ``link_key`` (``<department>:<referral key>``): the case it belongs to (kept inside
the adapter), the department's case code, the stage reached, the hash of the last content
enqueued (so an unchanged case, or the echo of our own write-back, enqueues nothing), the
department's reference and status, and what was last written back into Primero.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from adapter.state import schema
from adapter.state.store import StateStore
from adapter.state.types import utcnow


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


def link_key(department: str, referral_key: str) -> str:
    return f"{department}:{referral_key}"


class Links:
    """Read and write links; writes take the caller's connection (the page's transaction)."""

    def __init__(self, store: StateStore) -> None:
        self.store = store

    def get(self, key: str, conn: Connection | None = None) -> Link | None:
        query = sa.select(schema.links).where(schema.links.c.link_key == key)
        if conn is not None:
            row = conn.execute(query).first()
        else:
            with self.store.transaction() as own:
                row = own.execute(query).first()
        return Link(**row._mapping) if row else None

    def many(self, keys: list[str]) -> dict[str, Link]:
        if not keys:
            return {}
        with self.store.transaction() as conn:
            rows = conn.execute(sa.select(schema.links).where(schema.links.c.link_key.in_(keys)))
            return {row.link_key: Link(**row._mapping) for row in rows}

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
        """Insert the link or update the given columns."""
        unknown = set(values) - _COLUMNS
        if unknown:
            raise ValueError(f"unknown link columns: {sorted(unknown)}")
        now = utcnow()
        table = schema.links
        updated = conn.execute(
            table.update().where(table.c.link_key == key).values(updated_at=now, **values)
        )
        if updated.rowcount == 0:
            conn.execute(
                table.insert().values(link_key=key, created_at=now, updated_at=now, **values)
            )

    def update(self, key: str, **values: Any) -> None:
        with self.store.transaction() as conn:
            self.upsert(conn, key, **values)
