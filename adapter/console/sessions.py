"""Server-side console sessions: the cookie holds a random id, the store its SHA-256, the
session's stage and its CSRF token (a synchroniser token, OWASP CSRF cheat sheet).

Every change of privilege (password accepted, second factor accepted, signed out) replaces the
session id, so an id planted before sign-in is worthless afterwards (session fixation). A
session ends after ``session_idle_minutes`` without a request and ``session_absolute_hours``
after it began.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

import sqlalchemy as sa

from adapter.config.console import ConsoleSettings
from adapter.console._tables import console_oidc_logins, console_sessions
from adapter.privacy.keys import KeyRing
from adapter.state import StateStore

ANONYMOUS = "anonymous"
TOTP = "totp"
SIGNED_IN = "signed_in"
_PURGE_EVERY = timedelta(minutes=1)


@dataclass(frozen=True)
class Session:
    """One live session: its id (from the cookie), stage, account and CSRF token."""

    id: str
    stage: str
    account_id: int | None
    csrf_token: str
    created_at: datetime

    def csrf_ok(self, token: str | None) -> bool:
        return token is not None and hmac.compare_digest(token, self.csrf_token)


def _hash(session_id: str) -> str:
    return hashlib.sha256(session_id.encode()).hexdigest()


class Sessions:
    """The sessions table in ``store`` under ``settings``' timeouts."""

    def __init__(
        self, store: StateStore, settings: ConsoleSettings, keyring: KeyRing | None = None
    ) -> None:
        self.store = store
        self.keyring = keyring
        self.idle = timedelta(minutes=settings.session_idle_minutes)
        self.absolute = timedelta(hours=settings.session_absolute_hours)
        self._purged: datetime | None = None

    def start(
        self,
        stage: str,
        account_id: int | None,
        now: datetime,
        *,
        id_token_sealed: bytes | None = None,
    ) -> Session:
        """A new session with a fresh random id and CSRF token. Every visitor without a
        cookie starts one (for the sign-in form's CSRF token), so sessions past a timeout are
        purged here too, at most once a minute per process."""
        if self._purged is None or now - self._purged > _PURGE_EVERY:
            self._purged = now
            self.purge(now)
        session = Session(
            id=secrets.token_urlsafe(32),
            stage=stage,
            account_id=account_id,
            csrf_token=secrets.token_urlsafe(32),
            created_at=now,
        )
        with self.store.transaction() as conn:
            conn.execute(
                console_sessions.insert().values(
                    id_hash=_hash(session.id),
                    account_id=account_id,
                    stage=stage,
                    csrf_token=session.csrf_token,
                    created_at=now,
                    last_seen_at=now,
                    id_token_sealed=id_token_sealed,
                )
            )
        return session

    def load(self, session_id: str | None, now: datetime) -> Session | None:
        """The live session with this id (its idle clock restarted), or None."""
        if not session_id or len(session_id) > 100:
            return None
        key = _hash(session_id)
        with self.store.transaction() as conn:
            row = conn.execute(
                sa.select(console_sessions).where(console_sessions.c.id_hash == key)
            ).first()
            if row is None:
                return None
            if now - row.last_seen_at > self.idle or now - row.created_at > self.absolute:
                conn.execute(console_sessions.delete().where(console_sessions.c.id_hash == key))
                return None
            conn.execute(
                console_sessions.update()
                .where(console_sessions.c.id_hash == key)
                .values(last_seen_at=now)
            )
        return Session(session_id, row.stage, row.account_id, row.csrf_token, row.created_at)

    def rotate(
        self, old: Session | None, stage: str, account_id: int | None, now: datetime
    ) -> Session:
        """End ``old`` and start its successor under a new id (fixation defence). The OIDC ID
        token kept for sign-out goes with the account to the successor (never to another
        account, nor to an anonymous session)."""
        sealed = None
        if old is not None:
            if account_id is not None and old.account_id == account_id:
                sealed = self._sealed_id_token(old.id)
            self.end(old.id)
        return self.start(stage, account_id, now, id_token_sealed=sealed)

    # -- the OIDC ID token, for RP-initiated logout's id_token_hint ---------------------------

    def keep_id_token(self, session: Session, id_token: str) -> None:
        """Keep ``id_token`` (sealed: it names the person) with the signed-in ``session``."""
        assert self.keyring is not None and session.account_id is not None
        sealed = self.keyring.encrypt_payload(
            id_token.encode(), context=_token_context(session.account_id)
        )
        with self.store.transaction() as conn:
            conn.execute(
                console_sessions.update()
                .where(console_sessions.c.id_hash == _hash(session.id))
                .values(id_token_sealed=sealed)
            )

    def id_token(self, session: Session) -> str | None:
        """The ID token kept with ``session`` (an OIDC sign-in), or None."""
        sealed = self._sealed_id_token(session.id)
        if sealed is None or self.keyring is None or session.account_id is None:
            return None
        context = _token_context(session.account_id)
        return self.keyring.decrypt_payload(sealed, context=context).decode()

    def has_id_token(self, session: Session) -> bool:
        """Whether ``session`` began with an OIDC sign-in."""
        return self._sealed_id_token(session.id) is not None

    def _sealed_id_token(self, session_id: str) -> bytes | None:
        with self.store.transaction() as conn:
            sealed = conn.execute(
                sa.select(console_sessions.c.id_token_sealed).where(
                    console_sessions.c.id_hash == _hash(session_id)
                )
            ).scalar()
        return bytes(sealed) if sealed is not None else None

    def end(self, session_id: str) -> None:
        with self.store.transaction() as conn:
            conn.execute(
                console_sessions.delete().where(console_sessions.c.id_hash == _hash(session_id))
            )

    def end_all_of(self, account_id: int) -> None:
        """Sign an account out everywhere (it was disabled)."""
        with self.store.transaction() as conn:
            conn.execute(
                console_sessions.delete().where(console_sessions.c.account_id == account_id)
            )

    def purge(self, now: datetime) -> int:
        """Delete sessions past either timeout; how many."""
        with self.store.transaction() as conn:
            result = conn.execute(
                console_sessions.delete().where(
                    sa.or_(
                        console_sessions.c.last_seen_at < now - self.idle,
                        console_sessions.c.created_at < now - self.absolute,
                    )
                )
            )
        return int(result.rowcount or 0)


def _token_context(account_id: int) -> bytes:
    return b"console-id-token|" + str(account_id).encode()


class OidcLogins:
    """The OIDC sign-ins in flight (``adapter.console.oidc.LoginStore``) in the store, so
    every API worker process finishes a sign-in another one began."""

    def __init__(self, store: StateStore, now: Callable[[], datetime]) -> None:
        self.store = store
        self.now = now

    def put(self, key: str, value: str, ttl: int) -> None:
        now = self.now()
        with self.store.transaction() as conn:
            # Sign-ins never finished are dropped as new ones begin.
            conn.execute(console_oidc_logins.delete().where(console_oidc_logins.c.expires_at < now))
            conn.execute(
                console_oidc_logins.insert().values(
                    state_hash=key, entry=value, expires_at=now + timedelta(seconds=ttl)
                )
            )

    def pop(self, key: str) -> str | None:
        """The entry, deleted as it is read, in one statement (DELETE … RETURNING): of two
        callbacks with one state (a replay, a double click) only the one whose DELETE removed
        the row gets it, on SQLite and PostgreSQL alike."""
        table = console_oidc_logins
        with self.store.transaction() as conn:
            row = conn.execute(
                table.delete()
                .where(table.c.state_hash == key)
                .returning(table.c.entry, table.c.expires_at)
            ).first()
        if row is None or row.expires_at < self.now():
            return None
        return str(row.entry)
