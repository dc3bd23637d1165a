"""In-process counters the code increments as things happen, exported by ``adapter.ops.metrics``.

Kept free of imports beyond the standard library: the delivery hot path and the registry check
import this module, and must not pull in prometheus_client, the scheduler or the state store.
Labels are configuration names, outcomes and exception class names only, never personal data.
"""

from __future__ import annotations

import contextvars
import threading
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

# Upper bounds (seconds) of the HTTP latency histogram: Prometheus' defaults, plus the slow end
# a department server or a busy Primero reaches (timeouts are 30 s by default).
HTTP_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)
# Who an HTTP call from a department connector is for; set by the delivery of a message.
_calling: contextvars.ContextVar[str] = contextvars.ContextVar(
    "cpims_adapter_calling", default="department"
)


@dataclass
class Histogram:
    """Cumulative bucket counts (one per bound, then +Inf), their sum and count."""

    bounds: tuple[float, ...]
    buckets: list[int] = field(default_factory=list)
    total: float = 0.0
    count: int = 0

    def observe(self, value: float) -> None:
        if not self.buckets:
            self.buckets = [0] * (len(self.bounds) + 1)
        for index, bound in enumerate(self.bounds):
            if value <= bound:
                self.buckets[index] += 1
        self.buckets[-1] += 1
        self.total += value
        self.count += 1

    def copy(self) -> Histogram:
        return Histogram(self.bounds, list(self.buckets), self.total, self.count)


class Instruments:
    """Counters for one process; cheap (a lock and a dict) and thread-safe."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._delivery_errors: Counter[tuple[str, str]] = Counter()
        self._registry_checks: Counter[str] = Counter()
        self._http: dict[tuple[str, str], Histogram] = {}

    def delivery_error(self, destination: str, error_class: str) -> None:
        """One failed delivery attempt to ``destination`` (a department, or ``primero``)."""
        with self._lock:
            self._delivery_errors[(destination, error_class)] += 1

    def registry_check(self, outcome: str) -> None:
        """One answered registry check (CLEAR, PENDING_REVIEW or DO_NOT_ENGAGE)."""
        with self._lock:
            self._registry_checks[outcome] += 1

    def http_request(self, destination: str | None, outcome: str, seconds: float) -> None:
        """One HTTP call answered (``outcome``: ``2xx`` … ``5xx``) or failed (``error``);
        ``destination`` None: the one :meth:`calling` set (a department connector's call)."""
        key = (destination or _calling.get(), outcome)
        with self._lock:
            self._http.setdefault(key, Histogram(HTTP_BUCKETS)).observe(seconds)

    @contextmanager
    def calling(self, destination: str) -> Iterator[None]:
        """HTTP calls made in this block (this thread) are for ``destination``."""
        token = _calling.set(destination)
        try:
            yield
        finally:
            _calling.reset(token)

    def http_requests(self) -> dict[tuple[str, str], Histogram]:
        with self._lock:
            return {key: histogram.copy() for key, histogram in self._http.items()}

    def delivery_errors(self) -> dict[tuple[str, str], int]:
        with self._lock:
            return dict(self._delivery_errors)

    def registry_checks(self) -> dict[str, int]:
        with self._lock:
            return dict(self._registry_checks)


# This process's instruments: adapter/jobs/delivery.py and adapter/registry/checks.py count here.
instruments = Instruments()
