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
from dataclasses import dataclass
from datetime import datetime, timedelta

import sqlalchemy as sa

from adapter.config.console import ConsoleSettings
from adapter.console._tables import console_sessions
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

    def __init__(self, store: StateStore, settings: ConsoleSettings) -> None:
        self.store = store
        self.idle = timedelta(minutes=settings.session_idle_minutes)
        self.absolute = timedelta(hours=settings.session_absolute_hours)
        self._purged: datetime | None = None

    def start(self, stage: str, account_id: int | None, now: datetime) -> Session:
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
        """End ``old`` and start its successor under a new id (fixation defence)."""
        if old is not None:
            self.end(old.id)
        return self.start(stage, account_id, now)

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
