"""Secondary (not production): the engine against a bare ``requests`` loop, with a stub sink.

The headline rows are ``bench_production.py``'s (the whole command against the real FHIR
server, against a replay of its own traffic). This one times ``SyncJob.run()`` in-process
against an instant stub sink that skips the FHIR client, the Task lookup and the write-back,
so it says little about production; it is kept to compare with older BENCHMARKS.md runs.

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
