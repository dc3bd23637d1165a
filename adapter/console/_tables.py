"""Query-side shapes of the console tables.

The DDL that creates them is migration 11 in ``adapter/state/migrations.py``; these objects must
mirror it column for column (``tests/console/test_tables.py`` checks that against a migrated
database).
"""

from __future__ import annotations

import sqlalchemy as sa

from adapter.state.types import UTCDateTime

metadata = sa.MetaData()

# One person who signs in to the console. ``password_hash`` is argon2id (None for an account
# that signs in only through OIDC); ``totp_sealed`` is the TOTP secret encrypted under the key
# ring's data key, never stored in the clear. ``establishment`` is the registration number an
# establishment officer is scoped to (None for every other role).
console_accounts = sa.Table(
    "console_accounts",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("username", sa.String(80), nullable=False, unique=True),
    sa.Column("display_name", sa.String(120), nullable=False),
    sa.Column("role", sa.String(30), nullable=False),
    sa.Column("establishment", sa.String(64)),
    sa.Column("password_hash", sa.String(200)),
    sa.Column("totp_sealed", sa.LargeBinary),
    sa.Column("totp_confirmed", sa.Boolean, nullable=False),
    # The time step of the last code accepted: a code is good once (RFC 6238 §5.2).
    sa.Column("totp_last_step", sa.Integer),
    sa.Column("locale", sa.String(10), nullable=False),
    sa.Column("oidc_issuer", sa.String(300)),
    sa.Column("oidc_subject", sa.String(200)),
    # The account's work e-mail (lower case): an OIDC sign-in with this verified e-mail finds
    # the account once and links it to the provider's (issuer, subject).
    sa.Column("email", sa.String(254)),
    sa.Column("created_at", UTCDateTime, nullable=False),
    sa.Column("created_by", sa.String(120), nullable=False),
    sa.Column("disabled_at", UTCDateTime),
    sa.Column("last_sign_in_at", UTCDateTime),
    sa.UniqueConstraint("oidc_issuer", "oidc_subject", name="uq_console_accounts_oidc"),
    sa.UniqueConstraint("email", name="uq_console_accounts_email"),
)

# A server-side session: the cookie holds a random id, the table only its SHA-256, so a copy of
# the database opens no session. ``stage`` is anonymous (a visitor holding a CSRF token for the
# sign-in form), totp (password accepted, second factor outstanding) or signed_in.
console_sessions = sa.Table(
    "console_sessions",
    metadata,
    sa.Column("id_hash", sa.String(64), primary_key=True),
    sa.Column("account_id", sa.Integer, index=True),
    sa.Column("stage", sa.String(20), nullable=False),
    sa.Column("csrf_token", sa.String(64), nullable=False),
    sa.Column("created_at", UTCDateTime, nullable=False),
    sa.Column("last_seen_at", UTCDateTime, nullable=False, index=True),
    # An OIDC session's ID token (sealed: it names the person), sent back to the provider as
    # id_token_hint when the person signs out (RP-Initiated Logout 1.0).
    sa.Column("id_token_sealed", sa.LargeBinary),
)

# OIDC sign-ins in flight (adapter/console/oidc.py LoginStore): the SHA-256 of the state →
# nonce, PKCE verifier, browser binding digest and return path. Taken once (deleted as read).
console_oidc_logins = sa.Table(
    "console_oidc_logins",
    metadata,
    sa.Column("state_hash", sa.String(80), primary_key=True),
    sa.Column("entry", sa.Text, nullable=False),
    sa.Column("expires_at", UTCDateTime, nullable=False, index=True),
)

# Failed sign-ins per (username as typed, source address): the throttle is per pair, so a
# stranger's failures never lock the account's owner out from their own address.
console_sign_in_failures = sa.Table(
    "console_sign_in_failures",
    metadata,
    sa.Column("username", sa.String(80), primary_key=True),
    sa.Column("source", sa.String(64), primary_key=True),
    sa.Column("failures", sa.Integer, nullable=False),
    sa.Column("last_failure_at", UTCDateTime, nullable=False),
    sa.Column("locked_until", UTCDateTime),
)

# Which reviewer took a PENDING_REVIEW check: only they may open its sealed identity and decide
# it (the registry keeps the check; the console keeps who works on it).
console_review_assignments = sa.Table(
    "console_review_assignments",
    metadata,
    sa.Column("check_ref", sa.String(24), primary_key=True),
    sa.Column("account_id", sa.Integer, nullable=False),
    sa.Column("assigned_at", UTCDateTime, nullable=False),
)
