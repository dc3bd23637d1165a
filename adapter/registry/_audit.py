"""Registry events in the hash-chained audit log (privacy.md §6.6 item 6).

``adapter.privacy.audit`` accepts a fixed set of entry keys (names and decisions, never values).
Until it grows registry-specific ones, registry events use them like this, and this module is
the only place to change when it does:

=================  =================================================================
entry key          registry meaning
=================  =================================================================
``event``          ``registry_check``, ``registry_review_resolved``, ``registry_entry_removed`` …
``case_ref``       the subject: ``HMAC(K_reg, cnic)`` (never the CNIC), as §6.6 item 6 asks
``case_code``      the check, entry, appeal, worker, batch or establishment reference
``department``     the establishment's registration number (the party told the status)
``purpose``        the declared purpose code
``consent_basis``  the single-use consent reference
``reason``         ``status=…;rule=…;officer=…;position=…`` (adapter-composed)
``count``          how many entries an import or ingestion touched
=================  =================================================================
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy.engine import Connection

from adapter.privacy.audit import append_entry
from adapter.privacy.keys import KeyRing


def _clean(value: str) -> str:
    # The reason is one line of key=value pairs: a separator inside a value (an officer's name
    # with ';' or a newline) must not forge another pair.
    return " ".join(value.replace(";", ",").replace("=", "-").split())[:120]


def record(
    conn: Connection,
    keyring: KeyRing,
    event: str,
    *,
    now: datetime,
    subject: str | None = None,
    ref: str | None = None,
    establishment: str | None = None,
    purpose: str | None = None,
    consent_ref: str | None = None,
    count: int | None = None,
    **facts: str | None,
) -> int:
    """Append one registry event in the caller's transaction; ``facts`` go to ``reason``."""
    entry: dict[str, Any] = {"event": event}
    if subject is not None:
        entry["case_ref"] = subject
    if ref is not None:
        entry["case_code"] = ref
    if establishment is not None:
        entry["department"] = establishment
    if purpose is not None:
        entry["purpose"] = purpose
    if consent_ref is not None:
        entry["consent_basis"] = consent_ref
    if count is not None:
        entry["count"] = count
    pairs = [f"{key}={_clean(value)}" for key, value in facts.items() if value is not None]
    if pairs:
        entry["reason"] = ";".join(pairs)
    return append_entry(conn, keyring, entry, now=now)
