"""Local console accounts: roles, argon2id passwords, TOTP secrets, and the sign-in throttle.

A password is stored only as an argon2id hash (argon2-cffi's defaults, RFC 9106's second
recommended profile). The TOTP secret is sealed under the key ring's data key. An unknown
username costs the same hash verification as a known one, so the answer time does not tell
which usernames exist.
"""

from __future__ import annotations

import functools
import hmac
import re
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

import pyotp
import sqlalchemy as sa
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

from adapter.clock import utcnow
from adapter.config.console import ConsoleSettings
from adapter.console._tables import console_accounts, console_sign_in_failures
from adapter.errors import ConfigError
from adapter.privacy.keys import KeyRing
from adapter.state import StateStore

USERNAME = re.compile(r"^[a-z0-9][a-z0-9._-]{2,79}$")
MIN_PASSWORD = 12
LOCALES = ("en", "ur")
_HASHER = PasswordHasher()


@functools.cache
def _dummy_hash() -> str:
    """Verified when the username is unknown, so a miss costs what a hit costs. Made on first
    use, not at import: an argon2id hash takes 64 MiB and ~0.1 s, which every command loading
    the CLI would otherwise pay."""
    return _HASHER.hash("not a password anyone has: timing equaliser")


class Role(StrEnum):
    """What a person may do in the console."""

    establishment_officer = "establishment_officer"
    reviewer = "reviewer"
    dpo = "dpo"
    operator = "operator"


# Roles that see identities, incidents or the service's controls sign in with a second factor.
TOTP_ROLES = frozenset({Role.reviewer, Role.dpo, Role.operator})


class AccountError(ConfigError):
    """An account cannot be created or changed as asked (the message names the field)."""


@dataclass(frozen=True)
class Account:
    """A console account as the pages see it (never its hash or TOTP secret)."""

    id: int
    username: str
    display_name: str
    role: Role
    establishment: str | None
    locale: str
    totp_confirmed: bool
    disabled: bool
    created_at: datetime
    last_sign_in_at: datetime | None
    email: str | None = None

    @property
    def needs_totp(self) -> bool:
        return self.role in TOTP_ROLES


EMAIL = re.compile(r"^[^@\s]{1,64}@[^@\s]{1,189}\.[^@\s]{1,63}$")


def _account(row: Any) -> Account:
    return Account(
        id=row.id,
        username=row.username,
        display_name=row.display_name,
        role=Role(row.role),
        establishment=row.establishment,
        locale=row.locale,
        totp_confirmed=bool(row.totp_confirmed),
        disabled=row.disabled_at is not None,
        created_at=row.created_at,
        last_sign_in_at=row.last_sign_in_at,
        email=row.email,
    )


def check_password_strength(password: str) -> None:
    """Refuse a password too short to resist guessing (NIST SP 800-63B §5.1.1: length, not
    composition rules)."""
    if len(password) < MIN_PASSWORD:
        raise AccountError(f"password: use at least {MIN_PASSWORD} characters.")
    if len(password) > 1024:
        raise AccountError("password: use at most 1024 characters.")


class Accounts:
    """The console's accounts in ``store``; TOTP secrets sealed by ``keyring``."""

    def __init__(self, store: StateStore, keyring: KeyRing) -> None:
        self.store = store
        self.keyring = keyring

    def add(
        self,
        username: str,
        *,
        display_name: str,
        role: Role,
        password: str | None,
        created_by: str,
        establishment: str | None = None,
        locale: str = "en",
        oidc_issuer: str | None = None,
        oidc_subject: str | None = None,
        email: str | None = None,
        now: datetime | None = None,
    ) -> Account:
        """Create an account. An establishment officer names exactly one establishment; the
        other roles none. ``password`` may be None only for an account that signs in through
        OIDC: mapped to the provider's (issuer, subject), or found by its ``email``."""
        username = username.strip().lower()
        if not USERNAME.match(username):
            raise AccountError(
                "username: use 3-80 lower-case letters, digits, '.', '_' or '-', starting with "
                "a letter or digit."
            )
        if not 1 <= len(display_name.strip()) <= 120:
            raise AccountError("display name: give 1-120 characters.")
        if (role is Role.establishment_officer) != bool(establishment):
            raise AccountError(
                "establishment: give the registration number for an establishment officer "
                "(--establishment), and none for any other role."
            )
        if locale not in LOCALES:
            raise AccountError(f"locale: one of {', '.join(LOCALES)}.")
        if password is None and not ((oidc_issuer and oidc_subject) or email):
            raise AccountError(
                "password: give one, or map the account to an OIDC identity or an e-mail "
                "(a sign-in with the provider's verified address finds it)."
            )
        if password is not None:
            check_password_strength(password)
        email = email.strip().lower() if email else None
        if email is not None and not EMAIL.match(email):
            raise AccountError("email: give the person's work address, e.g. name@example.gov.pk.")
        with self.store.transaction() as conn:
            taken = conn.execute(
                sa.select(console_accounts.c.id).where(console_accounts.c.username == username)
            ).first()
            if taken:
                raise AccountError(f"username: '{username}' is taken; choose another.")
            if (
                email is not None
                and conn.execute(
                    sa.select(console_accounts.c.id).where(console_accounts.c.email == email)
                ).first()
            ):
                raise AccountError("email: another account has this address; give another.")
            conn.execute(
                console_accounts.insert().values(
                    username=username,
                    display_name=display_name.strip(),
                    role=str(role),
                    establishment=establishment,
                    password_hash=_HASHER.hash(password) if password is not None else None,
                    totp_confirmed=False,
                    locale=locale,
                    oidc_issuer=oidc_issuer,
                    oidc_subject=oidc_subject,
                    email=email,
                    created_at=now or utcnow(),
                    created_by=created_by[:120],
                )
            )
        return self.by_username(username)  # type: ignore[return-value]

    def list(self) -> list[Account]:
        with self.store.transaction() as conn:
            rows = conn.execute(sa.select(console_accounts).order_by(console_accounts.c.username))
            return [_account(row) for row in rows]

    def get(self, account_id: int) -> Account | None:
        with self.store.transaction() as conn:
            row = conn.execute(
                sa.select(console_accounts).where(console_accounts.c.id == account_id)
            ).first()
        return _account(row) if row else None

    def by_username(self, username: str) -> Account | None:
        with self.store.transaction() as conn:
            row = conn.execute(
                sa.select(console_accounts).where(
                    console_accounts.c.username == username.strip().lower()
                )
            ).first()
        return _account(row) if row else None

    def by_identity(self, issuer: str, subject: str) -> Account | None:
        """The account mapped to an OIDC identity (issuer and subject, never the e-mail:
        an e-mail address can be reassigned, a subject cannot)."""
        with self.store.transaction() as conn:
            row = conn.execute(
                sa.select(console_accounts).where(
                    console_accounts.c.oidc_issuer == issuer,
                    console_accounts.c.oidc_subject == subject,
                )
            ).first()
        return _account(row) if row else None

    def by_email(self, email: str) -> Account | None:
        """The account with this e-mail that is not yet linked to an OIDC identity (one linked
        already is found by its issuer and subject only: an address can be reassigned)."""
        with self.store.transaction() as conn:
            row = conn.execute(
                sa.select(console_accounts).where(
                    console_accounts.c.email == email.strip().lower(),
                    console_accounts.c.oidc_subject.is_(None),
                )
            ).first()
        return _account(row) if row else None

    def link(self, account: Account, issuer: str, subject: str) -> None:
        """Record the provider's (issuer, subject) on ``account``: later sign-ins find it by
        them. Only an account not linked yet is linked."""
        with self.store.transaction() as conn:
            conn.execute(
                console_accounts.update()
                .where(
                    console_accounts.c.id == account.id,
                    console_accounts.c.oidc_subject.is_(None),
                )
                .values(oidc_issuer=issuer, oidc_subject=subject)
            )

    def disable(self, username: str, *, now: datetime | None = None) -> Account:
        account = self.by_username(username)
        if account is None:
            raise AccountError(f"username: no account '{username}'; see `console list-users`.")
        with self.store.transaction() as conn:
            conn.execute(
                console_accounts.update()
                .where(console_accounts.c.id == account.id)
                .values(disabled_at=now or utcnow())
            )
        return self.get(account.id)  # type: ignore[return-value]

    def set_locale(self, account_id: int, locale: str) -> None:
        if locale not in LOCALES:
            return
        with self.store.transaction() as conn:
            conn.execute(
                console_accounts.update()
                .where(console_accounts.c.id == account_id)
                .values(locale=locale)
            )

    def mark_signed_in(self, account_id: int, now: datetime) -> None:
        with self.store.transaction() as conn:
            conn.execute(
                console_accounts.update()
                .where(console_accounts.c.id == account_id)
                .values(last_sign_in_at=now)
            )

    def verify_password(self, username: str, password: str) -> Account | None:
        """The active account whose password this is, else None (same work either way)."""
        with self.store.transaction() as conn:
            row = conn.execute(
                sa.select(console_accounts).where(
                    console_accounts.c.username == username.strip().lower()[:80]
                )
            ).first()
        stored = row.password_hash if row is not None and row.password_hash else _dummy_hash()
        ok: bool
        try:
            ok = _HASHER.verify(stored, password[:1024])
        except (VerifyMismatchError, VerificationError, InvalidHashError):
            ok = False
        if not ok or row is None or not row.password_hash or row.disabled_at is not None:
            return None
        return _account(row)

    # -- TOTP ---------------------------------------------------------------------------------

    def totp_secret(self, account: Account) -> str:
        """The account's TOTP secret, created (sealed) on first use: shown once, at enrolment."""
        context = b"console-totp|" + str(account.id).encode()
        with self.store.transaction() as conn:
            row = conn.execute(
                sa.select(console_accounts.c.totp_sealed).where(console_accounts.c.id == account.id)
            ).one()
            if row.totp_sealed is not None:
                return self.keyring.decrypt_payload(row.totp_sealed, context=context).decode()
            secret = pyotp.random_base32()
            conn.execute(
                console_accounts.update()
                .where(console_accounts.c.id == account.id)
                .values(totp_sealed=self.keyring.encrypt_payload(secret.encode(), context=context))
            )
        return secret

    def verify_totp(self, account: Account, code: str, *, now: datetime | None = None) -> bool:
        """Whether ``code`` is the account's TOTP code for now (one step of clock drift either
        way) and newer than the last code accepted: a code is good once, so one seen over a
        shoulder or in a proxy log cannot be replayed (RFC 6238 §5.2). The first good code
        confirms an enrolment."""
        code = code.strip().replace(" ", "")
        if not (code.isdigit() and len(code) == 6):
            return False
        totp = pyotp.TOTP(self.totp_secret(account))
        current = totp.timecode(now or utcnow())
        step = next(
            (
                s
                for s in (current - 1, current, current + 1)
                if hmac.compare_digest(totp.generate_otp(s), code)
            ),
            None,
        )
        if step is None:
            return False
        table = console_accounts
        with self.store.transaction() as conn:
            # Compare-and-set: two requests racing with the same code cannot both pass.
            done = conn.execute(
                table.update()
                .where(
                    table.c.id == account.id,
                    sa.or_(table.c.totp_last_step.is_(None), table.c.totp_last_step < step),
                )
                .values(totp_last_step=step, totp_confirmed=True)
            )
        return bool(done.rowcount)

    def provisioning_uri(self, account: Account, secret: str) -> str:
        return pyotp.TOTP(secret).provisioning_uri(
            name=account.username, issuer_name="cpims-adapter console"
        )


class Throttle:
    """Failed sign-ins per (username, source address): after ``lockout_after`` failures the
    pair waits, doubling per further failure up to ``lockout_max_seconds``. Only that pair
    waits, and never for long: the throttle slows guessing without handing anyone a way to
    lock a colleague out."""

    def __init__(self, store: StateStore, settings: ConsoleSettings) -> None:
        self.store = store
        self.settings = settings

    def locked_until(self, username: str, source: str, now: datetime) -> datetime | None:
        with self.store.transaction() as conn:
            row = conn.execute(
                sa.select(console_sign_in_failures.c.locked_until).where(
                    console_sign_in_failures.c.username == username.strip().lower()[:80],
                    console_sign_in_failures.c.source == source[:64],
                )
            ).first()
        if row is None or row.locked_until is None or row.locked_until <= now:
            return None
        return row.locked_until  # type: ignore[no-any-return]

    def failed(self, username: str, source: str, now: datetime) -> int:
        """Count one failure; the pair's failures so far."""
        key = (username.strip().lower()[:80], source[:64])
        table = console_sign_in_failures
        where = sa.and_(table.c.username == key[0], table.c.source == key[1])
        with self.store.transaction() as conn:
            row = conn.execute(sa.select(table).where(where)).first()
            failures = (row.failures if row else 0) + 1
            over = failures - self.settings.lockout_after
            locked = None
            if over >= 0:
                wait = min(
                    self.settings.lockout_base_seconds * 2 ** min(over, 20),
                    self.settings.lockout_max_seconds,
                )
                locked = now + timedelta(seconds=wait)
            values = {"failures": failures, "last_failure_at": now, "locked_until": locked}
            if row is None:
                conn.execute(table.insert().values(username=key[0], source=key[1], **values))
            else:
                conn.execute(table.update().where(where).values(**values))
        return failures

    def succeeded(self, username: str, source: str) -> None:
        table = console_sign_in_failures
        with self.store.transaction() as conn:
            conn.execute(
                table.delete().where(
                    table.c.username == username.strip().lower()[:80],
                    table.c.source == source[:64],
                )
            )
