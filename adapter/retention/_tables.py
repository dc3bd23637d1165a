"""Query-side shapes of the retention tables.

The DDL that creates them is migration 6 in ``adapter/state/migrations.py``; these objects must
mirror it column for column (``tests/retention/test_tables.py`` checks that on both backends).

What is stored, and why (privacy.md §6.7):

* a closed case only as ``case_ref``, a keyed HMAC of its Primero id (the key lives under the
  KEK, so the table alone cannot be matched against a list of case ids);
* everything the adapter held about it in one ``blob`` under its own AES-256-GCM key
  (``wrapped_key``, wrapped by the key ring's data-at-rest key), so one case can be shredded
  by erasing one short value; after destruction only ``case_ref`` and ``destroyed_at`` remain;
* statistics only as counts per (district, month, concern, age band, sex): never a row per case.
"""

from __future__ import annotations

import sqlalchemy as sa

from adapter.state.types import UTCDateTime

metadata = sa.MetaData()

# The retention HMAC key (case_ref), wrapped with KeyRing.encrypt_payload: KeyRing's own table
# only knows its three roles (the registry does the same, adapter/registry/_crypto.py).
retention_keys = sa.Table(
    "retention_keys",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("role", sa.String(20), nullable=False),
    sa.Column("version", sa.Integer, nullable=False),
    sa.Column("wrapped", sa.LargeBinary, nullable=False),
    sa.Column("created_at", UTCDateTime, nullable=False),
    sa.UniqueConstraint("role", "version", name="uq_retention_keys_role_version"),
)

# One row per closed case: an archive until destroy_after, a tombstone afterwards.
case_archives = sa.Table(
    "case_archives",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("case_ref", sa.String(64), nullable=False, unique=True),
    # The per-case key, wrapped (context-bound to case_ref); NULL once shredded.
    sa.Column("wrapped_key", sa.LargeBinary),
    sa.Column("blob", sa.LargeBinary),
    sa.Column("closed_at", UTCDateTime),
    sa.Column("archived_at", UTCDateTime),
    sa.Column("destroy_after", UTCDateTime),
    # Set at destruction: from then on the row is a tombstone (case_ref, destroyed_at).
    sa.Column("destroyed_at", UTCDateTime),
    sa.Index("ix_case_archives_due", "destroyed_at", "destroy_after"),
)

# De-identified counts of closed cases (GBVIMS-style monthly tables).
retention_aggregates = sa.Table(
    "retention_aggregates",
    metadata,
    sa.Column("district", sa.String(60), primary_key=True),
    sa.Column("month", sa.String(7), primary_key=True),
    sa.Column("concern", sa.String(20), primary_key=True),
    sa.Column("age_band", sa.String(10), primary_key=True),
    sa.Column("sex", sa.String(20), primary_key=True),
    sa.Column("count", sa.Integer, nullable=False),
)

# Every statistics release, so the next one is suppressed against what was already shown.
retention_releases = sa.Table(
    "retention_releases",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("released_at", UTCDateTime, nullable=False),
    sa.Column("entries", sa.Integer, nullable=False),
    sa.Column("suppressed", sa.Integer, nullable=False),
)

# Per published entry (a cell or a margin, '*' in a margin's dimensions): the last value a
# release showed, and whether the latest release hid it (complements are kept stable).
retention_published = sa.Table(
    "retention_published",
    metadata,
    sa.Column("district", sa.String(60), primary_key=True),
    sa.Column("month", sa.String(7), primary_key=True),
    sa.Column("concern", sa.String(20), primary_key=True),
    sa.Column("age_band", sa.String(10), primary_key=True),
    sa.Column("sex", sa.String(20), primary_key=True),
    sa.Column("shown", sa.Integer),
    sa.Column("hidden_in", sa.Integer),
    sa.Column("release_id", sa.Integer, nullable=False),
)
