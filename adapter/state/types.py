"""Column types shared by every table."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Dialect

# The clock lives on the ground (adapter/clock.py); re-exported for the modules that still
# read it here.
from adapter.clock import utcnow as utcnow


class UTCDateTime(sa.types.TypeDecorator[datetime]):
    """A timestamp stored as naive UTC and always read back as an aware UTC datetime.

    SQLite has no time zones and PostgreSQL's ``timestamptz`` converts to the session zone;
    storing naive UTC in both keeps one code path and comparable values.
    """

    impl = sa.DateTime
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to the state store: pass an aware UTC time")
        return value.astimezone(UTC).replace(tzinfo=None)

    def process_result_value(self, value: Any, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if isinstance(value, str):  # SQLite may hand back text for raw SQL reads
            value = datetime.fromisoformat(value)
        stored: datetime = value
        return stored.replace(tzinfo=UTC)
