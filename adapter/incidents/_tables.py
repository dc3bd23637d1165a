"""Query-side shapes of the incident tables.

The DDL that creates them is migration 7 in ``adapter/state/migrations.py``; these objects must
mirror it column for column (``tests/incidents/test_tables.py`` checks that against a migrated
database).
"""

from __future__ import annotations

import sqlalchemy as sa

from adapter.state.types import UTCDateTime

metadata = sa.MetaData()

# One suspected breach (policy §3.4). ``department`` is the department the events name (NULL for
# adapter-wide kinds such as a broken audit chain); ``notice`` is the text sent to the DPO, kept
# so what was sent can be shown later. Nothing here holds a case id, a name or free text from a
# case; ``resolution`` is the closing officer's own words.
incidents = sa.Table(
    "incidents",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("opened_at", UTCDateTime, nullable=False),
    sa.Column("deadline_at", UTCDateTime, nullable=False),
    sa.Column("kind", sa.String(50), nullable=False),
    sa.Column("department", sa.String(100)),
    # critical | high | medium | low
    sa.Column("severity", sa.String(20), nullable=False),
    # open | notified | closed
    sa.Column("status", sa.String(20), nullable=False),
    sa.Column("first_event_id", sa.Integer, nullable=False),
    sa.Column("last_event_id", sa.Integer, nullable=False),
    sa.Column("first_event_at", UTCDateTime, nullable=False),
    sa.Column("last_event_at", UTCDateTime, nullable=False),
    sa.Column("event_count", sa.Integer, nullable=False),
    sa.Column("notice", sa.Text),
    sa.Column("notified_at", UTCDateTime),
    sa.Column("closed_at", UTCDateTime),
    sa.Column("closed_by", sa.String(120)),
    sa.Column("resolution", sa.String(1000)),
    sa.Index("ix_incidents_group", "kind", "department", "status"),
    sa.Index("ix_incidents_status", "status", "deadline_at"),
)

# One notice to one recipient; retried until the server takes it.
incident_notifications = sa.Table(
    "incident_notifications",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("incident_id", sa.Integer, nullable=False),
    sa.Column("recipient", sa.String(200), nullable=False),
    # email (the only channel so far)
    sa.Column("channel", sa.String(20), nullable=False),
    # queued | sent
    sa.Column("status", sa.String(20), nullable=False),
    sa.Column("queued_at", UTCDateTime, nullable=False),
    sa.Column("next_attempt_at", UTCDateTime, nullable=False),
    sa.Column("sent_at", UTCDateTime),
    sa.Column("attempts", sa.Integer, nullable=False),
    sa.Column("last_error", sa.String(500)),
    sa.UniqueConstraint(
        "incident_id", "recipient", "channel", name="uq_incident_notifications_recipient"
    ),
    sa.Index("ix_incident_notifications_due", "status", "next_attempt_at"),
)

# One row (id = 1): the last security event the scan turned into (or ruled out of) an incident,
# and since when it has waited for a missing id before it (detect.py explains why).
incident_cursor = sa.Table(
    "incident_cursor",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("last_event_id", sa.Integer, nullable=False),
    sa.Column("scanned_at", UTCDateTime, nullable=False),
    sa.Column("gap_since", UTCDateTime),
)
