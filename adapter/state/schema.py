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

outbox = sa.Table(
    "outbox",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("idempotency_key", sa.String(100), nullable=False, unique=True),
    sa.Column("job", sa.String(100), nullable=False),
    # A department name, or "primero" for write-backs.
    sa.Column("destination", sa.String(100), nullable=False),
    # probe | referral | update | deletion | writeback | status
    sa.Column("kind", sa.String(30), nullable=False),
    # Messages about one referral share a link_key and are delivered in order.
    sa.Column("link_key", sa.String(200), nullable=False),
    # Encrypted with the key ring's data key; erased once sent or dropped.
    sa.Column("payload", sa.LargeBinary, nullable=False),
    # pending | sent | dead | dropped
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

links = sa.Table(
    "links",
    metadata,
    # One referral to one department: "<department>:<referral key>".
    sa.Column("link_key", sa.String(200), primary_key=True),
    sa.Column("job", sa.String(100), nullable=False),
    sa.Column("department", sa.String(100), nullable=False),
    # Primero's ids stay inside the adapter; departments only ever see case_code.
    sa.Column("case_id", sa.String(64), nullable=False, index=True),
    sa.Column("referral_id", sa.String(64)),
    sa.Column("case_code", sa.String(200), nullable=False),
    # probe | identified | withdrawn
    sa.Column("stage", sa.String(20), nullable=False),
    # Hash of the last payload enqueued: an unchanged case (or our own write-back echo)
    # enqueues nothing.
    sa.Column("content_hash", sa.String(64)),
    sa.Column("external_ref", sa.String(200)),
    # The department's status (e.g. a FHIR Task status) and when it last changed there.
    sa.Column("remote_status", sa.String(40)),
    sa.Column("remote_note", sa.Text),
    sa.Column("remote_outputs", sa.JSON),
    sa.Column("remote_updated_at", UTCDateTime),
    sa.Column("remote_version", sa.String(100)),
    # The last status written back into Primero's referral, and to the linked-records form.
    sa.Column("primero_status", sa.String(40)),
    sa.Column("written_back_status", sa.String(40)),
    sa.Column("created_at", UTCDateTime, nullable=False),
    sa.Column("updated_at", UTCDateTime, nullable=False),
)

inbox = sa.Table(
    "inbox",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    # Message ids are unique per department: two departments may pick the same UUID.
    sa.Column("department", sa.String(100), nullable=False),
    sa.Column("message_id", sa.String(36), nullable=False),
    # The API route the message came by (referrals, referral-response, fir-links, ...).
    sa.Column("route", sa.String(60), nullable=False),
    # SHA-256 of route + path + canonical body: a replay must carry the same message.
    sa.Column("request_hash", sa.String(64), nullable=False),
    # accepted: answered, its Primero work committed to the outbox in the same transaction.
    sa.Column("status", sa.String(20), nullable=False),
    # The first answer, returned unchanged to every replay. Never holds personal data.
    sa.Column("response_status", sa.Integer, nullable=False),
    sa.Column("response_body", sa.JSON, nullable=False),
    sa.Column("link_key", sa.String(200)),
    sa.Column("received_at", UTCDateTime, nullable=False),
    sa.UniqueConstraint("department", "message_id", name="uq_inbox_department_message"),
)

service_instances = sa.Table(
    "service_instances",
    metadata,
    sa.Column("owner", sa.String(200), primary_key=True),
    sa.Column("host", sa.String(200), nullable=False),
    sa.Column("version", sa.String(40), nullable=False),
    sa.Column("jobs", sa.JSON, nullable=False),
    sa.Column("started_at", UTCDateTime, nullable=False),
    sa.Column("last_seen", UTCDateTime, nullable=False),
    sa.Column("stopped_at", UTCDateTime),
)

# A request to run a job now rather than at its next scheduled time (a Primero webhook, an
# operator): `cpims-adapter run` instances look here every few seconds.
job_wakeups = sa.Table(
    "job_wakeups",
    metadata,
    sa.Column("job", sa.String(100), primary_key=True),
    sa.Column("requested_at", UTCDateTime, nullable=False),
    sa.Column("reason", sa.String(40), nullable=False),
)

# A referral the disclosure gate holds until a person decides: an S3 case's second-person
# approval, or (no consent) a supervisor's override. Gone once the referral leaves or ends.
held_referrals = sa.Table(
    "held_referrals",
    metadata,
    sa.Column("link_key", sa.String(200), primary_key=True),
    sa.Column("job", sa.String(100), nullable=False),
    sa.Column("department", sa.String(100), nullable=False),
    sa.Column("case_id", sa.String(64), nullable=False, index=True),
    sa.Column("referral_id", sa.String(64)),
    # s3_approval | consent_or_override (adapter/privacy/disclosure.py AWAITING_*)
    sa.Column("awaiting", sa.String(30), nullable=False),
    # The gate's refusal reason: names and rules only, never a value (it is audited too).
    sa.Column("reason", sa.Text, nullable=False),
    sa.Column("held_since", UTCDateTime, nullable=False),
    sa.Column("checked_at", UTCDateTime, nullable=False),
)
