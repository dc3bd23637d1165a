"""Sync throughput: the engine against a bare ``requests`` loop doing the same HTTP requests.

    .venv/bin/python benchmarks/bench_sync_throughput.py [REFERRALS] [REPETITIONS]

The world: ``REFERRALS`` consented cases in the Primero simulator, each with one remote
referral to the hospital (``_world.py``), served by its own process; a sink that answers every
POST at once (``_sink.py``), in another. The job is the scenario's health job with
``two_stage=False`` (one identified referral document per referral, no probe) and no rate
budget.

Measured: one ``SyncJob.run()`` on a fresh state store — pull every case (pages of 1,000),
fetch each case's referrals, route, decide (consent, sensitivity, minimisation), pseudonymise,
map to a FHIR transaction bundle, write the outbox, links and audit entries (one SQLite
transaction per page), then deliver every document to the sink through ``SinkConnector``.

Baseline: the same requests with nothing in between — the same list pages (same paging
parameters), one referral GET per case and one POST per referral to the same sink, sequential,
with ``r.json()`` on every answer. Why it is fair: both pay the same server time (Primero
simulator and sink, same processes, same requests, counted by the sink and the simulator),
so the ratio is the engine's own cost over the floor of any client that must make these
requests. The engine overlaps its referral GETs (4 threads) and its deliveries
(``concurrency`` = 4); the baseline does not, so the engine may even hide some server time.

Each run happens in a fresh process (``_sync_worker.py``); the figure is the median.
"""

from __future__ import annotations

import pstats
import sys
import tempfile
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _harness import Row, median, mib, new_kek, say, server, worker


def measure(
    referrals: int, repetitions: int, engine_repetitions: int
) -> tuple[Row, dict[str, Any]]:
    """The table row, and the engine's phase breakdown (median run) for the notes."""
    say(f"sync throughput: {referrals:,} referrals")
    bare_runs: list[dict[str, Any]] = []
    engine_runs: list[dict[str, Any]] = []
    with (
        server("_world.py", "--cases", str(referrals)) as primero,
        server("_sink.py") as sink,
        tempfile.TemporaryDirectory() as tmp,
    ):
        # Interleaved, so that a drift of the machine touches both sides alike.
        for n in range(max(repetitions, engine_repetitions)):
            if n < repetitions:
                bare_runs.append(worker("bare", "--primero", primero, "--sink", sink))
                say(f"  bare loop   {_rate(bare_runs[-1]):>9,.0f} referrals/s")
            if n < engine_repetitions:
                state = str(Path(tmp) / f"state-{n}.sqlite3")
                engine_runs.append(
                    worker(
                        "sync", "--primero", primero, "--sink", sink, "--state", state,
                        kek=new_kek(),
                    )
                )  # fmt: skip
                say(f"  engine      {_rate(engine_runs[-1]):>9,.0f} referrals/s")
    _check_same_requests(bare_runs[0], engine_runs[0], referrals)
    bare = median([r["seconds"] for r in bare_runs])
    engine = median([r["seconds"] for r in engine_runs])
    bare_cpu = median([r["cpu_seconds"] for r in bare_runs])
    engine_cpu = median([r["cpu_seconds"] for r in engine_runs])
    middle = sorted(engine_runs, key=lambda r: r["seconds"])[len(engine_runs) // 2]
    row = Row(
        name=f"Sync throughput, {referrals:,} referrals (two_stage=False) vs bare `requests` loop",
        baseline=f"{referrals / bare:,.0f} ref/s ({bare:.1f} s; CPU {bare_cpu:.1f} s)",
        measured=f"{referrals / engine:,.0f} ref/s ({engine:.1f} s; CPU {engine_cpu:.1f} s)",
        ratio=engine / bare,
        goal=1.5,
        peak_memory=(
            f"engine {mib(median([r['rss_peak_kib'] for r in engine_runs]))}, "
            f"bare {mib(median([r['rss_peak_kib'] for r in bare_runs]))}"
        ),
        repetitions=f"bare {len(bare_runs)}, engine {len(engine_runs)}",
    )
    return row, middle


def profile(referrals: int) -> str:
    """A cProfile run of the engine on a small world of its own; markdown for the notes."""
    say(f"profile: engine on {referrals:,} referrals (cProfile, every thread)")
    with (
        server("_world.py", "--cases", str(referrals)) as primero,
        server("_sink.py") as sink,
        tempfile.TemporaryDirectory() as tmp,
    ):
        path = str(Path(tmp) / "engine.prof")
        state = str(Path(tmp) / "state.sqlite3")
        args = ("sync", "--primero", primero, "--sink", sink, "--state", state)
        run = worker(*args, "--profile", path, kek=new_kek())
        main = pstats.Stats(f"{path}.main")
        threads = pstats.Stats(f"{path}.threads") if Path(f"{path}.threads").exists() else None
        return _profile_markdown(run, main, threads)


# Where self time goes, by library: (substring of the file or built-in's name, bucket).
_BUCKETS = (
    ("fhir_core", "FHIR models (fhir.resources / fhir_core / pydantic)"),
    ("fhir/resources", "FHIR models (fhir.resources / fhir_core / pydantic)"),
    ("pydantic", "FHIR models (fhir.resources / fhir_core / pydantic)"),
    ("sqlite3", "SQLite (sqlite3 C calls, incl. lock waits)"),
    ("sqlalchemy", "SQLAlchemy Core (statement building, results)"),
    ("_thread.lock", "waiting for other threads (futures, locks)"),
    ("SimpleQueue", "waiting for other threads (futures, locks)"),
    ("threading.py", "waiting for other threads (futures, locks)"),
    ("_socket", "socket I/O (waiting for the servers)"),
    ("select.", "socket I/O (waiting for the servers)"),
    ("requests/", "HTTP client (requests, urllib3, http.client)"),
    ("urllib3", "HTTP client (requests, urllib3, http.client)"),
    ("http/client", "HTTP client (requests, urllib3, http.client)"),
    ("email/", "HTTP client (requests, urllib3, http.client)"),
    ("posix.", "filesystem stat (requests: netrc and CA-bundle checks per request)"),
    ("genericpath", "filesystem stat (requests: netrc and CA-bundle checks per request)"),
    ("cryptography", "cryptography (AES-GCM payloads, AES-SIV codes, HMAC)"),
    ("_hashlib", "cryptography (AES-GCM payloads, AES-SIV codes, HMAC)"),
    ("hmac", "cryptography (AES-GCM payloads, AES-SIV codes, HMAC)"),
    ("json", "json (encode/decode)"),
    ("/adapter/mappings/", "adapter.mappings (own code)"),
    ("/adapter/privacy/", "adapter.privacy (own code)"),
    ("/adapter/state/", "adapter.state (own code)"),
    ("/adapter/jobs/", "adapter.jobs (own code)"),
    ("/adapter/primero/", "adapter.primero (own code)"),
)


def _bucket(func: tuple[str, int, str]) -> str:
    where = func[2] if func[0] == "~" else func[0]
    for needle, bucket in _BUCKETS:
        if needle in where:
            return bucket
    return "other"


def _self_time(stats: pstats.Stats) -> dict[str, float]:
    totals: dict[str, float] = {}
    for func, (_, _, tottime, _, _) in stats.stats.items():  # type: ignore[attr-defined]
        bucket = _bucket(func)
        totals[bucket] = totals.get(bucket, 0.0) + tottime
    return totals


def _profile_markdown(run: dict[str, Any], main: pstats.Stats, threads: pstats.Stats | None) -> str:
    main_self = _self_time(main)
    thread_self = _self_time(threads) if threads is not None else {}
    main_total, thread_total = sum(main_self.values()), sum(thread_self.values())
    lines = [
        f"Profiled run: {run['posts']:,} referrals in {run['seconds']:.1f} s under cProfile "
        "(roughly 2x slower than unprofiled; read the shares, not the seconds).",
        "",
        "Self time by library — main thread (pull, policy, mapping, page transactions) and "
        "pool threads (4 referral fetchers, 4 delivery workers; their C calls that release "
        "the GIL also absorb the wait to get it back):",
        "",
        "| Library | Main thread | Pool threads |",
        "|---|---:|---:|",
    ]
    for bucket in sorted(set(main_self) | set(thread_self), key=lambda b: -main_self.get(b, 0)):
        m, t = main_self.get(bucket, 0.0), thread_self.get(bucket, 0.0)
        if m < 0.01 * main_total and t < 0.01 * max(thread_total, 1e-9):
            continue
        lines.append(
            f"| {bucket} | {m:.1f} s ({100 * m / main_total:.0f}%) | "
            f"{t:.1f} s ({100 * t / max(thread_total, 1e-9):.0f}%) |"
        )
    lines += [
        "",
        "Main thread, adapter functions by cumulative time:",
        "",
        "| Function | Calls | Cumulative |",
        "|---|---:|---:|",
    ]
    own = [
        (func, calls, cumtime)
        for func, (_, calls, _, cumtime, _) in main.stats.items()  # type: ignore[attr-defined]
        if "/adapter/" in func[0]
    ]
    for func, calls, cumtime in sorted(own, key=lambda f: -f[2])[:14]:
        where = func[0].split("/adapter/", 1)[1]
        lines.append(f"| `adapter/{where}:{func[1]}` {func[2]} | {calls:,} | {cumtime:.2f} s |")
    return "\n".join(lines)


def _rate(run: dict[str, Any]) -> float:
    return float(run["posts"]) / float(run["seconds"])


def _check_same_requests(bare: dict[str, Any], engine: dict[str, Any], referrals: int) -> None:
    """Both sides made the same requests, or the ratio means nothing."""
    if engine["failed_attempts"]:
        raise RuntimeError(f"the engine retried {engine['failed_attempts']} deliveries")
    for key in ("cases", "posts"):
        if not bare[key] == engine[key] == referrals:
            raise RuntimeError(f"{key}: bare {bare[key]}, engine {engine[key]}, want {referrals}")
    if bare["primero_requests"] != engine["primero_requests"]:
        raise RuntimeError(
            f"Primero requests differ: bare {bare['primero_requests']}, "
            f"engine {engine['primero_requests']}"
        )


def main() -> None:
    referrals = int(sys.argv[1]) if len(sys.argv) > 1 else 10_000
    repetitions = int(sys.argv[2]) if len(sys.argv) > 2 else 3
    row, phases = measure(referrals, repetitions, repetitions)
    say(f"{row.name}: {row.measured} vs {row.baseline} = {row.ratio:.2f}x (goal ≤ {row.goal}x)")
    say(f"engine phases (s): {phases['phases']}")


if __name__ == "__main__":
    main()
