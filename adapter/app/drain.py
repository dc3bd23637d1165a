"""The inbound API's drain: after each answer and on a timer, the Primero work departments'
messages queued in the outbox is delivered (inbound work first, then the answers queued under
each sync job). Which jobs, and how many attempts each, is read from the settings here."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

from starlette.concurrency import run_in_threadpool

from adapter.config import Settings
from adapter.errors import AdapterError
from adapter.jobs.inbound import INBOUND_JOB, InboundService
from adapter.primero import PrimeroClient

# The API's logger, as before the drain moved here: operators filter on it.
log = logging.getLogger("adapter.api")


class Drainer:
    """Delivers queued Primero work after requests and on a timer; never raises."""

    def __init__(
        self,
        service: InboundService,
        settings: Settings,
        client_factory: Callable[[], PrimeroClient],
    ) -> None:
        self.service = service
        self.settings = settings
        self.client_factory = client_factory

    def drain(self, job: str) -> None:
        """Deliver ``job``'s queued work; a failure leaves it queued (and is logged)."""
        try:
            self.service.drain(self.client_factory, job, max_attempts=self._max_attempts(job))
        except Exception as exc:  # noqa: BLE001 - the work stays queued; say why, no data
            reason = str(exc) if isinstance(exc, AdapterError) else type(exc).__name__
            log.warning("Primero work of job %s stays queued: %s", job, reason)

    def drain_all(self) -> None:
        """Inbound work, and answers queued under sync jobs (their runs deliver them too)."""
        for job in (INBOUND_JOB, *sorted(self.settings.jobs)):
            self.drain(job)

    async def loop(self, interval: float) -> None:
        """Drain at once, then every ``interval`` seconds (0: only once)."""
        while True:
            await run_in_threadpool(self.drain_all)
            if interval <= 0:
                return
            await asyncio.sleep(interval)

    def _max_attempts(self, job: str) -> int:
        configured = self.settings.jobs.get(job)
        department = self.settings.departments.get(configured.department) if configured else None
        return department.max_attempts if department else 8
