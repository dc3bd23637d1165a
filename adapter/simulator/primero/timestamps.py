"""Time formats as Primero (Rails + PostgreSQL) writes, parses and compares them."""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, timedelta

# ActiveSupport::JSON::DATE_REGEX / DATETIME_REGEX, used by DestringifyService to decide what a
# query-string value is (app/services/destringify_service.rb).
DATE_REGEX = re.compile(r"\A\d{4}-\d{2}-\d{2}\Z")
DATETIME_REGEX = re.compile(
    r"\A(?:\d{4}-\d{2}-\d{2}|\d{4}-\d{1,2}-\d{1,2}[T \t]+\d{1,2}:\d{2}:\d{2}(\.[0-9]*)?"
    r"(([ \t]*)Z|[-+]\d{2}?(:\d{2})?)?)\Z"
)
_DATETIME_PARTS = re.compile(
    r"(\d{4})-(\d{1,2})-(\d{1,2})[T \t]+(\d{1,2}):(\d{2}):(\d{2})(?:\.(\d*))?"
    r"[ \t]*(Z|[-+]\d{2}(?::?\d{2})?)?"
)
# RFC 3339 as json_schemer checks `format: date-time`.
_RFC3339 = re.compile(r"\A\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}:\d{2}(\.\d+)?([Zz]|[+-]\d{2}:\d{2})\Z")


def iso_ms(moment: datetime) -> str:
    """Rails `as_json` of a time: UTC, three fractional digits, `Z` (2025-01-01T10:00:00.123Z)."""
    utc = moment.astimezone(UTC)
    return utc.strftime("%Y-%m-%dT%H:%M:%S.") + f"{utc.microsecond // 1000:03d}Z"


def parse_iso_ms(value: str) -> datetime:
    """Inverse of `iso_ms` (also accepts a missing fraction)."""
    parsed = parse_rails_time(value)
    if parsed is None:
        raise ValueError(f"not a timestamp: {value!r}")
    return parsed


def parse_rails_time(value: str) -> datetime | None:
    """`Time.zone.parse` with `Time.zone = UTC`: an explicit offset is *applied* (converted to UTC).

    Primero has no `config.time_zone`, so Rails' default UTC zone parses query values; the offset
    is honoured here, before `TO_TIMESTAMP` drops it (app/services/destringify_service.rb).
    Returns None when the text is not a valid time (Ruby's ArgumentError keeps the string).
    """
    match = _DATETIME_PARTS.match(value)
    if not match:
        return None
    year, month, day, hour, minute, second, fraction, offset = match.groups()
    try:
        micro = int((fraction or "0")[:6].ljust(6, "0"))
        moment = datetime(
            int(year), int(month), int(day), int(hour), int(minute), int(second), micro, tzinfo=UTC
        )
    except ValueError:
        return None
    if offset and offset not in ("Z",):
        sign = 1 if offset[0] == "+" else -1
        digits = offset[1:].replace(":", "")
        hours = int(digits[:2]) if digits[:2] else 0
        minutes = int(digits[2:4]) if digits[2:4] else 0
        moment -= sign * timedelta(hours=hours, minutes=minutes)
    return moment


def parse_date(value: str) -> date | None:
    """`Date.parse` of a YYYY-MM-DD string, or None."""
    try:
        return date.fromisoformat(value)
    except ValueError:
        return None


def is_json_date(value: str) -> bool:
    """json_schemer `format: date` (RFC 3339 full-date)."""
    return bool(DATE_REGEX.match(value)) and parse_date(value) is not None


def is_json_datetime(value: str) -> bool:
    """json_schemer `format: date-time` (RFC 3339 date-time, offset required)."""
    if not _RFC3339.match(value):
        return False
    return parse_rails_time(value) is not None


def pg_to_timestamp(value: object, with_time: bool) -> str:
    """PostgreSQL `TO_TIMESTAMP(v, 'YYYY-MM-DD"T"HH24:MI:SS')` (or 'YYYY-MM-DD') as a sortable text.

    The format has no fractional seconds and no zone, so PostgreSQL reads the first 19 (or 10)
    characters and ignores the rest: milliseconds and any offset of the stored value are dropped
    (app/models/search_filters/date_value.rb, app/models/report.rb DATE_TIME_FORMAT).
    Raises ValueError (the SQL error) when the text does not start with a date.
    """
    if not isinstance(value, str):
        raise ValueError("TO_TIMESTAMP on a non-text value")
    head = value[:19] if with_time else value[:10]
    if len(head) < 10 or not DATE_REGEX.match(head[:10]) or parse_date(head[:10]) is None:
        raise ValueError(f"invalid value for TO_TIMESTAMP: {value!r}")
    if not with_time:
        return head
    if len(head) == 10:
        return head + "T00:00:00"
    if not re.match(r"\A.{10}[T ]\d{2}:\d{2}:\d{2}\Z", head):
        raise ValueError(f"invalid value for TO_TIMESTAMP: {value!r}")
    return head[:10] + "T" + head[11:]


def bound_text(moment: date | datetime, with_time: bool) -> str:
    """A destringified filter bound as `value.iso8601` then read back by `TO_TIMESTAMP`."""
    if isinstance(moment, datetime):
        text = moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S")
    else:
        text = moment.isoformat()
    return pg_to_timestamp(text, with_time)


def as_datetime(moment: date | datetime) -> datetime:
    """A date as midnight UTC; a datetime unchanged (PostgreSQL casts a date to midnight)."""
    if isinstance(moment, datetime):
        return moment
    return datetime(moment.year, moment.month, moment.day, tzinfo=UTC)
