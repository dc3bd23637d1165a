"""The adapter's one clock: aware UTC, so every stored and compared time has a zone."""

from __future__ import annotations

from datetime import UTC, datetime


def utcnow() -> datetime:
    return datetime.now(UTC)
