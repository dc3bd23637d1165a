"""Keep personal data out of log lines (issue 3 item 7; privacy.md §7 item 15).

Install :class:`RedactingFilter` on **every handler** (a filter on a logger does not see records
propagated from child loggers; a handler filter sees them all)::

    for handler in logging.getLogger().handlers:
        handler.addFilter(RedactingFilter())

It rewrites each record's message, exception text, stack text and string extras:

* CNIC-shaped (13 digits as 5-7-1, any digit script, any dash), phone-shaped (Pakistani
  mobiles and +92/0092 numbers, other E.164) and e-mail-shaped strings become ``[CNIC]``,
  ``[PHONE]``, ``[EMAIL]``; any run of 11+ digits becomes ``[NUMBER]``;
* values registered as sensitive (names, narratives of the case being processed, see
  :func:`sensitive_values`) become ``[REDACTED]``: short values as whole words, long values
  wherever any 12-character run of them appears;
* invisible format characters (bidi overrides, ZWJ …) are removed and line breaks and other
  control characters escaped, so a name cannot forge or hide a log line;
* how to reach a database is removed from exception text (SQLAlchemy and psycopg put it there):
  a database URL's user, password, host and port, the user name or password in any URL,
  libpq's ``connection to server at "host" (address), port N`` and ``user "name"``, and
  ``password=``/``user=``/``host=`` keywords become ``[CONNECTION]``.

The filter is a safety net: the adapter's own messages are written never to contain values.
"""

from __future__ import annotations

import contextvars
import logging
import re
import traceback
import unicodedata
from collections.abc import Iterable, Iterator
from contextlib import contextmanager

_DASH = r"[-‐‑‒–—―−﹘﹣－\s]?"
_CNIC = re.compile(rf"(?<!\d)\d{{5}}{_DASH}\d{{7}}{_DASH}\d(?!\d)")
_PHONE = re.compile(
    rf"(?<![\d+])(?:(?:\+|00)\s?92{_DASH}|0)3\d{{2}}{_DASH}\d{{7}}(?!\d)"
    rf"|(?<![\d+])(?:\+|00)\s?92{_DASH}\d{{2,3}}{_DASH}\d{{6,8}}(?!\d)"
    r"|(?<![\w+])\+\d[\d\s-]{8,16}\d(?!\d)"
)
_EMAIL = re.compile(r"[\w.+-]+@[\w-]+(?:\.[\w-]+)+")
# Not inside a word or a dashed token: the last group of a record UUID can be 12 digits.
_LONG_NUMBER = re.compile(r"(?<![\w-])\d{11,}(?![\w-])")
# A database URL keeps its scheme and database name only; any other URL loses its user info.
_DATABASE_URL = re.compile(r"\b((?:postgres(?:ql)?|mysql|mariadb)(?:\+\w+)?://)[^/\s\"']*")
_URL_USERINFO = re.compile(r"\b([a-z][\w+.-]*://)[^/@\s\"']+@", re.IGNORECASE)
# libpq's and PostgreSQL's own words (fe-connect.c, auth.c): where it tried, and as whom.
_LIBPQ_SERVER = re.compile(
    r'server (?:at|on socket) "[^"]*"(?: \([^)]*\))?(?:, port \d+)?', re.IGNORECASE
)
_LIBPQ_USER = re.compile(r'\b(user|role|database) "[^"]*"', re.IGNORECASE)
_CONNINFO = re.compile(
    r"\b(password|passwd|user|host|hostaddr|port|dbname)\s*=\s*(?:'[^']*'|\S+)", re.IGNORECASE
)
_WINDOW = 12
_MIN_SHORT = 3
_STANDARD_ATTRS = frozenset(vars(logging.makeLogRecord({})).keys()) | {"message", "asctime"}

_sensitive: contextvars.ContextVar[tuple[frozenset[str], frozenset[str]]] = contextvars.ContextVar(
    "cpims_adapter_sensitive_values", default=(frozenset(), frozenset())
)


_Registered = tuple[frozenset[str], frozenset[str]]


def _compile(values: Iterable[str]) -> _Registered:
    short: set[str] = set()
    windows: set[str] = set()
    for value in values:
        text = _clean(value).casefold().strip()
        if len(text) < _MIN_SHORT:
            continue
        if len(text) < _WINDOW:
            short.add(text)
        else:
            windows.update(text[i : i + _WINDOW] for i in range(len(text) - _WINDOW + 1))
    return frozenset(short), frozenset(windows)


@contextmanager
def sensitive_values(values: Iterable[str]) -> Iterator[None]:
    """Redact ``values`` from every log line emitted inside the block (in this thread/task).

    Nested blocks add to the outer set. Values shorter than 3 characters are ignored (they
    would redact ordinary words).
    """
    short, windows = _sensitive.get()
    more_short, more_windows = _compile(values)
    token = _sensitive.set((short | more_short, windows | more_windows))
    try:
        yield
    finally:
        _sensitive.reset(token)


def redact(text: str, *, also: _Registered | None = None) -> str:
    """``text`` with identifiers, sensitive values and control characters neutralised."""
    text = _clean(text)
    text = _redact_connection(text)
    text = _EMAIL.sub("[EMAIL]", text)
    text = _CNIC.sub("[CNIC]", text)
    text = _PHONE.sub("[PHONE]", text)
    text = _LONG_NUMBER.sub("[NUMBER]", text)
    text = _redact_registered(text, also)
    return _escape_controls(text)


class RedactingFilter(logging.Filter):
    """A handler filter that redacts every record in place and never drops one.

    ``always`` are values redacted in every record (e.g. a canary in tests, or the integration
    account's user name); per-case values come from :func:`sensitive_values`.
    """

    def __init__(self, always: Iterable[str] = ()) -> None:
        super().__init__()
        self._always = _compile(always)

    def filter(self, record: logging.LogRecord) -> bool:
        also = self._always
        try:
            message = record.getMessage()
        except (TypeError, ValueError):
            message = f"{record.msg!s} (unformattable arguments dropped)"
        record.msg, record.args = redact(message, also=also), None
        if record.exc_info and record.exc_info[0] is not None:
            # Format the traceback now so the handler's formatter uses the redacted text.
            text = "".join(traceback.format_exception(*record.exc_info))
            record.exc_text = redact_multiline(text, also=also)
            record.exc_info = None
        elif record.exc_text:
            record.exc_text = redact_multiline(record.exc_text, also=also)
        if record.stack_info:
            record.stack_info = redact_multiline(record.stack_info, also=also)
        for key, value in list(vars(record).items()):
            if key not in _STANDARD_ATTRS and isinstance(value, str):
                setattr(record, key, redact(value, also=also))
        return True


def redact_multiline(text: str, *, also: _Registered | None = None) -> str:
    """Like :func:`redact` but keeps the line breaks of a traceback."""
    return "\n".join(redact(line, also=also) for line in text.rstrip("\n").split("\n"))


def _redact_connection(text: str) -> str:
    """Remove how to reach (and log in to) a database from a driver's or SQLAlchemy's text."""
    text = _DATABASE_URL.sub(r"\1[CONNECTION]", text)
    text = _URL_USERINFO.sub(r"\1[CONNECTION]@", text)
    text = _LIBPQ_SERVER.sub("server at [CONNECTION]", text)
    text = _LIBPQ_USER.sub(r'\1 "[CONNECTION]"', text)
    return _CONNINFO.sub(r"\1=[CONNECTION]", text)


def _clean(text: str) -> str:
    return "".join(ch for ch in str(text) if unicodedata.category(ch) != "Cf")


def _escape_controls(text: str) -> str:
    return "".join(
        ch if unicodedata.category(ch)[0] != "C" else ch.encode("unicode_escape").decode("ascii")
        for ch in text
    )


def _redact_registered(text: str, also: _Registered | None) -> str:
    short, windows = _sensitive.get()
    if also is not None:
        short, windows = short | also[0], windows | also[1]
    if not short and not windows:
        return text
    folded = text.casefold()
    # Casefolding can change the length (ß → ss); positions must line up with the original.
    if len(folded) != len(text):
        folded = "".join(ch.casefold() if len(ch.casefold()) == 1 else ch for ch in text)
    mask = [False] * len(text)
    for i in range(len(folded) - _WINDOW + 1):
        if folded[i : i + _WINDOW] in windows:
            mask[i : i + _WINDOW] = [True] * _WINDOW
    for value in short:
        for match in re.finditer(rf"(?<!\w){re.escape(value)}(?!\w)", folded):
            mask[match.start() : match.end()] = [True] * (match.end() - match.start())
    if not any(mask):
        return text
    out: list[str] = []
    for ch, hidden in zip(text, mask, strict=True):
        if not hidden:
            out.append(ch)
        elif not out or out[-1] != "[REDACTED]":
            out.append("[REDACTED]")
    return "".join(out)
