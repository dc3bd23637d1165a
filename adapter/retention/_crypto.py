"""The retention key (case references) and the per-case archive seal (privacy.md §6.7).

* ``case_ref = HMAC-SHA256(K_ret, "case|" + case id)``: the only form in which a closed case's
  id is kept once its archive is destroyed. ``K_ret`` is 32 random bytes in
  ``retention_keys``, wrapped with ``KeyRing.encrypt_payload`` (the KEK-protected data key),
  the same arrangement as the registry's keys: ``KeyRing``'s own table only knows its roles.
* An archive is JSON under a fresh AES-256-GCM key of its own; that key is wrapped with
  ``KeyRing.encrypt_payload``, context-bound to the ``case_ref``. Erasing the wrapped key (and
  the blob) is the crypto-shred: no key anywhere opens the blob afterwards.
"""

from __future__ import annotations

import hmac
import json
import os
import secrets
from datetime import datetime
from typing import Any, Protocol

import sqlalchemy as sa
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from sqlalchemy.engine import Connection

from adapter.errors import KeyringError
from adapter.retention._tables import retention_keys
from adapter.retention.errors import RetentionError

CASE_REF_ROLE = "case_ref"
_KEY_VERSION = 1


class DataKeys(Protocol):
    """What retention needs from the key ring: data-at-rest encryption with a context."""

    def encrypt_payload(self, plaintext: bytes, *, context: bytes = b"") -> bytes: ...

    def decrypt_payload(self, blob: bytes, *, context: bytes = b"") -> bytes: ...


def _key_context(role: str, version: int) -> bytes:
    return f"cpims-adapter retention key|{role}|{version}".encode()


def case_ref_key(
    conn: Connection, keyring: DataKeys, *, create: bool, now: datetime
) -> bytes | None:
    """The retention HMAC key; created on first use when ``create`` (else None if absent:
    then no case has ever been archived, so no case can be destroyed either)."""
    row = conn.execute(
        sa.select(retention_keys.c.wrapped).where(
            retention_keys.c.role == CASE_REF_ROLE, retention_keys.c.version == _KEY_VERSION
        )
    ).first()
    context = _key_context(CASE_REF_ROLE, _KEY_VERSION)
    if row is not None:
        return keyring.decrypt_payload(bytes(row.wrapped), context=context)
    if not create:
        return None
    material = secrets.token_bytes(32)
    conn.execute(
        retention_keys.insert().values(
            role=CASE_REF_ROLE,
            version=_KEY_VERSION,
            wrapped=keyring.encrypt_payload(material, context=context),
            created_at=now,
        )
    )
    return material


def case_ref(key: bytes, case_id: str) -> str:
    """The keyed reference of a Primero case id (64 hex characters)."""
    return hmac.digest(key, b"case|" + case_id.encode("utf-8"), "sha256").hex()


def seal_archive(keyring: DataKeys, ref: str, content: dict[str, Any]) -> tuple[bytes, bytes]:
    """``(blob, wrapped_key)``: ``content`` as JSON under a fresh per-case AES-256-GCM key."""
    key = AESGCM.generate_key(bit_length=256)
    nonce = os.urandom(12)
    body = json.dumps(content, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
    blob = nonce + AESGCM(key).encrypt(nonce, body, _blob_context(ref))
    return blob, keyring.encrypt_payload(key, context=_wrap_context(ref))


def open_archive(keyring: DataKeys, ref: str, blob: bytes, wrapped_key: bytes) -> dict[str, Any]:
    """Reverse :func:`seal_archive`. Raises RetentionError if either value was altered, moved
    to another case, or the data key that wrapped it is gone."""
    try:
        key = keyring.decrypt_payload(wrapped_key, context=_wrap_context(ref))
        body = AESGCM(key).decrypt(blob[:12], blob[12:], _blob_context(ref))
    except InvalidTag:
        raise RetentionError(
            "a case archive failed authentication (altered, or moved to another case_ref)."
        ) from None
    except (KeyringError, ValueError) as exc:
        raise RetentionError(
            f"a case archive cannot be opened ({type(exc).__name__}): its key is not held."
        ) from None
    value: dict[str, Any] = json.loads(body)
    return value


def _wrap_context(ref: str) -> bytes:
    return b"retention-case-key|" + ref.encode()


def _blob_context(ref: str) -> bytes:
    return b"retention-archive|" + ref.encode()
