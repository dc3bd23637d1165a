"""How the service lives through an outage of its state store (issue 13 item 10).

Every duty of ``cpims-adapter run`` touches the store: a heartbeat every 15 s, a look for
wake-ups every 5 s, every run of every job. While PostgreSQL restarts or the network to it is
cut each of them fails; logging each failure (with its traceback, as APScheduler does with an
exception it catches) buried the log under dozens of tracebacks in half a minute, and their
text named the database user and host. :class:`StoreOutage` turns that into one WARNING when
the outage starts, one a minute while it lasts, and one INFO line when the store answers
again. No traceback and no exception text: the warning names the backend and database only
(``adapter.state.store.describe_store``).

The duties themselves just fail and are tried again on their schedule; a run the outage cut
off is recorded as ``interrupted`` once the store is back (``StateStore.settle_unwritten``).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

from adapter.state.store import describe_store

# While the outage lasts, at most one WARNING per this many seconds.
REPEAT_SECONDS = 60.0


class StoreOutage:
    """The outage of one state store as the service's duties meet it; thread-safe.

    ``failed(duty)`` when a duty found the store unreachable, ``answered()`` when a duty
    reached it; ``answered`` returns True once, for the first answer after an outage.
    """

    def __init__(
        self,
        url: str,
        log: logging.Logger,
        *,
        repeat_seconds: float = REPEAT_SECONDS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._store = describe_store(url)
        self._log = log
        self._repeat = repeat_seconds
        self._clock = clock
        self._lock = threading.Lock()
        self._since: float | None = None
        self._warned_at = 0.0
        self._failures = 0
        self._duties: set[str] = set()  # what failed since the last warning

    @property
    def down(self) -> bool:
        with self._lock:
            return self._since is not None

    def failed(self, duty: str, error: Exception) -> None:
        """``duty`` (e.g. ``heartbeat``, ``job health``) found the store unreachable."""
        now = self._clock()
        with self._lock:
            self._failures += 1
            self._duties.add(duty)
            if self._since is None:
                self._since = self._warned_at = now
                self._duties = set()
                line: tuple[object, ...] | None = (
                    "%s cannot be reached (%s, first met by %s): scheduled work waits and is "
                    "retried on its schedule; a run cut off is recorded as interrupted when "
                    "the store is back. Logged once a minute while it lasts.",
                    self._store,
                    _cause(error),
                    duty,
                )
            elif now - self._warned_at >= self._repeat:
                self._warned_at = now
                duties, self._duties = sorted(self._duties), set()
                line = (
                    "%s still cannot be reached after %d s (%d attempts failed; %s)",
                    self._store,
                    now - self._since,
                    self._failures,
                    ", ".join(duties),
                )
            else:
                line = None
        if line is not None:
            self._log.warning(*line)

    def answered(self) -> bool:
        """A duty reached the store. True (and one INFO line) if it was unreachable until now."""
        with self._lock:
            if self._since is None:
                return False
            seconds, failures = self._clock() - self._since, self._failures
            self._since, self._failures, self._duties = None, 0, set()
        self._log.info(
            "%s answers again after %d s (%d attempts failed meanwhile)",
            self._store,
            seconds,
            failures,
        )
        return True


def _cause(error: Exception) -> str:
    """The class of what the driver said, never its text (it names the user and host)."""
    cause = error.__cause__
    return type(cause).__name__ if cause is not None else type(error).__name__
