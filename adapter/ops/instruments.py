"""In-process counters the code increments as things happen, exported by ``adapter.ops.metrics``.

Kept free of imports beyond the standard library: the delivery hot path and the registry check
import this module, and must not pull in prometheus_client, the scheduler or the state store.
Labels are configuration names, outcomes and exception class names only, never personal data.
"""

from __future__ import annotations

import threading
from collections import Counter


class Instruments:
    """Counters for one process; cheap (a lock and a dict) and thread-safe."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._delivery_errors: Counter[tuple[str, str]] = Counter()
        self._registry_checks: Counter[str] = Counter()

    def delivery_error(self, destination: str, error_class: str) -> None:
        """One failed delivery attempt to ``destination`` (a department, or ``primero``)."""
        with self._lock:
            self._delivery_errors[(destination, error_class)] += 1

    def registry_check(self, outcome: str) -> None:
        """One answered registry check (CLEAR, PENDING_REVIEW or DO_NOT_ENGAGE)."""
        with self._lock:
            self._registry_checks[outcome] += 1

    def delivery_errors(self) -> dict[tuple[str, str], int]:
        with self._lock:
            return dict(self._delivery_errors)

    def registry_checks(self) -> dict[str, int]:
        with self._lock:
            return dict(self._registry_checks)


# This process's instruments: adapter/jobs/delivery.py and adapter/registry/checks.py count here.
instruments = Instruments()
