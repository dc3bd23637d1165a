"""Query-side shapes of the registry tables.

The DDL that creates them is migration 5 in ``adapter/state/migrations.py``; these objects must
mirror it column for column (``tests/registry/test_tables.py`` checks that on both backends).

What is stored, and why (privacy.md §6.6 item 10, §4):

* identifiers only as keyed HMACs (``cnic_mac``, ``subject_mac``): the key lives under the KEK,
  so the table alone cannot be brute-forced the way an unkeyed SHA-256 of a CNIC can (§1.2);
* names, dates of birth and offences only inside ``sealed`` blobs, each under its own data key
  (``wrapped_dek``, wrapped by the key ring's data-at-rest key), so one record can be shredded;
* matching material as truncated keyed hashes of phonetic codes (``name_keys``, block keys).
"""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.engine import CursorResult

from adapter.state.types import UTCDateTime

metadata = sa.MetaData()

# The registry's own HMAC keys (privacy.md §6.2 "registry index key", "registry blocking key"),
# wrapped with KeyRing.encrypt_payload: KeyRing's own table only knows its three roles.
registry_keys = sa.Table(
    "registry_keys",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("role", sa.String(20), nullable=False),
    sa.Column("version", sa.Integer, nullable=False),
    sa.Column("wrapped", sa.LargeBinary, nullable=False),
    sa.Column("created_at", UTCDateTime, nullable=False),
    sa.UniqueConstraint("role", "version", name="uq_registry_keys_role_version"),
)

# One row per signed import file (provenance of the entries it created).
registry_imports = sa.Table(
    "registry_imports",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("batch_ref", sa.String(24), nullable=False, unique=True),
    sa.Column("source", sa.String(60), nullable=False),
    sa.Column("officer", sa.String(120), nullable=False),
    sa.Column("file_sha256", sa.String(64), nullable=False, unique=True),
    sa.Column("rows", sa.Integer, nullable=False),
    sa.Column("created", sa.Integer, nullable=False),
    sa.Column("unchanged", sa.Integer, nullable=False),
    sa.Column("imported_at", UTCDateTime, nullable=False),
)

registry_entries = sa.Table(
    "registry_entries",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("entry_ref", sa.String(24), nullable=False, unique=True),
    # court:<court> or import:<register>, and that source's own reference (order number,
    # extract row id): an order delivered twice is recognised, never registered twice.
    sa.Column("source", sa.String(60), nullable=False),
    sa.Column("source_ref", sa.String(120), nullable=False),
    sa.Column("import_id", sa.Integer),
    sa.Column("cnic_mac", sa.String(64), index=True),
    # active | under_appeal | removed
    sa.Column("status", sa.String(20), nullable=False),
    sa.Column("sealed", sa.LargeBinary, nullable=False),
    sa.Column("wrapped_dek", sa.LargeBinary, nullable=False),
    # The entry's block keys "b1 b2", to delete its blocking rows on removal or correction.
    sa.Column("block_keys", sa.String(400), nullable=False),
    sa.Column("created_at", UTCDateTime, nullable=False),
    sa.Column("updated_at", UTCDateTime, nullable=False),
    sa.Column("review_due", UTCDateTime, nullable=False),
    sa.Column("removed_at", UTCDateTime),
    sa.Column("removed_by", sa.String(120)),
    sa.Column("removal_reason", sa.String(500)),
    sa.UniqueConstraint("source", "source_ref", name="uq_registry_entries_source_ref"),
    sa.Index("ix_registry_entries_review", "status", "review_due"),
)

# The blocking index (privacy.md §2.4): HMAC(phonetic code | birth year) → entry, with the
# entry's keyed scoring material ("k1 k2|u1 u2" token keys per script, keyed DOB) copied in, so
# the fuzzy stage reads one contiguous key range and never the (large, sealed) entry rows. No
# rowid on SQLite: the primary key *is* the table, clustered by block key.
registry_blocks = sa.Table(
    "registry_blocks",
    metadata,
    sa.Column("block_key", sa.String(24), primary_key=True),
    sa.Column("entry_id", sa.Integer, primary_key=True),
    sa.Column("name_keys", sa.String(400), nullable=False),
    sa.Column("father_keys", sa.String(400), nullable=False),
    sa.Column("dob_mac", sa.String(32), nullable=False),
    sqlite_with_rowid=False,
)

registry_establishments = sa.Table(
    "registry_establishments",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("registration_number", sa.String(60), nullable=False, unique=True),
    sa.Column("name", sa.String(200), nullable=False),
    sa.Column("officer1_name", sa.String(120), nullable=False),
    sa.Column("officer1_email", sa.String(200), nullable=False),
    sa.Column("officer2_name", sa.String(120), nullable=False),
    sa.Column("officer2_email", sa.String(200), nullable=False),
    # SHA-256 of a 256-bit random API key: the key is never stored.
    sa.Column("api_key_sha256", sa.String(64), nullable=False, unique=True),
    sa.Column("daily_quota", sa.Integer, nullable=False),
    sa.Column("monthly_quota", sa.Integer, nullable=False),
    # active | locked
    sa.Column("status", sa.String(20), nullable=False),
    sa.Column("status_reason", sa.String(200)),
    sa.Column("created_at", UTCDateTime, nullable=False),
    sa.Column("updated_at", UTCDateTime, nullable=False),
)

# Every authenticated check (and every rejected attempt: status REJECTED), for quotas,
# enumeration detection, the review queue and subject access.
registry_checks = sa.Table(
    "registry_checks",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("check_ref", sa.String(24), nullable=False, unique=True),
    sa.Column("establishment_id", sa.Integer, nullable=False),
    sa.Column("subject_mac", sa.String(64)),
    # Keyed hash of the CNIC's first 10 digits: sequential enumeration without the CNIC.
    sa.Column("near_mac", sa.String(32)),
    sa.Column("consent_ref", sa.String(80), unique=True),
    sa.Column("purpose", sa.String(40)),
    sa.Column("position", sa.String(120)),
    # CLEAR | PENDING_REVIEW | DO_NOT_ENGAGE | REJECTED
    sa.Column("status", sa.String(20), nullable=False),
    sa.Column("rule", sa.String(40), nullable=False),
    sa.Column("candidates", sa.String(400)),
    # The submitted identity, sealed, kept only for PENDING_REVIEW (the officer needs it).
    sa.Column("sealed", sa.LargeBinary),
    sa.Column("wrapped_dek", sa.LargeBinary),
    sa.Column("worker_id", sa.Integer),
    sa.Column("checked_at", UTCDateTime, nullable=False),
    sa.Column("valid_until", UTCDateTime, nullable=False),
    sa.Column("review_due_by", UTCDateTime),
    # CLEAR | DO_NOT_ENGAGE, set by a registry officer (review or appeal).
    sa.Column("resolution", sa.String(20)),
    sa.Column("resolved_by", sa.String(120)),
    sa.Column("resolved_at", UTCDateTime),
    sa.Column("resolution_note", sa.String(500)),
    # Migration 10: the establishment's index covers the attempt counts; checks by CNIC run.
    sa.Index(
        "ix_registry_checks_establishment",
        "establishment_id",
        "checked_at",
        "worker_id",
        "status",
        "rule",
    ),
    sa.Index("ix_registry_checks_subject", "subject_mac", "checked_at"),
    sa.Index("ix_registry_checks_queue", "status", "resolved_at"),
    sa.Index("ix_registry_checks_near", "near_mac", "establishment_id", "checked_at"),
)

registry_appeals = sa.Table(
    "registry_appeals",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("appeal_ref", sa.String(24), nullable=False, unique=True),
    sa.Column("check_id", sa.Integer),
    sa.Column("entry_id", sa.Integer),
    # The subject's grounds, encrypted with the key ring's data key (free text).
    sa.Column("grounds", sa.LargeBinary, nullable=False),
    # open | granted | refused
    sa.Column("status", sa.String(20), nullable=False),
    sa.Column("received_by", sa.String(120), nullable=False),
    sa.Column("created_at", UTCDateTime, nullable=False),
    sa.Column("decided_by", sa.String(120)),
    sa.Column("decided_at", UTCDateTime),
    sa.Column("decision_note", sa.String(500)),
)

# Continuous monitoring (privacy.md §6.6 item 8): workers an establishment has engaged.
registry_workers = sa.Table(
    "registry_workers",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("worker_ref", sa.String(24), nullable=False, unique=True),
    sa.Column("establishment_id", sa.Integer, nullable=False),
    sa.Column("subject_mac", sa.String(64), nullable=False, index=True),
    sa.Column("check_id", sa.Integer, nullable=False),
    sa.Column("sealed", sa.LargeBinary, nullable=False),
    sa.Column("wrapped_dek", sa.LargeBinary, nullable=False),
    sa.Column("registered_at", UTCDateTime, nullable=False),
    sa.Column("ended_at", UTCDateTime),
)

# One row per officer to tell; delivery (e-mail or a queue) marks delivered_at.
registry_notifications = sa.Table(
    "registry_notifications",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("establishment_id", sa.Integer, nullable=False),
    sa.Column("worker_id", sa.Integer, nullable=False),
    sa.Column("check_ref", sa.String(24), nullable=False),
    sa.Column("officer_name", sa.String(120), nullable=False),
    sa.Column("officer_email", sa.String(200), nullable=False),
    sa.Column("status", sa.String(20), nullable=False),
    sa.Column("created_at", UTCDateTime, nullable=False),
    sa.Column("delivered_at", UTCDateTime),
    sa.Index("ix_registry_notifications_pending", "delivered_at"),
)


def inserted_id(result: CursorResult[object]) -> int:
    """The primary key of the row a single-row INSERT created."""
    key = result.inserted_primary_key
    assert key is not None
    return int(key[0])
