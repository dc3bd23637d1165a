"""Registered establishments: who may ask (privacy.md §6.6 item 1).

Each has a registration number, two named officers (told when a monitored worker becomes
DO_NOT_ENGAGE), per-day and per-month quotas, and an API key shown once at registration and
stored only as its SHA-256. Deployments add mTLS at the reverse proxy (§6.6 item 1); the key
names the establishment either way.
"""

from __future__ import annotations

import re
import secrets
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from adapter.privacy.events import record_security_event
from adapter.registry import _audit
from adapter.registry._context import Context
from adapter.registry._crypto import api_key_hash
from adapter.registry._tables import inserted_id, registry_establishments
from adapter.registry.errors import (
    AuthenticationFailed,
    EstablishmentLocked,
    RequestRejected,
    UnknownReference,
)
from adapter.registry.models import Establishment, RegistryEventKind

API_KEY_PREFIX = "cpr1_"
_REG_NO = re.compile(r"^[A-Za-z0-9][A-Za-z0-9/._-]{1,59}$")
_EMAIL = re.compile(r"^[^@\s]{1,64}@[A-Za-z0-9.-]{1,190}\.[A-Za-z]{2,}$")


def _as_establishment(row: Any) -> Establishment:
    return Establishment(
        id=int(row.id),
        registration_number=row.registration_number,
        name=row.name,
        officers=((row.officer1_name, row.officer1_email), (row.officer2_name, row.officer2_email)),
        daily_quota=int(row.daily_quota),
        monthly_quota=int(row.monthly_quota),
        status=row.status,
        status_reason=row.status_reason,
    )


def add_establishment(
    ctx: Context,
    registration_number: str,
    name: str,
    officers: tuple[tuple[str, str], tuple[str, str]],
    *,
    registered_by: str,
    now: datetime,
    daily_quota: int | None = None,
    monthly_quota: int | None = None,
) -> tuple[Establishment, str]:
    """Register an establishment; returns it and its API key (shown once, never stored)."""
    if not _REG_NO.match(registration_number):
        raise RequestRejected(
            "registration number: 2-60 letters, digits and / . _ -", reason="invalid_request"
        )
    (n1, e1), (n2, e2) = officers
    if not (n1.strip() and n2.strip()) or n1.strip().casefold() == n2.strip().casefold():
        raise RequestRejected(
            "two different named officers are required.", reason="invalid_request"
        )
    if not (_EMAIL.match(e1) and _EMAIL.match(e2)):
        raise RequestRejected(
            "each officer needs a valid e-mail address.", reason="invalid_request"
        )
    api_key = API_KEY_PREFIX + secrets.token_urlsafe(32)
    values = {
        "registration_number": registration_number,
        "name": name.strip()[:200],
        "officer1_name": n1.strip()[:120],
        "officer1_email": e1,
        "officer2_name": n2.strip()[:120],
        "officer2_email": e2,
        "api_key_sha256": api_key_hash(api_key),
        "daily_quota": daily_quota or ctx.settings.daily_quota,
        "monthly_quota": monthly_quota or ctx.settings.monthly_quota,
        "status": "active",
        "created_at": now,
        "updated_at": now,
    }
    with ctx.store.transaction() as conn:
        exists = conn.execute(
            sa.select(registry_establishments.c.id).where(
                registry_establishments.c.registration_number == registration_number
            )
        ).first()
        if exists:
            raise RequestRejected(
                "an establishment with this registration number exists.", reason="duplicate"
            )
        new_id = inserted_id(conn.execute(registry_establishments.insert().values(**values)))
        _audit.record(
            conn,
            ctx.keyring,
            "registry_establishment_added",
            now=now,
            establishment=registration_number,
            officer=registered_by,
            daily=str(values["daily_quota"]),
            monthly=str(values["monthly_quota"]),
        )
        row = conn.execute(
            sa.select(registry_establishments).where(registry_establishments.c.id == new_id)
        ).one()
    return _as_establishment(row), api_key


def list_establishments(ctx: Context) -> list[Establishment]:
    with ctx.store.transaction() as conn:
        rows = conn.execute(
            sa.select(registry_establishments).order_by(
                registry_establishments.c.registration_number
            )
        )
        return [_as_establishment(r) for r in rows]


def get_establishment(ctx: Context, registration_number: str) -> Establishment:
    with ctx.store.transaction() as conn:
        row = conn.execute(
            sa.select(registry_establishments).where(
                registry_establishments.c.registration_number == registration_number
            )
        ).first()
    if row is None:
        raise UnknownReference("no establishment has that registration number.")
    return _as_establishment(row)


_BY_KEY = sa.select(registry_establishments).where(
    registry_establishments.c.api_key_sha256 == sa.bindparam("digest")
)


def authenticate(ctx: Context, api_key: str, *, now: datetime) -> Establishment:
    """The establishment holding ``api_key``; AuthenticationFailed (and a security event) if
    none does, EstablishmentLocked if it is locked."""
    digest = api_key_hash(api_key[:200])
    # Every request authenticates: a read, beside the other checks; a write only when the
    # key is unknown.
    with ctx.store.read() as conn:
        row = conn.execute(_BY_KEY, {"digest": digest}).first()
    if row is None:
        with ctx.writing() as conn:
            record_security_event(
                conn,
                RegistryEventKind.BAD_API_KEY,
                department=None,
                detail="a registry request presented an unknown API key",
                now=now,
            )
    if row is None:
        raise AuthenticationFailed("unknown API key.")
    establishment = _as_establishment(row)
    if establishment.status != "active":
        raise EstablishmentLocked(
            "this establishment is locked after an anomaly; ask the registry office to review "
            "and unlock it."
        )
    return establishment


def lock(conn: Connection, establishment_id: int, reason: str, *, now: datetime) -> None:
    """Lock out an establishment in the caller's transaction (§6.6 item 7)."""
    conn.execute(
        registry_establishments.update()
        .where(registry_establishments.c.id == establishment_id)
        .values(status="locked", status_reason=reason[:200], updated_at=now)
    )


def unlock(
    ctx: Context, registration_number: str, officer: str, reason: str, *, now: datetime
) -> None:
    """A registry officer lifts a lock after looking into it."""
    with ctx.store.transaction() as conn:
        done = conn.execute(
            registry_establishments.update()
            .where(registry_establishments.c.registration_number == registration_number)
            .values(status="active", status_reason=None, updated_at=now)
        )
        if done.rowcount != 1:
            raise UnknownReference("no establishment has that registration number.")
        _audit.record(
            conn,
            ctx.keyring,
            "registry_establishment_unlocked",
            now=now,
            establishment=registration_number,
            officer=officer,
            reason=reason,
        )


def rotate_api_key(ctx: Context, registration_number: str, officer: str, *, now: datetime) -> str:
    """Issue a new API key (the old one stops working at once); returns it, shown once."""
    api_key = API_KEY_PREFIX + secrets.token_urlsafe(32)
    with ctx.store.transaction() as conn:
        done = conn.execute(
            registry_establishments.update()
            .where(registry_establishments.c.registration_number == registration_number)
            .values(api_key_sha256=api_key_hash(api_key), updated_at=now)
        )
        if done.rowcount != 1:
            raise UnknownReference("no establishment has that registration number.")
        _audit.record(
            conn,
            ctx.keyring,
            "registry_api_key_rotated",
            now=now,
            establishment=registration_number,
            officer=officer,
        )
    return api_key
