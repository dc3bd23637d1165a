"""``cpims-adapter run``: one long-running process for the scheduled jobs, the housekeeping
tasks, the operations endpoint (health, metrics) and, where configured, the inbound API.

APScheduler 3.11 as architecture.md §2.2 recommends: the schedule from the configuration
(MemoryJobStore), ``coalesce`` (a backlog of missed runs is one run), ``max_instances=1``, an
explicit misfire grace (the 1-second default silently drops runs on a busy pool), UTC, and
jitter. Correctness never rests on the scheduler: every run takes the job's lease, so two or
more instances on one PostgreSQL store run each job in exactly one of them at a time
(``StateStore.acquire_lease`` guards the lease with an advisory lock that a killed process
loses with its connection).

SIGTERM (systemd's stop) sets the stop flag: a run ends after its current page (each page
commits its work and watermark together, so nothing is lost), the scheduler starts nothing
new, the servers close, and the process exits 0. A second SIGTERM or SIGINT exits at once,
which is also safe — the same as a crash, which the crash tests exercise.

An outage of the state store (PostgreSQL restarting, the network to it cut) stops nothing but
the work: every duty that meets it fails quietly and is tried again on its schedule, the log
gets one WARNING a minute (``adapter.jobs.outage``), and when the store answers again the runs
it cut off are recorded as ``interrupted`` and the jobs carry on by themselves.
"""

from __future__ import annotations

import logging
import os
import signal
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from types import FrameType
from typing import Any, Protocol

import uvicorn
from apscheduler.events import EVENT_JOB_MISSED, JobExecutionEvent
from apscheduler.executors.pool import ThreadPoolExecutor
from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.triggers.interval import IntervalTrigger

from adapter import __version__
from adapter.app.housekeeping import HOUSEKEEPING
from adapter.app.scheduler import Housekeeping, RunOutcome, run_job, trigger_for
from adapter.config import Settings
from adapter.errors import AdapterError, ConfigError, LeaseHeld, StateStoreUnavailable
from adapter.jobs.outage import StoreOutage
from adapter.logs import log_context
from adapter.ops.endpoint import create_ops_app
from adapter.ops.status import record_next_run
from adapter.serving import BackgroundServer, bind
from adapter.state import StateStore
from adapter.state.service import Instances
from adapter.state.store import process_owner

log = logging.getLogger("adapter.service")

HEARTBEAT_SECONDS = 15
WAKEUP_POLL_SECONDS = 5


class EmbeddedServer(Protocol):
    """A server the service runs beside its jobs and stops with them."""

    @property
    def url(self) -> str: ...

    def stop(self) -> None: ...


# Starts the inbound API over the service's store (adapter.api.inbound.start_inbound_api). The
# API is a face above the wiring, so the face that builds the service hands it in.
InboundApi = Callable[[Settings, StateStore], EmbeddedServer]


class Service:
    """The scheduled jobs and housekeeping of one configuration, in one process.

    ``start`` / ``stop`` for embedding and tests; ``serve_forever`` for the command, which
    also installs the signal handlers.
    """

    def __init__(
        self,
        settings: Settings,
        *,
        housekeeping: list[Housekeeping] | None = None,
        serve_ops: bool = True,
        serve_api: bool | None = None,
        inbound_api: InboundApi | None = None,
        ops_port: int | None = None,
    ) -> None:
        if settings.primero.url is None:
            raise ConfigError(
                "primero.url is not set (config [primero] or CPIMS_ADAPTER_PRIMERO__URL): "
                "`run` has nothing to sync from."
            )
        self.settings = settings
        self.owner = process_owner()
        self.stopping = threading.Event()
        self.housekeeping = default_housekeeping(settings) if housekeeping is None else housekeeping
        self.store = StateStore(settings.state.url)
        self.outage = StoreOutage(settings.state.url, log)
        self.instances = Instances(self.store)
        self.outcomes: list[RunOutcome] = []  # the most recent, for tests and liveness
        # ``ops_port`` overrides [ops] port (0 there turns the endpoint off; here it picks a
        # free port, for tests and embedding).
        self._ops_port = settings.ops.port if ops_port is None else ops_port
        self._serve_ops = serve_ops and (ops_port is not None or settings.ops.port != 0)
        self._serve_api = settings.scheduler.serve_api if serve_api is None else serve_api
        self._inbound_api = inbound_api
        self._servers: list[Any] = []
        self.ops_url: str | None = None
        self.api_url: str | None = None
        self._running: set[str] = set()  # sync jobs running in this process now
        self._woken: dict[str, datetime] = {}
        self._started_at = datetime.now(UTC)
        self.scheduler = self._build_scheduler()

    # -- lifecycle ------------------------------------------------------------------------

    def start(self) -> Service:
        """Register this instance, start the servers and the scheduler; returns at once."""
        self.instances.register(self.owner, version=__version__, jobs=sorted(self.settings.jobs))
        try:
            if self._serve_ops:
                self._start_ops()
            if self._serve_api:
                self._start_api()
            self.scheduler.start()
        except BaseException:
            self.stop()
            raise
        log.info(
            "service started: %d jobs, %d housekeeping tasks",
            len(self.settings.jobs),
            len(self.housekeeping),
        )
        return self

    def stop(self) -> None:
        """Stop after the current pages: no new runs, running ones end between pages."""
        self.stopping.set()
        if self.scheduler.running:
            self.scheduler.shutdown(wait=True)
        for server in reversed(self._servers):
            server.stop()
        self._servers.clear()
        try:
            self.instances.stopped(self.owner)
        except StateStoreUnavailable as exc:
            self.outage.failed("recording the stop", exc)  # the heartbeat then goes stale
        self.store.close()
        log.info("service stopped")

    def serve_forever(self, on_ready: Callable[[Service], None] | None = None) -> None:
        """Run until SIGTERM or SIGINT (the command's body)."""
        signals = (signal.SIGTERM, signal.SIGINT)
        previous = {sig: signal.getsignal(sig) for sig in signals}

        def on_signal(signum: int, _frame: FrameType | None) -> None:
            if self.stopping.is_set():
                log.warning("second stop signal: exiting now (safe: the next run resumes)")
                os._exit(1)
            log.info("stop signal %d: finishing the current pages", signum)
            self.stopping.set()

        for sig in signals:
            signal.signal(sig, on_signal)
        try:
            self.start()
            if on_ready is not None:
                on_ready(self)
            while not self.stopping.wait(timeout=1.0):
                pass
        finally:
            self.stop()
            for sig, handler in previous.items():
                signal.signal(sig, handler)

    def liveness(self) -> dict[str, Any]:
        """For /healthz: alive while the scheduler thread runs and heartbeats are recent."""
        return {
            "scheduler": "running" if self.scheduler.running else "stopped",
            "stopping": self.stopping.is_set(),
            "instance": self.owner.split(":", 1)[0],
            "jobs": len(self.scheduler.get_jobs()) if self.scheduler.running else 0,
            "ok": self.scheduler.running and not self.stopping.is_set(),
        }

    # -- the scheduler --------------------------------------------------------------------

    def _build_scheduler(self) -> BackgroundScheduler:
        config = self.settings.scheduler
        workers = max(1, len(self.settings.jobs) + len(self.housekeeping) + 1)
        scheduler = BackgroundScheduler(
            timezone=UTC,
            executors={"default": ThreadPoolExecutor(max_workers=workers)},
            job_defaults={
                "coalesce": True,
                "max_instances": 1,
                "misfire_grace_time": config.misfire_grace_seconds,
            },
        )
        now = datetime.now(UTC)
        for name, job in sorted(self.settings.jobs.items()):
            scheduler.add_job(
                self._run_sync,
                trigger_for(job, jitter_seconds=config.jitter_seconds),
                args=[name],
                id=f"job:{name}",
                name=name,
                next_run_time=now,  # the first run at start-up, then on schedule
            )
        for task in self.housekeeping:
            scheduler.add_job(
                self._run_housekeeping,
                task.trigger(),
                args=[task],
                id=f"housekeeping:{task.name}",
                name=task.name,
                next_run_time=now,
            )
        scheduler.add_job(
            self._heartbeat,
            IntervalTrigger(seconds=HEARTBEAT_SECONDS, timezone=UTC),
            id="heartbeat",
            name="heartbeat",
        )
        scheduler.add_job(
            self._wake_requested_jobs,
            IntervalTrigger(seconds=WAKEUP_POLL_SECONDS, timezone=UTC),
            id="wakeups",
            name="wakeups",
        )
        scheduler.add_listener(self._missed, EVENT_JOB_MISSED)
        return scheduler

    def _missed(self, event: JobExecutionEvent) -> None:
        log.warning(
            "run of %s missed its start by more than the grace; next one catches up", event.job_id
        )

    def _run_sync(self, name: str) -> None:
        if self.stopping.is_set():
            return
        started = time.monotonic()
        self._running.add(name)
        try:
            with log_context(job=name, instance=self.owner.split(":", 1)[0]):
                outcome = run_job(name, self.settings, should_stop=self.stopping.is_set)
            self._store_answered()
        except StateStoreUnavailable as exc:
            # Not an error of the job: the outage's warning says it, once a minute.
            self.outage.failed(f"job {name}", exc)
            outcome = RunOutcome(name, "interrupted", error_class=type(exc).__name__)
        except AdapterError as exc:
            # Recorded in the runs table by the engine; the message is personal-data free.
            log.error("job %s failed: %s", name, exc)
            outcome = RunOutcome(name, "failed", error_class=type(exc).__name__)
        except Exception as exc:  # noqa: BLE001 - a run's failure must not stop the service
            log.error("job %s failed: %s (a bug: please report)", name, type(exc).__name__)
            outcome = RunOutcome(name, "failed", error_class=type(exc).__name__)
        finally:
            self._running.discard(name)
            self._record_next_run(name)
        self._remember(outcome)
        if outcome.status != "skipped" and outcome.error_class != "StateStoreUnavailable":
            log.info("job %s %s in %.1fs", name, outcome.status, time.monotonic() - started)

    def _run_housekeeping(self, task: Housekeeping) -> None:
        if self.stopping.is_set():
            return
        try:
            lease = self.store.acquire_lease(
                f"housekeeping:{task.name}", self.owner, self.settings.sync.lease_seconds
            )
        except StateStoreUnavailable as exc:
            self.outage.failed(task.name, exc)
            return
        if lease is None:
            self._remember(RunOutcome(task.name, "skipped"))
            return
        try:
            task.run(self.settings, self.store, self.stopping.is_set)
            outcome = RunOutcome(task.name, "ok")
        except LeaseHeld:
            outcome = RunOutcome(task.name, "skipped")
        except StateStoreUnavailable as exc:
            self.outage.failed(task.name, exc)
            outcome = RunOutcome(task.name, "interrupted", error_class=type(exc).__name__)
        except AdapterError as exc:
            log.error("%s failed: %s", task.name, exc)
            outcome = RunOutcome(task.name, "failed", error_class=type(exc).__name__)
        except Exception as exc:  # noqa: BLE001 - housekeeping must not stop the service
            log.error("%s failed: %s (a bug: please report)", task.name, type(exc).__name__)
            outcome = RunOutcome(task.name, "failed", error_class=type(exc).__name__)
        finally:
            try:
                self.store.release_lease(lease)
            except StateStoreUnavailable as exc:
                self.outage.failed(task.name, exc)  # released once the store is back
        self._remember(outcome)

    def _wake_requested_jobs(self) -> None:
        """Bring a job's next run forward when a wake-up (a Primero webhook) arrived since
        this instance last looked. A job running now keeps the request for after its run, so
        a change saved mid-run is never left to the next schedule."""
        try:
            wakeups = self.instances.wakeups()
        except StateStoreUnavailable as exc:
            self.outage.failed("wake-ups", exc)
            return
        self._store_answered()
        for name, requested in wakeups.items():
            if name not in self.settings.jobs or name in self._running:
                continue
            if requested > self._woken.get(name, self._started_at):
                self._woken[name] = requested
                job = self.scheduler.get_job(f"job:{name}")
                if job is not None:
                    job.modify(next_run_time=datetime.now(UTC))

    def _record_next_run(self, name: str) -> None:
        """Tell `status` when this instance will next run ``name`` (the scheduler's own time)."""
        job = self.scheduler.get_job(f"job:{name}") if self.scheduler.running else None
        if job is not None and job.next_run_time is not None:
            try:
                record_next_run(self.store, name, job.next_run_time)
            except StateStoreUnavailable as exc:
                self.outage.failed(f"job {name}", exc)

    def _heartbeat(self) -> None:
        try:
            self.instances.beat(self.owner)
        except StateStoreUnavailable as exc:
            self.outage.failed("heartbeat", exc)
            return
        self._store_answered()

    def _store_answered(self) -> None:
        """A duty reached the store: end the outage, if there was one, and record what it
        kept this process from writing (runs it cut off, leases they held)."""
        self.outage.answered()
        try:
            self.store.settle_unwritten()
        except StateStoreUnavailable as exc:
            self.outage.failed("recording interrupted runs", exc)

    def _remember(self, outcome: RunOutcome) -> None:
        self.outcomes.append(outcome)
        del self.outcomes[:-100]

    # -- servers --------------------------------------------------------------------------

    def _start_ops(self) -> None:
        ops = self.settings.ops
        try:
            sock = bind(ops.host, self._ops_port)
        except OSError as exc:
            raise ConfigError(
                f"the operations endpoint cannot listen on {ops.host}:{self._ops_port} "
                f"({exc.strerror or type(exc).__name__}): another instance on this host? Set "
                "[ops] port (0 turns it off) or CPIMS_ADAPTER_OPS__PORT."
            ) from None
        app = create_ops_app(self.settings, self.store, liveness=self.liveness)
        config = uvicorn.Config(app, log_level="warning", access_log=False, lifespan="off")
        server = BackgroundServer(config, sock, "operations endpoint")
        server.start()
        self._servers.append(server)
        host, port = sock.getsockname()[:2]
        self.ops_url = f"http://{host}:{port}"

    def _start_api(self) -> None:
        if self._inbound_api is None:
            raise ConfigError(
                "scheduler.serve_api is true, but this service was built without the inbound "
                "API (pass inbound_api=adapter.api.inbound.start_inbound_api)."
            )
        server = self._inbound_api(self.settings, self.store)
        self._servers.append(server)
        self.api_url = server.url


def default_housekeeping(settings: Settings) -> list[Housekeeping]:
    """The service's own duties beside the sync jobs (adapter/app/housekeeping.py)."""
    del settings
    return list(HOUSEKEEPING)


@contextmanager
def running(settings: Settings, **kwargs: Any) -> Iterator[Service]:
    """A started service, stopped on exit (tests, embedding)."""
    service = Service(settings, **kwargs).start()
    try:
        yield service
    finally:
        service.stop()


__all__ = ["EmbeddedServer", "InboundApi", "Service", "default_housekeeping", "running"]
