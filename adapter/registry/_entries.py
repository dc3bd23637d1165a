"""What checks, review and monitoring share about entries and checks (one home, so that
review and monitoring do not import each other)."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from adapter.registry._context import Context
from adapter.registry._crypto import unseal
from adapter.registry.models import Identity


def effective_status(check: Any) -> str:
    """A check's status now: an officer's resolution overrides the automatic outcome."""
    return str(check.resolution or check.status)


def working_days_after(start: datetime, days: int) -> datetime:
    """``start`` plus ``days`` working days (Saturday and Sunday off)."""
    current, left = start, days
    while left:
        current += timedelta(days=1)
        if current.weekday() < 5:
            left -= 1
    return current


def load_entry_identity(ctx: Context, row: Any) -> Identity:
    data = unseal(
        ctx.keyring, bytes(row.sealed), bytes(row.wrapped_dek), b"entry|" + row.entry_ref.encode()
    )
    return Identity.from_json(data["identity"])
