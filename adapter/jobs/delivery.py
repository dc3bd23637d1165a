"""One delivery attempt of one outbox message, shared by the sync engine and the inbound API.

Decrypt, hand the document to the destination, then record the outcome: sent (with what the
delivery taught us about the link, in the same transaction), retry later, or dead letter. A
credential failure at Primero stops the caller instead: every later call would fail the same
way, and nothing is lost by stopping.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from typing import Any, Literal

from adapter.errors import (
    AdapterError,
    Fatal,
    MappingError,
    PolicyViolation,
    PrimeroAuthError,
    PrimeroConflict,
    PrimeroForbidden,
    PrimeroNotFound,
    PrimeroValidationError,
)
from adapter.ops.instruments import instruments
from adapter.privacy import KeyRing
from adapter.state.links import Links
from adapter.state.outbox import DEAD, Outbox, OutboxMessage

log = logging.getLogger("adapter.jobs.delivery")

# What handling one message returns: the result to keep on the message, and the link columns
# it changed (written in the same transaction as the message's "sent").
Handled = tuple[dict[str, Any], dict[str, Any]]
Handler = Callable[[OutboxMessage, dict[str, Any]], Handled]
Outcome = Literal["sent", "retrying", "dead"]


def attempt(
    message: OutboxMessage,
    handle: Handler,
    *,
    outbox: Outbox,
    links: Links,
    keyring: KeyRing,
    max_attempts: int,
) -> Outcome:
    """Try ``message`` once and record what happened."""
    try:
        plain = keyring.decrypt_payload(message.payload, context=message.idempotency_key.encode())
        result, link_values = handle(message, json.loads(plain))
    except PrimeroAuthError:
        raise
    except Exception as exc:  # noqa: BLE001 - every failure is recorded, none is lost
        instruments.delivery_error(message.destination, exc.__class__.__name__)
        # Our errors carry no personal data; a foreign exception keeps only its class.
        text = str(exc) if isinstance(exc, AdapterError) else exc.__class__.__name__
        status = outbox.mark_failed(
            message.id,
            error_class=exc.__class__.__name__,
            error=text,
            retry_after=getattr(exc, "retry_after", None),
            max_attempts=max_attempts,
            fatal=is_fatal(exc),
        )
        if status == DEAD:
            log.warning(
                "message %s to %s is a dead letter after %s",
                message.id,
                message.destination,
                exc.__class__.__name__,
            )
            return "dead"
        return "retrying"
    with outbox.store.transaction() as conn:
        outbox.mark_sent(message.id, result, conn)
        if link_values:
            links.upsert(conn, message.link_key, **link_values)
    return "sent"


def is_fatal(exc: Exception) -> bool:
    """Retrying the same payload cannot succeed: a department's or Primero's refusal of the
    content, an unusable payload, or a mapping or policy error. Transport trouble and unknown
    errors are retried."""
    if isinstance(exc, Fatal | MappingError | PolicyViolation | ValueError | KeyError):
        return True
    return isinstance(
        exc, PrimeroValidationError | PrimeroNotFound | PrimeroForbidden | PrimeroConflict
    )
