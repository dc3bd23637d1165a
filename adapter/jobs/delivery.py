"""One delivery attempt of one outbox message, shared by the sync engine and the inbound API.

Decrypt, hand the document to the destination, then record the outcome: sent (with what the
delivery taught us about the link, in the same transaction), retry later, or dead letter. A
credential failure at Primero stops the caller instead: every later call would fail the same
way, and nothing is lost by stopping.

:func:`attempt` records a success at once (the inbound API, one message at a time). The sync
engine uses :func:`attempt_batch`: :func:`send` per message, then :func:`record_sent` for the
whole batch in one transaction (one write transaction per message was the engine's largest
remaining cost, BENCHMARKS.md). A crash between a send and its batch's commit re-sends the
message on the next run (harmless: receivers are idempotent, keyed by ``idempotency_key``);
a message is never marked sent before its call succeeded.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Sequence
from concurrent.futures import Executor
from dataclasses import dataclass
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
    PrimeroNotPermitted,
    PrimeroValidationError,
)
from adapter.instruments import instruments
from adapter.privacy import KeyRing
from adapter.state.links import Links
from adapter.state.outbox import DEAD, Outbox, OutboxMessage, link_of

log = logging.getLogger("adapter.jobs.delivery")

# A message waiting for a permission is tried again after this long (at most once a run):
# a grant is an administrator's change, and the next run after it should find it.
GRANT_RETRY_SECONDS = 60.0

# What handling one message returns: the result to keep on the message, and the link columns
# it changed (written in the same transaction as the message's "sent").
Handled = tuple[dict[str, Any], dict[str, Any]]
Handler = Callable[[OutboxMessage, dict[str, Any]], Handled]
Outcome = Literal["sent", "retrying", "dead"]


@dataclass(frozen=True)
class Sent:
    """A message its destination accepted, not yet recorded: what :func:`record_sent` writes."""

    message: OutboxMessage
    result: dict[str, Any]
    link_values: dict[str, Any]


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
    outcome = send(message, handle, outbox=outbox, keyring=keyring, max_attempts=max_attempts)
    if not isinstance(outcome, Sent):
        return outcome
    record_sent([outcome], outbox=outbox, links=links)
    return "sent"


def send(
    message: OutboxMessage,
    handle: Handler,
    *,
    outbox: Outbox,
    keyring: KeyRing,
    max_attempts: int,
) -> Sent | Literal["retrying", "dead"]:
    """Try ``message`` once. A failure is recorded here (retry later or dead letter); a
    success is returned for the caller to record with :func:`record_sent`."""
    try:
        plain = keyring.decrypt_payload(message.payload, context=message.idempotency_key.encode())
        with instruments.calling(message.destination):
            result, link_values = handle(message, json.loads(plain))
    except PrimeroAuthError:
        raise
    except Exception as exc:  # noqa: BLE001 - every failure is recorded, none is lost
        instruments.delivery_error(message.destination, exc.__class__.__name__)
        # Our errors carry no personal data; a foreign exception keeps only its class.
        text = str(exc) if isinstance(exc, AdapterError) else exc.__class__.__name__
        waits_for_grant = isinstance(exc, PrimeroNotPermitted)
        status = outbox.mark_failed(
            message.id,
            error_class=exc.__class__.__name__,
            error=text,
            retry_after=(
                GRANT_RETRY_SECONDS if waits_for_grant else getattr(exc, "retry_after", None)
            ),
            max_attempts=max_attempts,
            fatal=is_fatal(exc),
            hold=waits_for_grant,
        )
        log.debug(
            "message %s (%s) to %s failed with %s: %s",
            message.id,
            message.kind,
            message.destination,
            exc.__class__.__name__,
            "dead letter" if status == DEAD else "retrying later",
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
    return Sent(message, result, link_values)


def attempt_batch(
    messages: Sequence[OutboxMessage],
    handle: Handler,
    *,
    pool: Executor,
    outbox: Outbox,
    links: Links,
    keyring: KeyRing,
    max_attempts: int,
) -> list[Outcome]:
    """Try every message of a batch once on ``pool``, each failure recorded as it happens and
    every success together at the end (:func:`record_sent`); the outcomes in message order.

    A credential failure at Primero (``PrimeroAuthError``) starts nothing more, records what
    the messages already under way delivered (so none of them is sent twice), then raises."""
    futures = [
        pool.submit(send, m, handle, outbox=outbox, keyring=keyring, max_attempts=max_attempts)
        for m in messages
    ]
    outcomes: list[Outcome] = []
    sent: list[Sent] = []
    stopped: BaseException | None = None
    for future in futures:
        try:
            outcome = future.result()
        except BaseException as exc:  # noqa: BLE001 - re-raised once the batch is recorded
            stopped = stopped or exc
            for later in futures:
                later.cancel()
            continue
        if isinstance(outcome, Sent):
            sent.append(outcome)
            outcomes.append("sent")
        else:
            outcomes.append(outcome)
    # A crash before this commit loses only the record: the next run re-sends these messages
    # (at-least-once to idempotent receivers), and nothing unsent is ever marked sent.
    record_sent(sent, outbox=outbox, links=links)
    if stopped is not None:
        raise stopped
    return outcomes


def record_sent(sent: Sequence[Sent], *, outbox: Outbox, links: Links) -> None:
    """Mark ``sent`` as delivered, with what each delivery taught us about its link, in one
    transaction. Callers pass at most one message per lane (``Outbox.due`` hands out one);
    a link's lanes update different link columns, so the updates do not depend on their
    order."""
    if not sent:
        return
    with outbox.store.transaction() as conn:
        outbox.mark_sent_many(conn, [(s.message.id, s.result) for s in sent])
        links.update_existing(
            conn, [(link_of(s.message.link_key), s.link_values) for s in sent if s.link_values]
        )


def is_fatal(exc: Exception) -> bool:
    """Retrying the same payload cannot succeed: a department's or Primero's refusal of the
    content, an unusable payload, or a mapping or policy error. Transport trouble and unknown
    errors are retried."""
    if isinstance(exc, Fatal | MappingError | PolicyViolation | ValueError | KeyError):
        return True
    return isinstance(
        exc, PrimeroValidationError | PrimeroNotFound | PrimeroForbidden | PrimeroConflict
    )
