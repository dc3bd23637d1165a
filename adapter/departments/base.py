"""What the sync engine needs from any department connector, whatever its transport.

A connector delivers *documents* the department mapping built (pure, in ``adapter/mappings``)
and reports the department's status changes as ``StatusUpdate``s in the adapter's own status
vocabulary. The engine, the outbox and the Primero write-back never see a transport detail.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from adapter.mappings.vocabulary import StatusUpdate


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
