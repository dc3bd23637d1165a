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
        sa.Column("remote_version", sa.String(100)),
        sa.Column("primero_status", sa.String(40)),
        sa.Column("written_back_status", sa.String(40)),
        sa.Column("created_at", UTCDateTime, nullable=False),
        sa.Column("updated_at", UTCDateTime, nullable=False),
    )
    md.create_all(conn)


def _m0004_inbox(conn: Connection) -> None:
    """The inbound API's inbox: one row per (department, message_id) it accepted, with the
    answer it gave, so a replayed message gets the same answer and changes nothing."""
    md = sa.MetaData()
    sa.Table(
        "inbox",
        md,
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("department", sa.String(100), nullable=False),
        sa.Column("message_id", sa.String(36), nullable=False),
        sa.Column("route", sa.String(60), nullable=False),
        sa.Column("request_hash", sa.String(64), nullable=False),
        sa.Column("status", sa.String(20), nullable=False),
        sa.Column("response_status", sa.Integer, nullable=False),
        sa.Column("response_body", sa.JSON, nullable=False),
        sa.Column("link_key", sa.String(200)),
        sa.Column("received_at", UTCDateTime, nullable=False),
        sa.UniqueConstraint("department", "message_id", name="uq_inbox_department_message"),
    )
    md.create_all(conn)


def _m0005_registry(conn: Connection) -> None:
    """Offender registry (issue 6; privacy.md §6.6): keys, imports, entries, blocking index,
    establishments, checks, appeals, monitored workers, notifications (query-side mirror in
    adapter/registry/_tables.py)."""
    md = sa.MetaData()
    sa.Table(
        "registry_keys",
        md,
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("role", sa.String(20), nullable=False),
        sa.Column("version", sa.Integer, nullable=False),
        sa.Column("wrapped", sa.LargeBinary, nullable=False),
        sa.Column("created_at", UTCDateTime, nullable=False),
        sa.UniqueConstraint("role", "version", name="uq_registry_keys_role_version"),
    )
    sa.Table(
        "registry_imports",
        md,
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
    sa.Table(
        "registry_entries",
        md,
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("entry_ref", sa.String(24), nullable=False, unique=True),
        sa.Column("source", sa.String(60), nullable=False),
        sa.Column("source_ref", sa.String(120), nullable=False),
        sa.Column("import_id", sa.Integer),
        sa.Column("cnic_mac", sa.String(64), index=True),
        sa.Column("status", sa.String(20), nullable=False),
        sa.Column("sealed", sa.LargeBinary, nullable=False),
        sa.Column("wrapped_dek", sa.LargeBinary, nullable=False),
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
    sa.Table(
        "registry_blocks",
        md,
        sa.Column("block_key", sa.String(24), primary_key=True),
        sa.Column("entry_id", sa.Integer, primary_key=True),
        sa.Column("name_keys", sa.String(400), nullable=False),
        sa.Column("father_keys", sa.String(400), nullable=False),
        sa.Column("dob_mac", sa.String(32), nullable=False),
        sqlite_with_rowid=False,
    )
    sa.Table(
        "registry_establishments",
        md,
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("registration_number", sa.String(60), nullable=False, unique=True),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("officer1_name", sa.String(120), nullable=False),
        sa.Column("officer1_email", sa.String(200), nullable=False),
        sa.Column("officer2_name", sa.String(120), nullable=False),
        sa.Column("officer2_email", sa.String(200), nullable=False),
        sa.Column("api_key_sha256", sa.String(64), nullable=False, unique=True),
        sa.Column("daily_quota", sa.Integer, nullable=False),
        sa.Column("monthly_quota", sa.Integer, nullable=False),
        sa.Column("status", sa.String(20), nullable=False),
        sa.Column("status_reason", sa.String(200)),
        sa.Column("created_at", UTCDateTime, nullable=False),
        sa.Column("updated_at", UTCDateTime, nullable=False),
    )
    sa.Table(
        "registry_checks",
        md,
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("check_ref", sa.String(24), nullable=False, unique=True),
        sa.Column("establishment_id", sa.Integer, nullable=False),
        sa.Column("subject_mac", sa.String(64)),
        sa.Column("near_mac", sa.String(32)),
        sa.Column("consent_ref", sa.String(80), unique=True),
        sa.Column("purpose", sa.String(40)),
        sa.Column("position", sa.String(120)),
        sa.Column("status", sa.String(20), nullable=False),
        sa.Column("rule", sa.String(40), nullable=False),
        sa.Column("candidates", sa.String(400)),
        sa.Column("sealed", sa.LargeBinary),
        sa.Column("wrapped_dek", sa.LargeBinary),
        sa.Column("worker_id", sa.Integer),
        sa.Column("checked_at", UTCDateTime, nullable=False),
        sa.Column("valid_until", UTCDateTime, nullable=False),
        sa.Column("review_due_by", UTCDateTime),
        sa.Column("resolution", sa.String(20)),
        sa.Column("resolved_by", sa.String(120)),
        sa.Column("resolved_at", UTCDateTime),
        sa.Column("resolution_note", sa.String(500)),
        sa.Index("ix_registry_checks_establishment", "establishment_id", "checked_at"),
        sa.Index("ix_registry_checks_subject", "subject_mac", "checked_at"),
        sa.Index("ix_registry_checks_queue", "status", "resolved_at"),
    )
    sa.Table(
        "registry_appeals",
        md,
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("appeal_ref", sa.String(24), nullable=False, unique=True),
        sa.Column("check_id", sa.Integer),
        sa.Column("entry_id", sa.Integer),
        sa.Column("grounds", sa.LargeBinary, nullable=False),
        sa.Column("status", sa.String(20), nullable=False),
        sa.Column("received_by", sa.String(120), nullable=False),
        sa.Column("created_at", UTCDateTime, nullable=False),
        sa.Column("decided_by", sa.String(120)),
        sa.Column("decided_at", UTCDateTime),
        sa.Column("decision_note", sa.String(500)),
    )
    sa.Table(
        "registry_workers",
        md,
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
    sa.Table(
        "registry_notifications",
        md,
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
    md.create_all(conn)


def _m0006_retention(conn: Connection) -> None:
    """Retention (policy §3.6): case archives under per-case keys, tombstones, aggregates
    (query-side mirror in adapter/retention/_tables.py)."""
    md = sa.MetaData()
    sa.Table(
        "retention_keys",
        md,
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("role", sa.String(20), nullable=False),
        sa.Column("version", sa.Integer, nullable=False),
        sa.Column("wrapped", sa.LargeBinary, nullable=False),
        sa.Column("created_at", UTCDateTime, nullable=False),
        sa.UniqueConstraint("role", "version", name="uq_retention_keys_role_version"),
    )
    sa.Table(
        "case_archives",
        md,
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("case_ref", sa.String(64), nullable=False, unique=True),
        sa.Column("wrapped_key", sa.LargeBinary),
        sa.Column("blob", sa.LargeBinary),
        sa.Column("closed_at", UTCDateTime),
        sa.Column("archived_at", UTCDateTime),
        sa.Column("destroy_after", UTCDateTime),
        sa.Column("destroyed_at", UTCDateTime),
        sa.Index("ix_case_archives_due", "destroyed_at", "destroy_after"),
    )
    sa.Table(
        "retention_aggregates",
        md,
        sa.Column("district", sa.String(60), primary_key=True),
        sa.Column("month", sa.String(7), primary_key=True),
        sa.Column("concern", sa.String(20), primary_key=True),
        sa.Column("age_band", sa.String(10), primary_key=True),
        sa.Column("sex", sa.String(20), primary_key=True),
        sa.Column("count", sa.Integer, nullable=False),
    )
    sa.Table(
        "retention_releases",
        md,
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("released_at", UTCDateTime, nullable=False),
        sa.Column("entries", sa.Integer, nullable=False),
        sa.Column("suppressed", sa.Integer, nullable=False),
    )
    sa.Table(
        "retention_published",
        md,
        sa.Column("district", sa.String(60), primary_key=True),
        sa.Column("month", sa.String(7), primary_key=True),
        sa.Column("concern", sa.String(20), primary_key=True),
        sa.Column("age_band", sa.String(10), primary_key=True),
        sa.Column("sex", sa.String(20), primary_key=True),
        sa.Column("shown", sa.Integer),
        sa.Column("hidden_in", sa.Integer),
        sa.Column("release_id", sa.Integer, nullable=False),
    )
    md.create_all(conn)


def _m0007_incidents(conn: Connection) -> None:
    """Breach handling (policy §3.4): incidents, their notices and notifications, and how far
    the security events were scanned (query-side mirror in adapter/incidents/_tables.py)."""
    md = sa.MetaData()
    sa.Table(
        "incidents",
        md,
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("opened_at", UTCDateTime, nullable=False),
        sa.Column("deadline_at", UTCDateTime, nullable=False),
        sa.Column("kind", sa.String(50), nullable=False),
        sa.Column("department", sa.String(100)),
        sa.Column("severity", sa.String(20), nullable=False),
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
    sa.Table(
        "incident_notifications",
        md,
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("incident_id", sa.Integer, nullable=False),
        sa.Column("recipient", sa.String(200), nullable=False),
        sa.Column("channel", sa.String(20), nullable=False),
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
    sa.Table(
        "incident_cursor",
        md,
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("last_event_id", sa.Integer, nullable=False),
        sa.Column("scanned_at", UTCDateTime, nullable=False),
        sa.Column("gap_since", UTCDateTime),
    )
    md.create_all(conn)


def _m0008_service(conn: Connection) -> None:
    """`cpims-adapter run`: the instances of the service and their heartbeats."""
    md = sa.MetaData()
    sa.Table(
        "service_instances",
        md,
        sa.Column("owner", sa.String(200), primary_key=True),
        sa.Column("host", sa.String(200), nullable=False),
        sa.Column("version", sa.String(40), nullable=False),
        sa.Column("jobs", sa.JSON, nullable=False),
        sa.Column("started_at", UTCDateTime, nullable=False),
        sa.Column("last_seen", UTCDateTime, nullable=False),
        sa.Column("stopped_at", UTCDateTime),
    )
    sa.Table(
        "job_wakeups",
        md,
        sa.Column("job", sa.String(100), primary_key=True),
        sa.Column("requested_at", UTCDateTime, nullable=False),
        sa.Column("reason", sa.String(40), nullable=False),
    )
    md.create_all(conn)


def _m0009_held(conn: Connection) -> None:
    """Referrals held until a person decides (an S3 approval, an override of consent)."""
    md = sa.MetaData()
    sa.Table(
        "held_referrals",
        md,
        sa.Column("link_key", sa.String(200), primary_key=True),
        sa.Column("job", sa.String(100), nullable=False),
        sa.Column("department", sa.String(100), nullable=False),
        sa.Column("case_id", sa.String(64), nullable=False, index=True),
        sa.Column("referral_id", sa.String(64)),
        sa.Column("awaiting", sa.String(30), nullable=False),
        sa.Column("reason", sa.Text, nullable=False),
        sa.Column("held_since", UTCDateTime, nullable=False),
        sa.Column("checked_at", UTCDateTime, nullable=False),
    )
    md.create_all(conn)


def _m0010_registry_runs(conn: Connection) -> None:
    """Every check counts its establishment's attempts (quota, mismatch rate) and looks up
    its checks by CNIC run (sequential CNICs). The establishment's index now carries the
    columns those counts read, so they never visit the table; and an index by CNIC run
    reads those few rows instead of every check of the window."""
    conn.exec_driver_sql("DROP INDEX ix_registry_checks_establishment")
    conn.exec_driver_sql(
        "CREATE INDEX ix_registry_checks_establishment "
        "ON registry_checks (establishment_id, checked_at, worker_id, status, rule)"
    )
    conn.exec_driver_sql(
        "CREATE INDEX ix_registry_checks_near "
        "ON registry_checks (near_mac, establishment_id, checked_at)"
    )


def _m0011_console(conn: Connection) -> None:
    """The web console (issue 16): local accounts, server-side sessions, OIDC sign-ins in
    flight, sign-in throttling and which reviewer took which queued check (query-side mirror
    in adapter/console/_tables.py)."""
    md = sa.MetaData()
    sa.Table(
        "console_accounts",
        md,
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("username", sa.String(80), nullable=False, unique=True),
        sa.Column("display_name", sa.String(120), nullable=False),
        sa.Column("role", sa.String(30), nullable=False),
        sa.Column("establishment", sa.String(64)),
        sa.Column("password_hash", sa.String(200)),
        sa.Column("totp_sealed", sa.LargeBinary),
        sa.Column("totp_confirmed", sa.Boolean, nullable=False),
        sa.Column("totp_last_step", sa.Integer),
        sa.Column("locale", sa.String(10), nullable=False),
        sa.Column("oidc_issuer", sa.String(300)),
        sa.Column("oidc_subject", sa.String(200)),
        sa.Column("email", sa.String(254)),
        sa.Column("created_at", UTCDateTime, nullable=False),
        sa.Column("created_by", sa.String(120), nullable=False),
        sa.Column("disabled_at", UTCDateTime),
        sa.Column("last_sign_in_at", UTCDateTime),
        sa.UniqueConstraint("oidc_issuer", "oidc_subject", name="uq_console_accounts_oidc"),
        sa.UniqueConstraint("email", name="uq_console_accounts_email"),
    )
    sa.Table(
        "console_sessions",
        md,
        sa.Column("id_hash", sa.String(64), primary_key=True),
        sa.Column("account_id", sa.Integer, index=True),
        sa.Column("stage", sa.String(20), nullable=False),
        sa.Column("csrf_token", sa.String(64), nullable=False),
        sa.Column("created_at", UTCDateTime, nullable=False),
        sa.Column("last_seen_at", UTCDateTime, nullable=False, index=True),
        sa.Column("id_token_sealed", sa.LargeBinary),
    )
    sa.Table(
        "console_oidc_logins",
        md,
        sa.Column("state_hash", sa.String(80), primary_key=True),
        sa.Column("entry", sa.Text, nullable=False),
        sa.Column("expires_at", UTCDateTime, nullable=False, index=True),
    )
    sa.Table(
        "console_sign_in_failures",
        md,
        sa.Column("username", sa.String(80), primary_key=True),
        sa.Column("source", sa.String(64), primary_key=True),
        sa.Column("failures", sa.Integer, nullable=False),
        sa.Column("last_failure_at", UTCDateTime, nullable=False),
        sa.Column("locked_until", UTCDateTime),
    )
    sa.Table(
        "console_review_assignments",
        md,
        sa.Column("check_ref", sa.String(24), primary_key=True),
        sa.Column("account_id", sa.Integer, nullable=False),
        sa.Column("assigned_at", UTCDateTime, nullable=False),
    )
    md.create_all(conn)


# Append new migrations at the end; never edit or reorder released ones.
MIGRATIONS: list[Migration] = [
    Migration(1, "spine: cursors, runs, leases", _m0001_spine),
    Migration(2, "privacy: keys, codes, overrides, deletions, events, audit", _m0002_privacy),
    Migration(3, "sync: outbox and links", _m0003_sync),
    Migration(4, "inbound API: inbox", _m0004_inbox),
    Migration(5, "registry: entries, blocks, establishments, checks, appeals", _m0005_registry),
    Migration(6, "retention: archives, tombstones, aggregates", _m0006_retention),
    Migration(7, "incidents: breach incidents and notifications", _m0007_incidents),
    Migration(8, "service: instances and heartbeats", _m0008_service),
    Migration(9, "decisions: referrals held for a person's decision", _m0009_held),
    Migration(10, "registry: covering index of checks, checks by CNIC run", _m0010_registry_runs),
    Migration(
        11, "console: accounts, sessions, sign-in throttling, review assignments", _m0011_console
    ),
]
