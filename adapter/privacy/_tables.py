"""Query-side shapes of the privacy tables.

The DDL that creates them is migration 2 in ``adapter/state/migrations.py``; these objects must
mirror it column for column (``tests/privacy/test_tables.py`` checks that against a migrated
database).
"""

from __future__ import annotations

import sqlalchemy as sa

from adapter.state.types import UTCDateTime

metadata = sa.MetaData()

# Wrapped key material (privacy.md §6.2). ``scope`` is the department for token keys and '' for
# the adapter-wide roles: '' rather than NULL so the unique constraint holds on every backend
# (NULLs never collide in a UNIQUE index).
keys = sa.Table(
    "keys",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("role", sa.String(20), nullable=False),
    sa.Column("scope", sa.String(100), nullable=False),
    sa.Column("version", sa.Integer, nullable=False),
    # active | retiring | destroyed
    sa.Column("state", sa.String(20), nullable=False),
    sa.Column("wrapped", sa.LargeBinary),
    sa.Column("created_at", UTCDateTime, nullable=False),
    sa.Column("retire_after", UTCDateTime),
    sa.Column("destroyed_at", UTCDateTime),
    sa.UniqueConstraint("role", "scope", "version", name="uq_keys_role_scope_version"),
)

# Case codes handed to a department, so a rotation can re-issue every one of them (crosswalk).
issued_codes = sa.Table(
    "issued_codes",
    metadata,
    sa.Column("code", sa.String(160), primary_key=True),
    sa.Column("department", sa.String(100), nullable=False),
    sa.Column("key_version", sa.Integer, nullable=False),
    sa.Column("issued_at", UTCDateTime, nullable=False),
    sa.Index("ix_issued_codes_department_version", "department", "key_version"),
)

code_crosswalk = sa.Table(
    "code_crosswalk",
    metadata,
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

# The vault of short printed-form codes (privacy.md §1.2 "tokenisation"): random, so only this
# table links them to a case.
short_codes = sa.Table(
    "short_codes",
    metadata,
    sa.Column("code", sa.String(20), primary_key=True),
    sa.Column("department", sa.String(100), nullable=False),
    sa.Column("case_id", sa.String(64), nullable=False),
    sa.Column("issued_at", UTCDateTime, nullable=False),
    sa.UniqueConstraint("department", "case_id", name="uq_short_codes_department_case"),
)

# The adapter's own consent overrides and S3 approvals (privacy.md §6.3). ``reason`` is the
# caseworker's free text: it never goes to the audit log, a log line or an exception.
consent_overrides = sa.Table(
    "consent_overrides",
    metadata,
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

# Deletion requests the sync engine delivers to departments after consent is withdrawn.
deletion_requests = sa.Table(
    "deletion_requests",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("department", sa.String(100), nullable=False),
    sa.Column("case_code", sa.String(160), nullable=False),
    sa.Column("reason", sa.String(200), nullable=False),
    # pending | delivered
    sa.Column("status", sa.String(20), nullable=False),
    sa.Column("requested_at", UTCDateTime, nullable=False),
    sa.Column("delivered_at", UTCDateTime),
    sa.Column("attempts", sa.Integer, nullable=False),
    sa.Index("ix_deletion_requests_status", "status", "department"),
)

# What issue 7 builds incidents on. ``detail`` is written by the adapter, never copied from input.
security_events = sa.Table(
    "security_events",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("at", UTCDateTime, nullable=False, index=True),
    sa.Column("kind", sa.String(50), nullable=False),
    sa.Column("department", sa.String(100)),
    sa.Column("detail", sa.String(500), nullable=False),
)

# The hash-chained disclosure log (privacy.md §6.6 item 6); ``seq`` is assigned by the writer,
# never by the database, so a gap is evidence of deletion.
audit_log = sa.Table(
    "audit_log",
    metadata,
    sa.Column("seq", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("recorded_at", UTCDateTime, nullable=False),
    sa.Column("key_version", sa.Integer, nullable=False),
    sa.Column("entry", sa.Text, nullable=False),
    sa.Column("mac", sa.String(64), nullable=False),
)

# One row (id = 1): the last seq and MAC, itself MACed, so deleting the tail is detected.
audit_head = sa.Table(
    "audit_head",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("seq", sa.Integer, nullable=False),
    sa.Column("mac", sa.String(64), nullable=False),
    sa.Column("key_version", sa.Integer, nullable=False),
    sa.Column("head_mac", sa.String(64), nullable=False),
    sa.Column("updated_at", UTCDateTime, nullable=False),
)
