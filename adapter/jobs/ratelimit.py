"""A rate budget shared by a destination's delivery threads."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable


class RateBudget:
    """At most ``per_second`` calls per second on average, in bursts of at most one second's
    worth (a token bucket). ``wait`` blocks until a token is free."""

    def __init__(
        self,
        per_second: float,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.rate = per_second
        self.capacity = max(1.0, per_second)
        self.tokens = self.capacity
        self.clock = clock
        self.sleep = sleep
        self.updated = clock()
        self.lock = threading.Lock()

    def wait(self) -> None:
        while True:
            with self.lock:
                now = self.clock()
                self.tokens = min(self.capacity, self.tokens + (now - self.updated) * self.rate)
                self.updated = now
                if self.tokens >= 1:
                    self.tokens -= 1
                    return
                shortfall = (1 - self.tokens) / self.rate
            self.sleep(shortfall)
