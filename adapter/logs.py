"""Logging setup: text for people, JSON lines for log shippers; never personal data.

Every log call in the adapter passes identifiers and counts only; this module adds the
structure (JSON) and puts the filters it is given on the handler. The wiring hands it the
privacy layer's redacting filter (adapter/app/logs.py), so this ground module imports no part.
"""

from __future__ import annotations

import contextvars
import json
import logging
import sys
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime

THIRD_PARTY_LOGGERS = ("apscheduler", "psycopg", "sqlalchemy")

_STANDARD = set(logging.makeLogRecord({}).__dict__) | {"message", "asctime"}

ContextValue = str | int | float | bool
_context: contextvars.ContextVar[tuple[tuple[str, ContextValue], ...]] = contextvars.ContextVar(
    "cpims_adapter_log_context", default=()
)


@contextmanager
def log_context(**fields: ContextValue) -> Iterator[None]:
    """Add ``fields`` to every JSON log line emitted inside the block (in this thread or task;
    a worker thread starts without them). Identifiers and counts only — job, department, run
    id — never a value from a case: these fields are not passed through the redacting filter.
    """
    token = _context.set(tuple({**dict(_context.get()), **fields}.items()))
    try:
        yield
    finally:
        _context.reset(token)


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message, and any ``extra=`` fields."""

    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
            **dict(_context.get()),
        }
        for key, value in record.__dict__.items():
            if key not in _STANDARD and not key.startswith("_"):
                entry[key] = value
        if record.exc_info and record.exc_info[0] is not None:
            # The class only: exception text from third-party code may carry data.
            entry["exception"] = record.exc_info[0].__name__
        return json.dumps(entry, default=str, ensure_ascii=False)


def configure_logging(level: str, fmt: str, *, filters: Iterable[logging.Filter]) -> None:
    """Send adapter logs to stderr (stdout is for command output), through ``filters``."""
    handler = logging.StreamHandler(sys.stderr)
    if fmt == "json":
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    # On the handler, not a logger: records propagated from child loggers pass them too.
    for log_filter in filters:
        handler.addFilter(log_filter)
    root = logging.getLogger("adapter")
    root.handlers[:] = [handler]
    root.setLevel(level)
    root.propagate = False
    # Libraries that log on their own through the same handler (and its redacting filter),
    # never through Python's last-resort handler, which prints a traceback's text as it is
    # (APScheduler logs a job's exception with its traceback; psycopg's names the server).
    for name in THIRD_PARTY_LOGGERS:
        library = logging.getLogger(name)
        library.handlers[:] = [handler]
        library.setLevel(logging.WARNING)
        library.propagate = False
    # urllib3 logs full URLs, query strings (search terms) included, at DEBUG.
    logging.getLogger("urllib3").setLevel(logging.WARNING)
