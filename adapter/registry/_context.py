"""What every registry module needs: the store, the keys, the settings, the notifier hook."""

from __future__ import annotations

import base64
import secrets
from collections.abc import Callable
from dataclasses import dataclass, field

from adapter.config.registry import RegistrySettings
from adapter.privacy.keys import KeyRing
from adapter.registry._crypto import RegistryKeys
from adapter.registry.models import Notification
from adapter.state import StateStore

# Crockford base32 (no I, L, O, U): references are read aloud and typed from letters.
_CROCKFORD = bytes.maketrans(
    b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567", b"0123456789ABCDEFGHJKMNPQRSTVWXYZ"
)

Notifier = Callable[[Notification], None]
"""Called after commit for each new notification row (e-mail, a queue, a webhook). The rows
are the durable record; a failing hook leaves them undelivered for a later run."""


def new_ref(prefix: str) -> str:
    """A random reference such as ``RC-7K3QX9M2ABCD1234``: 80 bits, encodes nothing."""
    body = base64.b32encode(secrets.token_bytes(10)).translate(_CROCKFORD).decode("ascii")
    return f"{prefix}-{body}"


@dataclass
class Context:
    store: StateStore
    keyring: KeyRing
    keys: RegistryKeys
    settings: RegistrySettings
    low_keys: frozenset[str]
    notifier: Notifier | None = None
    # A sealed record opened on every check without a CNIC hit, so both paths do the same
    # decryption work (privacy.md §6.6 item 5: response time held roughly constant).
    dummy: tuple[bytes, bytes, bytes] = field(default=(b"", b"", b""))
