"""What the sync engine needs from any department connector, whatever its transport.

A connector delivers *documents* the department mapping built (pure, in ``adapter/mappings``)
and reports the department's status changes as ``StatusUpdate``s in the adapter's own status
vocabulary. The engine, the outbox and the Primero write-back never see a transport detail.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

# The vocabulary lives with the mappings (adapter/mappings/vocabulary.py), below the
# connectors; it is re-exported here because every connector speaks it.
from adapter.mappings.vocabulary import ACCEPTED as ACCEPTED
from adapter.mappings.vocabulary import CANCEL as CANCEL
from adapter.mappings.vocabulary import CANCELLED as CANCELLED
from adapter.mappings.vocabulary import COMPLETED as COMPLETED
from adapter.mappings.vocabulary import FAILED as FAILED
from adapter.mappings.vocabulary import IN_PROGRESS as IN_PROGRESS
from adapter.mappings.vocabulary import PROBE as PROBE
from adapter.mappings.vocabulary import REFERRAL as REFERRAL
from adapter.mappings.vocabulary import REJECTED as REJECTED
from adapter.mappings.vocabulary import REQUESTED as REQUESTED
from adapter.mappings.vocabulary import STATUSES as STATUSES
from adapter.mappings.vocabulary import UPDATE as UPDATE
from adapter.mappings.vocabulary import WITHDRAW as WITHDRAW
from adapter.mappings.vocabulary import StatusUpdate as StatusUpdate


@dataclass(frozen=True)
class Delivery:
    """What a department said when it took a document."""

    external_ref: str | None = None


class Connector(Protocol):
    """A department system, as the engine sees it."""

    @property
    def department(self) -> str: ...

    def deliver(self, kind: str, document: Mapping[str, Any], *, idempotency_key: str) -> Delivery:
        """Deliver one document; idempotent for the same document (``idempotency_key`` is
        stable across re-sends: send it where the transport has a place for it). Raises
        ``Retryable``, ``RateLimited`` or ``Fatal`` (adapter.errors)."""
        ...

    def check(self) -> str:
        """Reach the department with a harmless request (``cpims-adapter check``): what was
        reached, in one line, or an AdapterError saying what failed and where."""
        ...

    def status_updates(self, since: str | None) -> Iterator[tuple[StatusUpdate, str]]:
        """Status changes since the watermark ``since``; each with the watermark after it."""
        ...

    def close(self) -> None: ...
