"""One measured sync, or its bare-HTTP baseline, in a process of its own.

Every measurement runs in a fresh interpreter so that runs cannot warm each other's caches and
the process's RSS high-water mark belongs to that one run. The Primero world (``_world.py``)
and the sink (``_sink.py``) run in processes of their own; this one holds only the adapter.

    _sync_worker.py sync --primero URL --sink URL --state PATH   (KEK in $CPIMS_BENCH_KEK, hex)
    _sync_worker.py bare --primero URL --sink URL
    _sync_worker.py edit --primero URL --count N --round R       (a CPO edits N cases)

Each prints one JSON line: ``seconds`` (the timed part only — ``SyncJob.run()``, or the bare
loop), request counts, ``rss_start_kib`` (VmRSS once imports and setup are done, before the
timed part) and ``rss_peak_kib`` (VmHWM: the process's RSS high-water mark, from /proc).
"""

from __future__ import annotations

import argparse
import cProfile
import json
import os
import pstats
import resource
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import requests
from _sink import SinkConnector, new_session, reset_sink, sink_stats

from adapter.app.departments import open_department
from adapter.config import Settings
from adapter.jobs.sync import SyncJob
from adapter.primero import PrimeroClient
from adapter.primero._paging import DAWN
from adapter.privacy import DisclosurePolicy, KeyRing, KeyringError
from adapter.retention import destroyed_cases
from adapter.simulator.scenario import CPO, health_settings
from adapter.state import StateStore

INTEGRATION = ("cpims-adapter", "sim-password")
PER = 1000  # what the engine asks for (PrimeroSettings.page_size, Primero's cap)


def rss_kib(field: str) -> int:
    """A ``Vm*`` line of /proc/self/status, in KiB (VmRSS now, VmHWM high-water)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise RuntimeError(f"{field} not in /proc/self/status")


def primero_requests(primero: str) -> dict[str, int]:
    """The simulator's request counts by route (its control API is not counted by itself)."""
    with requests.get(f"{primero}/_sim/stats", timeout=30) as answer:
        answer.raise_for_status()
        counts: dict[str, int] = answer.json()["requests"]
    return {
        route: n for route, n in counts.items() if not route.split(" ", 1)[1].startswith("/_sim")
    }


def requests_since(primero: str, before: dict[str, int]) -> dict[str, int]:
    """Requests Primero answered since ``before`` was taken, by route."""
    after = primero_requests(primero)
    return {
        route: n - before.get(route, 0) for route, n in after.items() if n > before.get(route, 0)
    }


def bench_settings(primero: str, sink: str, state_url: str, kek: bytes) -> Settings:
    """The scenario's health job with one document per referral and no rate budget.

    ``two_stage=False``: the identified referral goes at once (no probe round trip).
    ``lag_seconds=0``: every case is in the window. The rate budget (1,000/s in the scenario)
    is a configured limit, not engine overhead, so it is lifted here.
    """
    settings = health_settings(
        primero_url=primero, fhir_url=sink, state_url=state_url, kek=kek, two_stage=False
    )
    health = settings.departments["health"].model_copy(update={"rate_per_second": 1e9})
    return settings.model_copy(update={"departments": {"health": health}})


def run_sync(
    primero: str, sink: str, state_path: str, profile: str | None = None
) -> dict[str, Any]:
    """One timed ``SyncJob.run()`` of the health job, delivering to the sink; a state store
    that already has keys (an earlier run) is continued, so the run is incremental."""
    kek = bytes.fromhex(os.environ["CPIMS_BENCH_KEK"])
    state_url = f"sqlite:///{state_path}"
    settings = bench_settings(primero, sink, state_url, kek)
    with (
        StateStore(state_url) as store,
        PrimeroClient.from_settings(settings.primero) as client,
    ):
        try:
            keyring = KeyRing.open(store, kek)
        except KeyringError:  # a fresh state store: make its keys
            keyring = KeyRing.init(store, kek, ["health"])
        connector = SinkConnector("health", sink)
        # The engine's own mapping for the department; its connector is replaced by the sink's.
        with open_department(settings, "health") as (_, mapping):
            job = SyncJob(
                settings,
                "health",
                client=client,
                store=store,
                keyring=keyring,
                policy=DisclosurePolicy.load(settings.privacy.policy_dir),
                connector=connector,
                mapping=mapping,
                tombstones=destroyed_cases,
            )
        phases = _time_phases(job)
        reset_sink(sink)
        before = primero_requests(primero)
        rss_start = rss_kib("VmRSS")
        profiler = _AllThreads() if profile else None
        cpu_before = _cpu_seconds()
        started = time.perf_counter()
        if profiler is not None:
            profiler.start()
        report = job.run()
        seconds = time.perf_counter() - started
        cpu = _cpu_seconds() - cpu_before
        if profiler is not None and profile is not None:
            profiler.stop(profile)
        connector.close()
    return {
        "seconds": seconds,
        "cpu_seconds": cpu,
        "cases": report.cases_examined,
        "unchanged": report.unchanged,
        "already_seen": report.pull.records_already_seen if report.pull else None,
        "primero_requests": requests_since(primero, before),
        "posts": sink_stats(sink)["posts"],
        "enqueued": dict(report.enqueued),
        "delivered": dict(report.delivered),
        "refused": dict(report.refused),
        "failed_attempts": report.retrying + report.dead_lettered,
        "rss_start_kib": rss_start,
        "rss_peak_kib": rss_kib("VmHWM"),
        "phases": {name: round(total, 3) for name, total in phases.items()},
    }


# Engine steps timed inside a run (wall seconds, summed). The instance attribute shadows the
# method, so the engine calls the timed one. All run on the main thread except inside
# `deliver`, whose workers are threads. `page_planning` is a page's whole planning
# (`_plan_page`): the referral GETs, which run ahead in 4 threads while the main thread plans
# the slices already fetched, and the planning itself; `policy_and_mapping` (`_plan`: policy,
# pseudonymisation and FHIR mapping, per referral), `overrides_read` and `outbox_payloads`
# (JSON + AES-GCM of each outbox row) are parts of it; `outbox_due` is part of `delivery`.
_PHASES = (
    ("", "_plan_page", "page_planning"),
    ("", "_plan", "policy_and_mapping"),
    ("gate", "overrides_many", "overrides_read"),
    ("", "_message", "outbox_payloads"),
    ("", "_apply_plans", "page_transaction"),
    ("", "deliver", "delivery"),
    ("outbox", "due", "outbox_due"),
    ("", "poll_statuses", "status_poll"),
    ("", "advance_accepted_probes", "probe_scan"),
    ("", "write_back", "write_back"),
)


def _time_phases(job: SyncJob) -> dict[str, float]:
    totals = {name: 0.0 for _, _, name in _PHASES}
    for owner_name, attribute, name in _PHASES:
        owner = getattr(job, owner_name) if owner_name else job
        method = getattr(owner, attribute)

        def timed(*args: Any, _method: Any = method, _name: str = name, **kwargs: Any) -> Any:
            started = time.perf_counter()
            try:
                return _method(*args, **kwargs)
            finally:
                totals[_name] += time.perf_counter() - started

        setattr(owner, attribute, timed)
    return totals


class _AllThreads:
    """cProfile in the calling thread and in every thread started meanwhile (the engine's
    referral fetchers and delivery workers). ``stop`` writes ``<path>.main`` (pull, planning,
    page transactions) and ``<path>.threads`` (the pool threads, merged).

    In the pool threads a C call that releases the GIL (a socket read, ``stat``, a SQLite
    statement) also absorbs the time spent waiting to get the GIL back, so their self times
    are upper bounds."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.main = cProfile.Profile()
        self.threads: list[cProfile.Profile] = []

    def start(self) -> None:
        threading.setprofile(self._in_new_thread)
        self.main.enable()

    def _in_new_thread(self, frame: Any, event: str, arg: Any) -> None:
        profile = cProfile.Profile()
        with self.lock:
            self.threads.append(profile)
        profile.enable()  # replaces this hook for the rest of the thread

    def stop(self, path: str) -> None:
        self.main.disable()
        threading.setprofile(None)  # type: ignore[arg-type]
        self.main.dump_stats(f"{path}.main")
        with self.lock:
            if self.threads:
                merged = pstats.Stats(self.threads[0])
                for profile in self.threads[1:]:
                    merged.add(profile)
                merged.dump_stats(f"{path}.threads")


def run_bare(primero: str, sink: str) -> dict[str, Any]:
    """The floor: the same list pages, one referral GET per case, one POST per referral.

    The same keyset paging as ``adapter.primero._paging`` (page 1, closed lower bound = the
    last page's last second, stop on a short page), sequential, with ``r.json()`` on every
    answer and the referral list's own bytes as the POST body. No policy, no mapping, no
    state store.
    """
    signpost = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    reset_sink(sink)
    primero_session, sink_session = requests.Session(), new_session()
    primero_session.auth = INTEGRATION
    cases = 0
    before = primero_requests(primero)
    rss_start = rss_kib("VmRSS")
    cpu_before = _cpu_seconds()
    started = time.perf_counter()
    lower, seen = DAWN, set()
    while True:
        params = {
            "order_by": "last_updated_at",
            "order": "asc",
            "per": PER,
            "page": 1,
            "last_updated_at": f"{lower}..{signpost}",
        }
        page = primero_session.get(f"{primero}/api/v2/cases", params=params, timeout=30)
        page.raise_for_status()
        records = page.json()["data"]
        for record in records:
            key = (record["id"], record["last_updated_at"])
            if key in seen:
                continue
            seen.add(key)
            cases += 1
            referrals = primero_session.get(
                f"{primero}/api/v2/cases/{record['id']}/referrals", timeout=30
            )
            referrals.raise_for_status()
            for _ in referrals.json()["data"]:
                sent = sink_session.post(
                    f"{sink}/referral",
                    data=referrals.content,
                    headers={"Content-Type": "application/json"},
                    timeout=30,
                )
                sent.raise_for_status()
                sent.json()
        if len(records) < PER:
            break
        lower = records[-1]["last_updated_at"][:19] + "Z"
    seconds = time.perf_counter() - started
    return {
        "seconds": seconds,
        "cpu_seconds": _cpu_seconds() - cpu_before,
        "cases": cases,
        "primero_requests": requests_since(primero, before),
        "posts": sink_stats(sink)["posts"],
        "rss_start_kib": rss_start,
        "rss_peak_kib": rss_kib("VmHWM"),
    }


def _cpu_seconds() -> float:
    """User + system CPU of this process so far, every thread (one core's worth per second
    at most while the GIL is held: what bounds a GIL-bound engine)."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def run_edit(primero: str, count: int, round_no: int) -> dict[str, Any]:
    """A CPO edits the ``count`` most recently updated referred cases through Primero's API.

    Each edit sets a date of birth in a month of its own (``_world.py`` gives every case
    2015-06-15; health receives year and month): every edited referral gets content it never
    had before. (Content seen before would hit an existing idempotency key and rightly send
    nothing.)
    """
    with requests.Session() as cpo:
        cpo.auth = CPO
        answer = cpo.get(
            f"{primero}/api/v2/cases",
            params={"order_by": "last_updated_at", "order": "desc", "per": 1000},
            timeout=30,
        )
        answer.raise_for_status()
        referred = [c for c in answer.json()["data"] if c.get("services_section")][:count]
        birth = f"{2014 + (round_no - 1) // 12}-{(round_no - 1) % 12 + 1:02d}-15"

        def edit(case: dict[str, Any]) -> None:
            cpo.patch(
                f"{primero}/api/v2/cases/{case['id']}",
                json={"data": {"date_of_birth": birth}},
                timeout=30,
            ).raise_for_status()

        with ThreadPoolExecutor(max_workers=4) as pool:
            list(pool.map(edit, referred))
    return {"edited": len(referred)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("mode", choices=["sync", "bare", "edit"])
    parser.add_argument("--primero", required=True)
    parser.add_argument("--sink")
    parser.add_argument("--state")
    parser.add_argument("--count", type=int, default=100)
    parser.add_argument("--round", type=int, default=1, help="edit round (a new value each)")
    parser.add_argument("--profile", help="write cProfile stats of the timed run here")
    args = parser.parse_args()
    if args.mode == "sync":
        result = run_sync(args.primero, args.sink, args.state, args.profile)
    elif args.mode == "bare":
        result = run_bare(args.primero, args.sink)
    else:
        result = run_edit(args.primero, args.count, args.round)
    print(json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
