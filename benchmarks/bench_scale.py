"""How the engine's cost grows with the size of Primero: an incremental run, and peak memory.

    .venv/bin/python benchmarks/bench_scale.py [CASES] [REPETITIONS]

Worlds (``_world.py``, each served by its own process): consented CP cases of which one in
ten has a remote referral to the hospital (the rest have no service row, so they route
nowhere), the newest case always referred. Deliveries go to the instant sink (``_sink.py``);
the job is the health job with ``two_stage=False``.

**Incremental run.** In a world of ``CASES`` cases, one full sync first (setup, not timed);
then a CPO edits 100 referred cases through Primero's API (a new date of birth: real content
that health receives) and one incremental ``SyncJob.run()`` is timed — it must pull the 100,
fetch their referrals, decide, map, and deliver 100 ``update`` documents. Repeated with a new
edit of the same 100 cases each time; median. Baseline: exactly the same in a world of 100
cases in all, every one referred and every one edited. Why it is fair: both runs carry the
same 100 changes to the same sink; what differs is only what the adapter already knows (the
state store's links, outbox and audit rows from the first sync) and what Primero holds. The
ratio is what a run pays for the size of the history — it should be close to 1. Note that
the Primero simulator filters its in-memory cases without an index, so the list request of
the big world costs the server O(cases) time; the notes give that time.

**Peak memory.** The process's RSS high-water mark (VmHWM in /proc/<pid>/status) of the
worker process that runs one full sync of a world of ``CASES`` cases, against the same for
1,000 cases. The worker holds only the adapter (engine, client, SQLite state store, key ring,
policy); the simulator and the sink are other processes. It includes the interpreter and the
imports (``rss_start``, measured before the run, is given beside it). Streaming page by page
(pages of 1,000 cases) should keep it flat.
"""

from __future__ import annotations

import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _harness import Row, median, mib, new_kek, say, server, worker

CHANGED = 100
REFERRED_EVERY = 10


@dataclass
class _World:
    """One served world, its own state store and key, and the runs made on it."""

    url: str
    state: str
    kek: str = field(default_factory=new_kek)
    first: dict[str, Any] = field(default_factory=dict)
    runs: list[dict[str, Any]] = field(default_factory=list)

    def sync(self, sink: str) -> dict[str, Any]:
        return worker(
            "sync", "--primero", self.url, "--sink", sink, "--state", self.state, kek=self.kek
        )

    def edit_and_sync(self, sink: str, round_no: int) -> None:
        worker("edit", "--primero", self.url, "--count", str(CHANGED), "--round", str(round_no))
        run = self.sync(sink)
        if run["delivered"] != {"update": CHANGED}:
            raise RuntimeError(f"incremental run delivered {run['delivered']}, want {CHANGED}")
        self.runs.append(run)


def _long_only(cases: int) -> str:
    """Issue 8 states this figure at 100,000 cases; smaller runs say where that one is."""
    return "" if cases >= 100_000 else " (issue 8's 100,000: `scripts/bench --long`)"


def _incremental(cases: int, repetitions: int, tmp: str) -> tuple[_World, _World]:
    """Full syncs of the small and the big world, then incremental runs, alternating between
    the two worlds so that a drift of the (shared) machine touches both alike."""
    small_args = ("--cases", str(CHANGED), "--referred-every", "1")
    big_args = ("--cases", str(cases), "--referred-every", str(REFERRED_EVERY))
    with (
        server("_world.py", *small_args) as small_url,
        server("_world.py", *big_args) as big_url,
        server("_sink.py") as sink,
    ):
        small = _World(small_url, str(Path(tmp) / "small.sqlite3"))
        big = _World(big_url, str(Path(tmp) / "big.sqlite3"))
        for world, size in ((small, CHANGED), (big, cases)):
            world.first = world.sync(sink)
            say(
                f"  {size:>7,} cases: full sync {world.first['seconds']:.1f} s, "
                f"peak RSS {mib(world.first['rss_peak_kib'])}"
            )
        for round_no in range(1, repetitions + 1):
            small.edit_and_sync(sink, round_no)
            big.edit_and_sync(sink, round_no)
            say(
                f"  incremental run: {CHANGED} cases {small.runs[-1]['seconds'] * 1000:,.0f} ms, "
                f"{cases:,} cases {big.runs[-1]['seconds'] * 1000:,.0f} ms"
            )
    return small, big


def _full_sync_only(cases: int, repetitions: int, tmp: str) -> list[dict[str, Any]]:
    runs = []
    with (
        server("_world.py", "--cases", str(cases), "--referred-every", str(REFERRED_EVERY)) as url,
        server("_sink.py") as sink,
    ):
        for n in range(repetitions):
            state = str(Path(tmp) / f"memory-{cases}-{n}.sqlite3")
            runs.append(
                worker("sync", "--primero", url, "--sink", sink, "--state", state, kek=new_kek())
            )
            say(f"  {cases:>7,} cases: full sync, peak RSS {mib(runs[-1]['rss_peak_kib'])}")
    return runs


def measure(cases: int, repetitions: int) -> tuple[list[Row], dict[str, Any]]:
    """The incremental-run and peak-memory rows, and details for the notes."""
    say(f"scale: {cases:,} cases vs 100 (incremental) and 1,000 (memory)")
    with tempfile.TemporaryDirectory() as tmp:
        memory_base = _full_sync_only(1000, repetitions, tmp)
        small_world, big_world = _incremental(cases, repetitions, tmp)
    small_runs, big_runs, big_first = small_world.runs, big_world.runs, big_world.first
    small = median([r["seconds"] for r in small_runs])
    big = median([r["seconds"] for r in big_runs])
    incremental = Row(
        name=f"Incremental run: {CHANGED} changed among {cases:,} cases vs {CHANGED} in all"
        + _long_only(cases),
        baseline=f"{small * 1000:,.0f} ms",
        measured=f"{big * 1000:,.0f} ms",
        ratio=big / small,
        goal=2.0,
        peak_memory=(
            f"{mib(median([r['rss_peak_kib'] for r in big_runs]))} vs "
            f"{mib(median([r['rss_peak_kib'] for r in small_runs]))}"
        ),
        repetitions=str(len(big_runs)),
    )
    base_peak = median([r["rss_peak_kib"] for r in memory_base])
    base_start = median([r["rss_start_kib"] for r in memory_base])
    memory = Row(
        name=f"Peak RSS of the sync process: full sync of {cases:,} cases vs 1,000"
        + _long_only(cases),
        baseline=f"{mib(base_peak)} (start {mib(base_start)})",
        measured=f"{mib(big_first['rss_peak_kib'])} (start {mib(big_first['rss_start_kib'])})",
        ratio=big_first["rss_peak_kib"] / base_peak,
        goal=1.25,
        peak_memory="(this row)",
        repetitions=f"1k: {len(memory_base)}, {cases // 1000}k: 1",
    )
    details = {
        "big_first": big_first,
        "big_incremental": sorted(big_runs, key=lambda r: r["seconds"])[len(big_runs) // 2],
        "small_incremental": sorted(small_runs, key=lambda r: r["seconds"])[len(small_runs) // 2],
    }
    return [incremental, memory], details


def main() -> None:
    cases = int(sys.argv[1]) if len(sys.argv) > 1 else 20_000
    repetitions = int(sys.argv[2]) if len(sys.argv) > 2 else 3
    rows, details = measure(cases, repetitions)
    for row in rows:
        say(f"{row.name}: {row.measured} vs {row.baseline} = {row.ratio:.2f}x ≤ {row.goal}?")
    for name, run in details.items():
        say(f"{name}: {run['seconds']:.2f} s, phases {run['phases']}")


if __name__ == "__main__":
    main()
