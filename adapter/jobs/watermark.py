"""How far a job has read a Primero stream, kept so that no change is missed or re-processed.

Primero's ``last_updated_at`` filter compares at whole seconds (primero-api.md §3:
``TO_TIMESTAMP(v,'YYYY-MM-DD"T"HH24:MI:SS')``) while the field carries milliseconds. So the
next pull restarts at the watermark's *second* (a closed lower bound) and this watermark
remembers which record versions inside that second it has already handled. Comparing at the
second, not the millisecond, matters: a record shifted by a concurrent edit can arrive after
its later-in-the-same-second neighbours, and must still count as new (architecture.md §5.3).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from adapter.errors import StateError


def parse_primero_time(value: str) -> datetime:
    """Parse Primero's ``2025-05-10T05:34:59.514Z`` into an aware UTC datetime."""
    parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return parsed.astimezone(UTC)


def format_primero_time(value: datetime) -> str:
    """UTC ``Z`` with milliseconds, as Primero writes it."""
    return (
        value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.") + f"{value.microsecond // 1000:03d}Z"
    )


def _second(value: datetime) -> datetime:
    return value.replace(microsecond=0)


def version_key(record: Mapping[str, Any]) -> str:
    """One version of one record: its id and the exact time it was saved."""
    return f"{record['id']}@{record['last_updated_at']}"


@dataclass(frozen=True)
class Watermark:
    """The newest second fully or partly handled, and the record versions seen inside it."""

    second: datetime | None = None
    seen: frozenset[str] = field(default_factory=frozenset)

    def is_new(self, record: Mapping[str, Any]) -> bool:
        """True if this version of the record has not been handled yet."""
        if self.second is None:
            return True
        at = _second(parse_primero_time(record["last_updated_at"]))
        if at > self.second:
            return True
        if at < self.second:
            return False
        return version_key(record) not in self.seen

    def advance(self, records: Iterable[Mapping[str, Any]]) -> Watermark:
        """The watermark after handling ``records`` (in any order)."""
        second, seen = self.second, set(self.seen)
        for record in records:
            at = _second(parse_primero_time(record["last_updated_at"]))
            if second is None or at > second:
                second, seen = at, set()
            if at == second:
                seen.add(version_key(record))
        return Watermark(second, frozenset(seen))

    def to_text(self) -> str:
        if self.second is None:
            return "{}"
        return json.dumps(
            {"second": self.second.strftime("%Y-%m-%dT%H:%M:%SZ"), "seen": sorted(self.seen)},
            separators=(",", ":"),
        )

    @classmethod
    def from_text(cls, text: str | None) -> Watermark:
        if not text:
            return cls()
        try:
            data = json.loads(text)
            if not data:
                return cls()
            return cls(parse_primero_time(data["second"]), frozenset(data.get("seen", [])))
        except (ValueError, KeyError, TypeError):
            raise StateError(
                "a stored cursor is not readable. Reset it with "
                "`cpims-adapter cursor reset JOB` and let the next run re-read (safe: "
                "delivery is idempotent)."
            ) from None
