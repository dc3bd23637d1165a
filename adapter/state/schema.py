"""The current shape of the state store's tables, for queries.

The DDL that creates and changes them lives in ``migrations.py``: a table's shape here must
always equal what the migrations, applied in order, produce (``tests/state`` checks this).
"""

from __future__ import annotations

import sqlalchemy as sa

from adapter.state.types import UTCDateTime

metadata = sa.MetaData()

schema_migrations = sa.Table(
    "schema_migrations",
    metadata,
    sa.Column("version", sa.Integer, primary_key=True),
    sa.Column("name", sa.String(200), nullable=False),
    sa.Column("applied_at", UTCDateTime, nullable=False),
)

cursors = sa.Table(
    "cursors",
    metadata,
    sa.Column("job", sa.String(100), primary_key=True),
    sa.Column("stream", sa.String(100), primary_key=True),
    sa.Column("value", sa.Text, nullable=False),
    sa.Column("updated_at", UTCDateTime, nullable=False),
)

runs = sa.Table(
    "runs",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("job", sa.String(100), nullable=False, index=True),
    sa.Column("owner", sa.String(200), nullable=False),
    sa.Column("started_at", UTCDateTime, nullable=False),
    sa.Column("finished_at", UTCDateTime),
    # running | ok | failed | skipped | abandoned
    sa.Column("status", sa.String(20), nullable=False),
    sa.Column("stats", sa.JSON, nullable=False),
    sa.Column("error_class", sa.String(100)),
    sa.Column("error_message", sa.Text),
)

leases = sa.Table(
    "leases",
    metadata,
    sa.Column("name", sa.String(100), primary_key=True),
    sa.Column("owner", sa.String(200)),
    sa.Column("acquired_at", UTCDateTime),
    sa.Column("expires_at", UTCDateTime),
    # Incremented on every acquisition: a fencing token a stale holder can be told apart by.
    sa.Column("token", sa.Integer, nullable=False),
)
