"""Versioned schema migrations, applied in order, each recorded in ``schema_migrations`` inside
the same transaction as its DDL (the sqlite-utils pattern), so a crash leaves either the whole
migration or none of it.

A migration is a function of a ``Connection`` and never changes once released: later changes
are new migrations. Each migration spells out its own DDL rather than reusing ``schema.py``,
so a fresh database and an upgraded one end up identical.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from adapter.state.types import UTCDateTime


@dataclass(frozen=True)
class Migration:
    version: int
    name: str
    apply: Callable[[Connection], None]


def _m0001_spine(conn: Connection) -> None:
    md = sa.MetaData()
    sa.Table(
        "cursors",
        md,
        sa.Column("job", sa.String(100), primary_key=True),
        sa.Column("stream", sa.String(100), primary_key=True),
        sa.Column("value", sa.Text, nullable=False),
        sa.Column("updated_at", UTCDateTime, nullable=False),
    )
    sa.Table(
        "runs",
        md,
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("job", sa.String(100), nullable=False, index=True),
        sa.Column("owner", sa.String(200), nullable=False),
        sa.Column("started_at", UTCDateTime, nullable=False),
        sa.Column("finished_at", UTCDateTime),
        sa.Column("status", sa.String(20), nullable=False),
        sa.Column("stats", sa.JSON, nullable=False),
        sa.Column("error_class", sa.String(100)),
        sa.Column("error_message", sa.Text),
    )
    sa.Table(
        "leases",
        md,
        sa.Column("name", sa.String(100), primary_key=True),
        sa.Column("owner", sa.String(200)),
        sa.Column("acquired_at", UTCDateTime),
        sa.Column("expires_at", UTCDateTime),
        sa.Column("token", sa.Integer, nullable=False),
    )
    md.create_all(conn)


def _m0002_privacy(conn: Connection) -> None:
    """Keys, case codes, consent overrides, deletion requests, security events and the
    hash-chained audit log (privacy.md §6; query-side mirror in adapter/privacy/_tables.py)."""
    md = sa.MetaData()
    sa.Table(
        "keys",
        md,
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("role", sa.String(20), nullable=False),
        sa.Column("scope", sa.String(100), nullable=False),
        sa.Column("version", sa.Integer, nullable=False),
        sa.Column("state", sa.String(20), nullable=False),
        sa.Column("wrapped", sa.LargeBinary),
        sa.Column("created_at", UTCDateTime, nullable=False),
        sa.Column("retire_after", UTCDateTime),
        sa.Column("destroyed_at", UTCDateTime),
        sa.UniqueConstraint("role", "scope", "version", name="uq_keys_role_scope_version"),
    )
    sa.Table(
        "issued_codes",
        md,
        sa.Column("code", sa.String(160), primary_key=True),
        sa.Column("department", sa.String(100), nullable=False),
        sa.Column("key_version", sa.Integer, nullable=False),
        sa.Column("issued_at", UTCDateTime, nullable=False),
        sa.Index("ix_issued_codes_department_version", "department", "key_version"),
    )
    sa.Table(
        "code_crosswalk",
        md,
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("department", sa.String(100), nullable=False),
        sa.Column("old_code", sa.String(160), nullable=False, unique=True),
        sa.Column("new_code", sa.String(160), nullable=False),
        sa.Column("old_version", sa.Integer, nullable=False),
        sa.Column("new_version", sa.Integer, nullable=False),
        sa.Column("created_at", UTCDateTime, nullable=False),
        sa.Column("delivered_at", UTCDateTime),
        sa.Index("ix_code_crosswalk_department", "department", "new_version"),
    )
    sa.Table(
        "short_codes",
        md,
        sa.Column("code", sa.String(20), primary_key=True),
        sa.Column("department", sa.String(100), nullable=False),
        sa.Column("case_id", sa.String(64), nullable=False),
        sa.Column("issued_at", UTCDateTime, nullable=False),
        sa.UniqueConstraint("department", "case_id", name="uq_short_codes_department_case"),
    )
    sa.Table(
        "consent_overrides",
        md,
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("case_id", sa.String(64), nullable=False, index=True),
        sa.Column("department", sa.String(100), nullable=False),
        sa.Column("purpose", sa.String(100)),
        sa.Column("basis", sa.String(30), nullable=False),
        sa.Column("legal_reference", sa.String(200), nullable=False),
        sa.Column("reason", sa.Text, nullable=False),
        sa.Column("requested_by", sa.String(200), nullable=False),
        sa.Column("approved_by", sa.String(200), nullable=False),
        sa.Column("created_at", UTCDateTime, nullable=False),
        sa.Column("expires_at", UTCDateTime, nullable=False),
        sa.Column("revoked_at", UTCDateTime),
    )
    sa.Table(
        "deletion_requests",
        md,
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("department", sa.String(100), nullable=False),
        sa.Column("case_code", sa.String(160), nullable=False),
        sa.Column("reason", sa.String(200), nullable=False),
        sa.Column("status", sa.String(20), nullable=False),
        sa.Column("requested_at", UTCDateTime, nullable=False),
        sa.Column("delivered_at", UTCDateTime),
        sa.Column("attempts", sa.Integer, nullable=False),
        sa.Index("ix_deletion_requests_status", "status", "department"),
    )
    sa.Table(
        "security_events",
        md,
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("at", UTCDateTime, nullable=False, index=True),
        sa.Column("kind", sa.String(50), nullable=False),
        sa.Column("department", sa.String(100)),
        sa.Column("detail", sa.String(500), nullable=False),
    )
    sa.Table(
        "audit_log",
        md,
        sa.Column("seq", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("recorded_at", UTCDateTime, nullable=False),
        sa.Column("key_version", sa.Integer, nullable=False),
        sa.Column("entry", sa.Text, nullable=False),
        sa.Column("mac", sa.String(64), nullable=False),
    )
    sa.Table(
        "audit_head",
        md,
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("seq", sa.Integer, nullable=False),
        sa.Column("mac", sa.String(64), nullable=False),
        sa.Column("key_version", sa.Integer, nullable=False),
        sa.Column("head_mac", sa.String(64), nullable=False),
        sa.Column("updated_at", UTCDateTime, nullable=False),
    )
    md.create_all(conn)


def _m0003_sync(conn: Connection) -> None:
    md = sa.MetaData()
    sa.Table(
        "outbox",
        md,
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("idempotency_key", sa.String(100), nullable=False, unique=True),
        sa.Column("job", sa.String(100), nullable=False),
        sa.Column("destination", sa.String(100), nullable=False),
        sa.Column("kind", sa.String(30), nullable=False),
        sa.Column("link_key", sa.String(200), nullable=False),
        sa.Column("payload", sa.LargeBinary, nullable=False),
        sa.Column("status", sa.String(20), nullable=False),
        sa.Column("attempts", sa.Integer, nullable=False),
        sa.Column("next_attempt_at", UTCDateTime, nullable=False),
        sa.Column("created_at", UTCDateTime, nullable=False),
        sa.Column("updated_at", UTCDateTime, nullable=False),
        sa.Column("sent_at", UTCDateTime),
        sa.Column("last_error_class", sa.String(100)),
        sa.Column("last_error", sa.Text),
        sa.Column("result", sa.JSON),
        sa.Index("ix_outbox_due", "destination", "status", "next_attempt_at"),
        sa.Index("ix_outbox_link", "link_key"),
    )
    sa.Table(
        "links",
        md,
        sa.Column("link_key", sa.String(200), primary_key=True),
        sa.Column("job", sa.String(100), nullable=False),
        sa.Column("department", sa.String(100), nullable=False),
        sa.Column("case_id", sa.String(64), nullable=False, index=True),
        sa.Column("referral_id", sa.String(64)),
        sa.Column("case_code", sa.String(200), nullable=False),
        sa.Column("stage", sa.String(20), nullable=False),
        sa.Column("content_hash", sa.String(64)),
        sa.Column("external_ref", sa.String(200)),
        sa.Column("remote_status", sa.String(40)),
        sa.Column("remote_note", sa.Text),
        sa.Column("remote_outputs", sa.JSON),
        sa.Column("remote_updated_at", UTCDateTime),
        sa.Column("primero_status", sa.String(40)),
        sa.Column("written_back_status", sa.String(40)),
        sa.Column("created_at", UTCDateTime, nullable=False),
        sa.Column("updated_at", UTCDateTime, nullable=False),
    )
    md.create_all(conn)


# Append new migrations at the end; never edit or reorder released ones.
MIGRATIONS: list[Migration] = [
    Migration(1, "spine: cursors, runs, leases", _m0001_spine),
    Migration(2, "privacy: keys, codes, overrides, deletions, events, audit", _m0002_privacy),
    Migration(3, "sync: outbox and links", _m0003_sync),
]
