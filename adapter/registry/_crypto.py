"""The registry's keys and sealed records (privacy.md §6.2, §6.6 item 10).

Two HMAC-SHA256 keys, each 32 random bytes:

* the **index key** ``K_reg``: ``HMAC(K_reg, "cnic|" + cnic)`` is the only form in which a CNIC
  is stored or logged (the exact stage, subject access, the audit log), and
  ``HMAC(K_reg, "near|" + first 10 digits)`` feeds sequential-enumeration detection;
* the **blocking key**: keyed hashes of phonetic codes, phonetic code × birth year (blocks) and
  dates of birth, so the fuzzy index holds no name, no DOB and no unkeyed phonetic code.

``KeyRing`` has no role for them (its table accepts only token/audit/data keys and refuses
unknown roles on load), so they live in ``registry_keys``, each wrapped with
``KeyRing.encrypt_payload`` (the KEK-protected data-at-rest key) with the role and version bound
as associated data. Old data-key versions stay readable, so a data-key rotation does not strand
them.

Names, DOBs and offences are sealed per record: a fresh AES-256-GCM data key per record
(itself wrapped by ``KeyRing.encrypt_payload``), the record's reference bound as associated data.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
from datetime import date, datetime
from typing import Any

import sqlalchemy as sa
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from sqlalchemy.engine import Connection

from adapter.errors import KeyringError
from adapter.privacy.audit import append_entry
from adapter.privacy.keys import KeyRing
from adapter.registry._tables import registry_keys

INDEX_ROLE = "registry_index"
BLOCKING_ROLE = "registry_blocking"
_KEY_BYTES = 32


def _key_context(role: str, version: int) -> bytes:
    return f"cpims-adapter registry key|{role}|{version}".encode()


class RegistryKeys:
    """The unwrapped registry keys of one store; build with :meth:`load_or_create`."""

    def __init__(self, index_key: bytes, blocking_key: bytes, version: int) -> None:
        self._index = index_key
        self._blocking = blocking_key
        self.version = version
        # Keyed phonetic codes are a pure function of a few thousand distinct codes (× birth
        # years): memoised for import speed. They are keys of the index, not answers.
        self._tokens: dict[str, str] = {}
        self._blocks: dict[tuple[str, int], str] = {}

    def __repr__(self) -> str:  # never show key material
        return f"<RegistryKeys v{self.version}>"

    @classmethod
    def load_or_create(cls, conn: Connection, keyring: KeyRing, *, now: datetime) -> RegistryKeys:
        """Unwrap the current keys, creating (and auditing) them on first use."""
        rows = {
            str(r.role): r
            for r in conn.execute(sa.select(registry_keys).order_by(registry_keys.c.version))
        }
        material: dict[str, bytes] = {}
        for role in (INDEX_ROLE, BLOCKING_ROLE):
            row = rows.get(role)
            if row is None:
                raw = os.urandom(_KEY_BYTES)
                wrapped = keyring.encrypt_payload(raw, context=_key_context(role, 1))
                conn.execute(
                    registry_keys.insert().values(
                        role=role, version=1, wrapped=wrapped, created_at=now
                    )
                )
                append_entry(
                    conn, keyring, {"event": "key_created", "role": role, "key_version": 1}, now=now
                )
                material[role] = raw
            else:
                context = _key_context(role, int(row.version))
                material[role] = keyring.decrypt_payload(bytes(row.wrapped), context=context)
        return cls(material[INDEX_ROLE], material[BLOCKING_ROLE], 1)

    # -- index key -------------------------------------------------------------------------

    def cnic_mac(self, cnic: str) -> str:
        """``HMAC(K_reg, cnic)`` in hex: the stored and logged form of a CNIC (§6.6 item 6)."""
        return hmac.digest(self._index, b"cnic|" + cnic.encode("ascii"), "sha256").hex()

    def message_mac(self, text: str) -> str:
        """Keyed hash of an inbound message that carries an identity (the inbox's request
        hash of a conviction order): a plain SHA-256 of a CNIC and names could be guessed."""
        return hmac.digest(self._index, b"message|" + text.encode("utf-8"), "sha256").hex()

    def near_mac(self, prefix10: int) -> str:
        """Keyed hash of a CNIC's first ten digits (a run of 1,000 consecutive numbers)."""
        message = f"near|{prefix10:010d}".encode("ascii")
        return hmac.digest(self._index, message, "sha256").hex()[:32]

    # -- blocking key ----------------------------------------------------------------------

    def token_key(self, code: str) -> str:
        """A phonetic code, keyed and truncated to 40 bits (collisions within one block of a
        few hundred candidates are negligible)."""
        known = self._tokens.get(code)
        if known is None:
            known = hmac.digest(self._blocking, b"tok|" + code.encode(), "sha256").hex()[:10]
            if len(self._tokens) < 500_000:
                self._tokens[code] = known
        return known

    def block_key(self, code: str, year: int) -> str:
        """The blocking key (privacy.md §2.4, §6.6 item 4c): phonetic codes × birth year."""
        known = self._blocks.get((code, year))
        if known is None:
            message = f"blk|{code}|{year:04d}".encode()
            known = hmac.digest(self._blocking, message, "sha256").hex()[:24]
            if len(self._blocks) < 500_000:
                self._blocks[(code, year)] = known
        return known

    def dob_mac(self, dob: date) -> str:
        return hmac.digest(self._blocking, b"dob|" + dob.isoformat().encode(), "sha256").hex()[:16]


def api_key_hash(api_key: str) -> str:
    """SHA-256 of an establishment's API key. Unkeyed is right here: the key is 256 random
    bits, unlike a CNIC (privacy.md §1.2 forbids unkeyed hashes of identifiers only)."""
    return hashlib.sha256(api_key.encode("utf-8")).hexdigest()


# -- sealed records ---------------------------------------------------------------------------


def seal(keyring: KeyRing, payload: dict[str, Any], context: bytes) -> tuple[bytes, bytes]:
    """``(sealed, wrapped_dek)``: ``payload`` as JSON under a fresh per-record data key."""
    dek = AESGCM.generate_key(bit_length=256)
    nonce = os.urandom(12)
    body = json.dumps(payload, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
    sealed = nonce + AESGCM(dek).encrypt(nonce, body, context)
    return sealed, keyring.encrypt_payload(dek, context=b"registry-dek|" + context)


def unseal(keyring: KeyRing, sealed: bytes, wrapped_dek: bytes, context: bytes) -> dict[str, Any]:
    """Reverse :func:`seal`. Raises KeyringError if either blob was altered or moved."""
    dek = keyring.decrypt_payload(wrapped_dek, context=b"registry-dek|" + context)
    try:
        body = AESGCM(dek).decrypt(sealed[:12], sealed[12:], context)
    except InvalidTag:
        raise KeyringError(
            "a sealed registry record failed authentication (altered or moved)."
        ) from None
    value: dict[str, Any] = json.loads(body)
    return value
