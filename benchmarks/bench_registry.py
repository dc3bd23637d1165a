"""Offender registry at 1,000,000 entries: import time and check latency (issue 6).

    .venv/bin/python benchmarks/bench_registry.py                 # 1,000,000 entries, ~4 min
    .venv/bin/python benchmarks/bench_registry.py --entries 100000 --quick

What it does, on SQLite in a temporary directory:

1. generates synthetic Pakistani identities (Zipf-weighted given names, so blocks are as uneven
   as real ones; distinct random CNICs; DOBs 1960-2005);
2. **import**: writes the first ``--import-rows`` as a CSV, signs it (Ed25519 over its SHA-256)
   and times ``Registry.import_signed_csv`` end to end (verify, parse, key, seal, insert);
3. **bulk build**: the remaining entries through the same preparation and insert code, the
   preparation forked over the CPU cores (the benchmark's shortcut, reported separately);
4. **in-process**: the matching stage alone (both stages + decision, one read transaction) and
   the whole ``Registry.check`` (quota, consent, matching, record, audit, abuse detection)
   for exact hits (DO_NOT_ENGAGE), fuzzy-only matches (PENDING_REVIEW) and misses (CLEAR);
   p50/p99 of each, and a two-sample Kolmogorov-Smirnov test of hit vs miss check times
   (privacy.md §7 item 3);
5. **HTTP**: the same three kinds through ``POST /v1/registry/checks`` on a uvicorn server on
   127.0.0.1 (a child process of this script, stopped by its PID).

Prints a text block to paste into BENCHMARKS.md. Goals (issue 6 brief): matching p99 ≤ 1 ms
exact and ≤ 10 ms fuzzy in-process.
"""

from __future__ import annotations

import argparse
import base64
import csv
import math
import multiprocessing
import os
import random
import secrets
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from functools import partial
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import httpx
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from adapter.privacy import KeyRing
from adapter.registry import (
    CSV_COLUMNS,
    CheckRequest,
    Registry,
    RegistrySettings,
    ingest,
    sign_file,
)
from adapter.registry import checks as check_module
from adapter.registry.index import block_rows, index_query
from adapter.state import StateStore

MALE = (
    "Ali Ahmed Hassan Hussain Bilal Usman Umar Hamza Imran Kamran Asif Arif Tariq Zafar Naveed "
    "Shahid Sajid Khalid Faisal Fahad Adnan Aamir Abid Adeel Afzal Akbar Akram Amjad Anwar Arshad "
    "Asad Ashfaq Aslam Ayaz Azhar Babar Danish Ehsan Farhan Farooq Ghulam Haider Haris Iqbal "
    "Irfan Ishaq Jamil Javed Junaid Kashif Kaleem Majid Mansoor Masood Mehmood Mubashir Mudassar "
    "Mushtaq Nadeem Naeem Nasir Nauman Nawaz Noman Omer Pervaiz Qaiser Qasim Rafiq Rashid Rauf "
    "Rehan Rizwan Saad Saeed Salman Saleem Sami Sarfraz Shafiq Shahzad Shakeel Shoaib Sohail "
    "Sultan Tahir Talha Tanveer Tauseef Usama Waheed Waqar Waqas Waseem Yasir Younas Yousaf "
    "Zahid Zeeshan Zubair Zulfiqar Raza Hamid Jawad Abbas Anees Atif Bashir Fawad Hafeez"
).split()
FEMALE = (
    "Ayesha Fatima Zainab Khadija Maryam Amna Sana Hina Saima Nadia Rabia Sadia Asma Bushra Farah "
    "Huma Iqra Javeria Kiran Lubna Mehwish Naila Nazia Noreen Rubina Samina Shazia Sidra Sumaira "
    "Tahira Uzma Yasmin Zubaida Aqsa Anum Mahnoor Hafsa Rukhsana Shabana Parveen Nasreen Rizwana"
).split()
SURNAMES = (
    "Khan Malik Butt Chaudhry Qureshi Sheikh Awan Raja Mirza Siddiqui Abbasi Bhatti Gill Cheema "
    "Baig Rana Jatt Arain Rajput Shah Syed Hashmi Gillani Niazi Afridi Yousafzai Khattak Baloch "
    "Memon Soomro Jamali Mengal Ansari Farooqi"
).split()


def zipf_choice(rnd: random.Random, items: Sequence[str], weights: list[float]) -> str:
    return rnd.choices(items, weights)[0]


def make_people(n: int, seed: int = 7) -> list[dict[str, str]]:
    """``n`` synthetic identities as CSV rows (distinct CNICs)."""
    rnd = random.Random(seed)
    male_w = [1 / (i + 1) ** 0.8 for i in range(len(MALE))]
    female_w = [1 / (i + 1) ** 0.8 for i in range(len(FEMALE))]
    cnics: set[str] = set()
    rows = []
    for i in range(n):
        while True:
            cnic = f"{rnd.randint(1, 8)}{rnd.randrange(10**11):011d}{rnd.randrange(10)}"
            if cnic not in cnics:
                cnics.add(cnic)
                break
        father = f"{zipf_choice(rnd, MALE, male_w)} {rnd.choice(SURNAMES)}"
        if rnd.random() < 0.8:
            given = zipf_choice(rnd, MALE, male_w)
            prefix = "Muhammad " if rnd.random() < 0.45 else ""
            second = f" {zipf_choice(rnd, MALE, male_w)}" if rnd.random() < 0.4 else ""
            name = f"{prefix}{given}{second} {rnd.choice(SURNAMES)}"
        else:
            name = (
                f"{zipf_choice(rnd, FEMALE, female_w)} {rnd.choice(['Bibi', 'Begum', *SURNAMES])}"
            )
        rows.append(
            {
                "source_ref": f"NSOR-{i:08d}",
                "cnic": f"{cnic[:5]}-{cnic[5:12]}-{cnic[12]}",
                "full_name": name,
                "father_name": father,
                "full_name_urdu": "",
                "father_name_urdu": "",
                "date_of_birth": f"{rnd.randint(1960, 2005)}-{rnd.randint(1, 12):02d}-"
                f"{rnd.randint(1, 28):02d}",
                "offence_code": "ppc_377a",
                "conviction_date": f"{rnd.randint(2010, 2025)}-01-15",
                "court": "lhc",
            }
        )
    return rows


def spelling_variant(name: str) -> str:
    """A realistic re-spelling: Muhammad → Mohd., and one vowel change elsewhere."""
    name = name.replace("Muhammad ", "Mohd. ")
    for a, b in (("ee", "i"), ("oo", "u"), ("ai", "ay"), ("a", "e")):
        if a in name[3:]:
            return name[:3] + name[3:].replace(a, b, 1)
    return name


# --- statistics --------------------------------------------------------------------------------


def pct(values: Sequence[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, math.ceil(q * len(ordered)) - 1))]


def ks_test(a: Sequence[float], b: Sequence[float]) -> tuple[float, float]:
    """Two-sample Kolmogorov-Smirnov D and its asymptotic p-value."""
    xs, ys = sorted(a), sorted(b)
    i = j = 0
    d = 0.0
    while i < len(xs) and j < len(ys):
        if xs[i] <= ys[j]:
            i += 1
        else:
            j += 1
        d = max(d, abs(i / len(xs) - j / len(ys)))
    en = math.sqrt(len(xs) * len(ys) / (len(xs) + len(ys)))
    lam = (en + 0.12 + 0.11 / en) * d
    p = 2 * sum((-1) ** (k - 1) * math.exp(-2 * k * k * lam * lam) for k in range(1, 101))
    return d, max(0.0, min(1.0, p))


def timed(fn: Callable[[], object]) -> float:
    start = time.perf_counter()
    fn()
    return (time.perf_counter() - start) * 1000


def line(label: str, ms: Sequence[float]) -> str:
    return f"| {label:<44} | {statistics.median(ms):8.2f} | {pct(ms, 0.99):8.2f} | {len(ms):>6,} |"


# --- building ------------------------------------------------------------------------------------

_WORKER_CTX: Any = None
_ENTRY_COLUMNS = (
    "id entry_ref source source_ref import_id cnic_mac status sealed wrapped_dek block_keys "
    "created_at updated_at review_due"
).split()
_BLOCK_COLUMNS = "block_key entry_id name_keys father_keys dob_mac".split()
_INSERT_ENTRIES = (
    "INSERT INTO registry_entries (id, entry_ref, source, source_ref, import_id, cnic_mac, "
    "status, sealed, wrapped_dek, block_keys, created_at, updated_at, review_due) "
    "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
)
_INSERT_BLOCKS = (
    "INSERT INTO registry_blocks (block_key, entry_id, name_keys, father_keys, dob_mac) "
    "VALUES (?, ?, ?, ?, ?)"
)
Rows = list[tuple[Any, ...]]
ESTABLISHMENTS = 64  # the checks' senders, in turn (in-process) or one per client (HTTP)


def _sqlite_time(value: datetime) -> str:
    # What SQLAlchemy's SQLite DateTime stores for UTCDateTime (naive UTC, microseconds).
    return value.astimezone(UTC).replace(tzinfo=None).strftime("%Y-%m-%d %H:%M:%S.%f")


def _prepare_chunk(job: tuple[int, list[dict[str, str]]]) -> tuple[Rows, Rows]:
    """Parse, key and seal one chunk exactly as an import does; rows ready for executemany."""
    first_id, rows = job
    ctx = _WORKER_CTX
    offences = frozenset(ctx.settings.offences)
    now = datetime.now(UTC)
    entries: Rows = []
    blocks: Rows = []
    for offset, row in enumerate(rows):
        draft = ingest.parse_row(row, source="import:bench_bulk", offences=offences)
        prepared = ingest._prepare(ctx, draft, now, None)
        values = {**prepared.row, "id": first_id + offset}
        for key in ("created_at", "updated_at", "review_due"):
            values[key] = _sqlite_time(values[key])
        entries.append(tuple(values[c] for c in _ENTRY_COLUMNS))
        for block in block_rows(prepared.index, first_id + offset):
            blocks.append(tuple(block[c] for c in _BLOCK_COLUMNS))
    return entries, blocks


def bulk_build(registry: Registry, rows: list[dict[str, str]], workers: int) -> float:
    """The benchmark's shortcut for the entries beyond the timed import: the same parse, key
    and seal code (``ingest.parse_row`` / ``ingest._prepare``) forked over ``workers``
    processes, rows written with the driver's executemany and ids assigned here."""
    global _WORKER_CTX
    _WORKER_CTX = registry.context
    start = time.perf_counter()
    store = registry.context.store
    with store.transaction() as conn:
        top = conn.exec_driver_sql("SELECT coalesce(max(id), 0) FROM registry_entries")
        first = int(top.scalar_one()) + 1
    jobs = [(first + i, rows[i : i + 5000]) for i in range(0, len(rows), 5000)]
    context = multiprocessing.get_context("fork")
    with context.Pool(workers) as pool:
        for entries, blocks in pool.imap(_prepare_chunk, jobs):
            with store.transaction() as conn:
                conn.exec_driver_sql(_INSERT_ENTRIES, entries)
                conn.exec_driver_sql(_INSERT_BLOCKS, blocks)
    return time.perf_counter() - start


# --- requests ------------------------------------------------------------------------------------


def requests_for(
    rows: list[dict[str, str]], n: int, seed: int = 11
) -> dict[str, list[dict[str, str]]]:
    """Request bodies: exact hits, fuzzy-only (new CNIC, re-spelt name), clear misses."""
    rnd = random.Random(seed)
    chosen = rnd.sample(rows, 2 * n)
    consent = iter(range(10**9))

    def body(cnic: str, name: str, father: str, dob: str) -> dict[str, str]:
        return {
            "cnic": cnic,
            "full_name": name,
            "father_name": father,
            "date_of_birth": dob,
            "consent_ref": f"CF-{next(consent):09d}-{secrets.token_hex(3)}",
            "position": "Teacher",
            "purpose": "education",
        }

    def fresh_cnic() -> str:
        # Registered CNICs are random 13-digit strings; a middle part starting 9 plus the
        # fresh-check is overwhelmingly new, and any collision would only show as a hit.
        middle = f"9{rnd.randrange(10**6):06d}"
        return f"{rnd.randint(1, 8)}{rnd.randrange(10**4):04d}-{middle}-{rnd.randrange(10)}"

    exact = [
        body(r["cnic"], r["full_name"], r["father_name"], r["date_of_birth"]) for r in chosen[:n]
    ]
    fuzzy = [
        body(fresh_cnic(), spelling_variant(r["full_name"]), r["father_name"], r["date_of_birth"])
        for r in chosen[n:]
    ]
    # Misses: people drawn from the same name distribution (so their blocks are as large as
    # a hit's), never registered: a fair hit-vs-miss timing comparison.
    clear = [
        body(fresh_cnic(), r["full_name"], r["father_name"], r["date_of_birth"])
        for r in make_people(n, seed=seed + 1)
    ]
    return {"exact": exact, "fuzzy": fuzzy, "clear": clear}


def fresh(body: dict[str, str]) -> dict[str, str]:
    return {**body, "consent_ref": f"CF-{secrets.token_hex(8)}"}


# --- HTTP server child ---------------------------------------------------------------------------


def serve(url: str, port: int, workers: int) -> None:
    """The registry app on ``port`` in ``workers`` processes (the product's serving code)."""
    from adapter.registry.api import serve_registry

    kek = base64.b64decode(os.environ["BENCH_REGISTRY_KEK"])
    settings = RegistrySettings.model_validate_json(os.environ["BENCH_REGISTRY_SETTINGS"])
    serve_registry(
        url,
        kek,
        settings,
        port=port,
        workers=workers,
        on_ready=lambda base: print(f"READY {base}", flush=True),
    )


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


# --- concurrent load (a process of its own) -------------------------------------------------------


def load(base: str, keys_file: str, bodies_file: str, clients: int, seconds: float) -> None:
    """``clients`` threads, each with one keep-alive connection (stdlib ``http.client``, the
    cheapest Python client, so the generator takes as little of the CPU as it can), posting
    checks in a loop for ``seconds``; prints one JSON line of what it saw."""
    import http.client
    import json
    import threading
    from urllib.parse import urlsplit

    parts = urlsplit(base)
    bodies = json.loads(Path(bodies_file).read_text())
    keys = json.loads(Path(keys_file).read_text())
    latencies: list[list[float]] = [[] for _ in range(clients)]
    statuses: list[dict[int, int]] = [{} for _ in range(clients)]
    sizes: set[int] = set()
    start_gate = threading.Barrier(clients + 1)
    stop_at = [0.0]

    def client(n: int) -> None:
        conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=60)
        # Each client is one establishment's system: its checks count against its quota.
        key = keys[n % len(keys)]
        headers = {"Authorization": f"Bearer {key}", "Content-Type": "application/json"}
        mine, seen = latencies[n], statuses[n]
        i = n
        start_gate.wait()
        while time.perf_counter() < stop_at[0]:
            body = dict(bodies[i % len(bodies)])
            body["consent_ref"] = f"CF-{n:03d}-{i:09d}-{secrets.token_hex(4)}"
            payload = json.dumps(body)
            started = time.perf_counter()
            conn.request("POST", "/v1/registry/checks", payload, headers)
            response = conn.getresponse()
            content = response.read()
            mine.append((time.perf_counter() - started) * 1000)
            seen[response.status] = seen.get(response.status, 0) + 1
            if response.status == 200:
                sizes.add(len(content))
            i += clients
        conn.close()

    threads = [threading.Thread(target=client, args=(n,), daemon=True) for n in range(clients)]
    for thread in threads:
        thread.start()
    cpu = time.process_time()
    began = time.perf_counter()
    stop_at[0] = began + seconds
    start_gate.wait()
    for thread in threads:
        thread.join()
    wall = time.perf_counter() - began
    merged = [ms for each in latencies for ms in each]
    counts: dict[str, int] = {}
    for each in statuses:
        for status, count in each.items():
            counts[str(status)] = counts.get(str(status), 0) + count
    print(
        json.dumps(
            {
                "clients": clients,
                "seconds": wall,
                "checks": len(merged),
                "rate": counts.get("200", 0) / wall,
                "p50": statistics.median(merged) if merged else 0.0,
                "p99": pct(merged, 0.99) if merged else 0.0,
                "statuses": counts,
                "sizes": sorted(sizes),
                "load_cpu_s": time.process_time() - cpu,
            }
        ),
        flush=True,
    )


def tree_cpu_seconds(pid: int) -> float:
    """CPU seconds (user + system) of ``pid`` and its children so far, from /proc."""
    ticks = os.sysconf("SC_CLK_TCK")
    total = 0.0
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(stat.parent.name) == pid or int(fields[1]) == pid:
            total += (int(fields[11]) + int(fields[12])) / ticks
    return total


def start_server(url: str, workers: int, env: dict[str, str]) -> tuple[subprocess.Popen[str], str]:
    server = subprocess.Popen(
        [sys.executable, __file__, "--serve", url, str(free_port()), str(workers)],
        stdout=subprocess.PIPE,
        text=True,
        env=env,
    )
    assert server.stdout is not None
    base = server.stdout.readline().split()[1]
    for _ in range(200):
        try:
            httpx.get(base + "/v1/registry/checks/RC-0000000000000000")
            break
        except httpx.TransportError:
            time.sleep(0.05)
    return server, base


def stop_server(server: subprocess.Popen[str]) -> None:
    server.send_signal(signal.SIGTERM)
    try:
        server.wait(timeout=30)
    except subprocess.TimeoutExpired:
        server.kill()
        server.wait()


def concurrency(
    url: str,
    env: dict[str, str],
    api_keys: list[str],
    kinds: dict[str, list[dict[str, str]]],
    workers: int,
    clients: Sequence[int],
    seconds: float,
) -> list[dict[str, Any]]:
    """Throughput over HTTP: one worker (the baseline) and ``workers``, each at every count
    of ``clients``, the load generator a separate process; exact, fuzzy and clear bodies
    interleaved."""
    import json

    mixed = [body for trio in zip(*kinds.values(), strict=False) for body in trio]
    bodies_file = Path(tempfile.mkstemp(prefix="bench-registry-bodies-", suffix=".json")[1])
    bodies_file.write_text(json.dumps(mixed))
    keys_file = Path(tempfile.mkstemp(prefix="bench-registry-keys-", suffix=".json")[1])
    keys_file.write_text(json.dumps(api_keys))
    rows: list[dict[str, Any]] = []
    try:
        for count in sorted({1, workers}):
            server, base = start_server(url, count, env)
            try:
                for n in clients:
                    print(f"  {count} worker(s), {n} clients, {seconds:.0f} s …", flush=True)
                    cpu_before = tree_cpu_seconds(server.pid)
                    done = subprocess.run(
                        [
                            sys.executable,
                            __file__,
                            "--load",
                            base,
                            str(keys_file),
                            str(bodies_file),
                            str(n),
                            str(seconds),
                        ],
                        capture_output=True,
                        text=True,
                        check=True,
                        env=env,
                    )
                    row = json.loads(done.stdout.strip().splitlines()[-1])
                    server_cpu = tree_cpu_seconds(server.pid) - cpu_before
                    rows.append({**row, "workers": count, "server_cpu_s": server_cpu})
            finally:
                stop_server(server)
    finally:
        bodies_file.unlink(missing_ok=True)
        keys_file.unlink(missing_ok=True)
    return rows


# --- main ----------------------------------------------------------------------------------------


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--entries", type=int, default=1_000_000)
    parser.add_argument("--import-rows", type=int, default=100_000)
    parser.add_argument("--checks", type=int, default=1000, help="per kind, in-process")
    parser.add_argument("--http-checks", type=int, default=300, help="per kind, over HTTP")
    parser.add_argument(
        "--clients", default="32,128", help="concurrent HTTP clients, comma-separated"
    )
    parser.add_argument("--workers", type=int, help="server processes (default: the cores)")
    parser.add_argument("--load-seconds", type=float, default=10.0, help="per throughput row")
    parser.add_argument("--db", type=Path, help="build the registry here and keep it, or reuse it")
    parser.add_argument("--quick", action="store_true", help="small sizes for a smoke run")
    parser.add_argument("--serve", nargs=3, help=argparse.SUPPRESS)
    parser.add_argument("--load", nargs=5, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        serve(args.serve[0], int(args.serve[1]), int(args.serve[2]))
        return
    if args.load:
        base, key, bodies, clients, seconds = args.load
        load(base, key, bodies, int(clients), float(seconds))
        return
    if args.quick:
        args.entries, args.import_rows, args.checks, args.http_checks = 20_000, 5_000, 200, 100
        args.load_seconds = min(args.load_seconds, 5.0)
    result = measure(
        args.entries,
        args.import_rows,
        args.checks,
        args.http_checks,
        clients=[int(n) for n in args.clients.split(",") if n.strip()],
        workers=args.workers,
        load_seconds=args.load_seconds,
        keep=args.db,
    )
    print(report(result))


def measure(
    entries: int,
    import_rows: int,
    checks: int,
    http_checks: int,
    *,
    clients: Sequence[int] = (32, 128),
    workers: int | None = None,
    load_seconds: float = 10.0,
    keep: Path | None = None,
) -> dict[str, Any]:
    """Build a registry of ``entries`` (``import_rows`` of them by a signed import) and time
    ``checks`` in-process and ``http_checks`` HTTP checks per kind, then the throughput over
    HTTP at each of ``clients`` with one worker and with ``workers`` (default: the cores);
    the figures as a dict (``report`` renders them, ``run.py`` makes BENCHMARKS.md rows of
    them). ``keep``: build into that folder and keep it, or reuse the registry built there."""
    import json

    import_rows = min(import_rows, entries)
    tmp = keep or Path(tempfile.mkdtemp(prefix="bench-registry-"))
    tmp.mkdir(parents=True, exist_ok=True)
    url = f"sqlite:///{tmp}/registry.sqlite3"
    meta_path = tmp / "meta.json"
    print(f"generating {entries:,} identities …", flush=True)
    people = make_people(entries)
    if meta_path.exists():
        meta = json.loads(meta_path.read_text())
        if meta["entries"] != entries:
            raise SystemExit(f"{tmp} holds {meta['entries']:,} entries, not {entries:,}")
        print(f"reusing the registry in {tmp}", flush=True)
        kek = base64.b64decode(meta["kek"])
        settings = RegistrySettings.model_validate_json(meta["settings"])
        api_key = meta["api_key"]
        store = StateStore(url)
        registry = Registry.open(store, KeyRing.open(store, kek), settings)
    else:
        officer_key = Ed25519PrivateKey.generate()
        public = base64.b64encode(
            officer_key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
        ).decode()
        settings = RegistrySettings(officer_keys={"bench.officer": public})
        kek = secrets.token_bytes(32)
        store = StateStore(url)
        ring = KeyRing.init(store, kek, ["health"])
        registry = Registry.open(store, ring, settings)
        _, api_key = registry.add_establishment(
            "BENCH-001",
            "Benchmark School",
            (("Officer One", "one@school.example"), ("Officer Two", "two@school.example")),
            registered_by="bench",
            daily_quota=10_000_000,
            monthly_quota=100_000_000,
        )
        csv_path, sig_path = tmp / "extract.csv", tmp / "extract.csv.sig"
        with csv_path.open("w", newline="", encoding="utf-8") as handle:
            writer = csv.DictWriter(handle, fieldnames=CSV_COLUMNS)
            writer.writeheader()
            writer.writerows(people[:import_rows])
        sig_path.write_bytes(sign_file(csv_path, officer_key))

        print(f"importing {import_rows:,} signed rows …", flush=True)
        result = registry.import_signed_csv(csv_path, sig_path, "bench.officer")
        cores = max(1, os.cpu_count() or 1)
        rest = people[import_rows:]
        print(f"bulk-building {len(rest):,} more ({cores} preparing processes) …", flush=True)
        bulk_seconds = bulk_build(registry, rest, cores) if rest else 0.0
        meta = {
            "entries": entries,
            "imported": result.created,
            "import_seconds": result.seconds,
            "bulk_rows": len(rest),
            "bulk_seconds": bulk_seconds,
            "preparers": cores,
            "kek": base64.b64encode(kek).decode(),
            "settings": settings.model_dump_json(),
            "api_key": api_key,
        }
    # The checks come from many establishments, as in production (each within its quota):
    # one establishment making every check would make its own attempt counts the cost.
    api_keys = meta.get("api_keys") or [api_key]
    for n in range(len(api_keys), ESTABLISHMENTS):
        api_keys.append(
            registry.add_establishment(
                f"BENCH-{n + 1:03d}",
                f"Benchmark School {n + 1}",
                (("Officer One", "one@school.example"), ("Officer Two", "two@school.example")),
                registered_by="bench",
                daily_quota=10_000_000,
                monthly_quota=100_000_000,
            )[1]
        )
    meta["api_keys"] = api_keys
    if keep is not None:
        meta_path.write_text(json.dumps(meta))
    establishments = [registry.authenticate(key) for key in api_keys]
    db_mib = sum(f.stat().st_size for f in tmp.glob("registry.sqlite3*")) / 2**20

    kinds = requests_for(people, checks)
    ctx = registry.context
    exact_ms: dict[str, list[float]] = {k: [] for k in kinds}
    fuzzy_ms: dict[str, list[float]] = {k: [] for k in kinds}
    candidates: list[int] = []
    stage: dict[str, list[float]] = {k: [] for k in kinds}
    full: dict[str, list[float]] = {k: [] for k in kinds}
    outcomes: dict[str, dict[str, int]] = {k: {} for k in kinds}
    sizes: set[int] = set()
    print("measuring in-process …", flush=True)
    for i in range(checks):
        for kind, bodies in kinds.items():
            request = CheckRequest.model_validate(fresh(bodies[i]))
            query = index_query(
                request.cnic,
                request.full_name,
                request.father_name,
                request.date_of_birth,
                ctx.keys,
            )

            with ctx.store.engine.connect() as conn:
                exact_ms[kind].append(timed(partial(check_module.exact_stage, ctx, conn, query)))
                started = time.perf_counter()
                found = check_module.fuzzy_stage(ctx, conn, query)
                fuzzy_ms[kind].append((time.perf_counter() - started) * 1000)
                candidates.append(len(found))
                stage[kind].append(timed(partial(check_module.match, ctx, conn, query)))
            started = time.perf_counter()
            answer = registry.check(request, establishments[i % len(establishments)])
            full[kind].append((time.perf_counter() - started) * 1000)
            outcomes[kind][str(answer.status)] = outcomes[kind].get(str(answer.status), 0) + 1
            sizes.add(len(answer.to_json(settings.answer_bytes)))
    d, p = ks_test(full["exact"], full["clear"])

    print("measuring over HTTP …", flush=True)
    env = {
        **os.environ,
        "BENCH_REGISTRY_KEK": base64.b64encode(kek).decode(),
        "BENCH_REGISTRY_SETTINGS": settings.model_dump_json(),
    }
    http: dict[str, list[float]] = {k: [] for k in kinds}
    http_sizes: set[int] = set()
    server, base = start_server(url, 1, env)
    try:
        with httpx.Client(base_url=base) as client:
            for i in range(http_checks):
                headers = {"Authorization": f"Bearer {api_keys[i % len(api_keys)]}"}
                for kind, bodies in kinds.items():
                    body = fresh(bodies[i])
                    start = time.perf_counter()
                    response = client.post("/v1/registry/checks", json=body, headers=headers)
                    http[kind].append((time.perf_counter() - start) * 1000)
                    response.raise_for_status()
                    http_sizes.add(len(response.content))
    finally:
        stop_server(server)
    cores = max(1, os.cpu_count() or 1)
    print("measuring throughput over HTTP …", flush=True)
    load_rows = concurrency(url, env, api_keys, kinds, workers or cores, clients, load_seconds)
    store.close()
    if keep is None:
        shutil.rmtree(tmp, ignore_errors=True)
    return {
        "entries": entries,
        "imported": meta["imported"],
        "import_seconds": meta["import_seconds"],
        "import_rate": meta["imported"] / meta["import_seconds"],
        "bulk_rows": meta["bulk_rows"],
        "bulk_seconds": meta["bulk_seconds"],
        "workers": meta["preparers"],
        "load": load_rows,
        "db_mib": db_mib,
        "sizes": sorted(sizes),
        "http_sizes": sorted(http_sizes),
        "outcomes": outcomes,
        "candidates": candidates,
        "ks": (d, p),
        "exact_ms": exact_ms,
        "fuzzy_ms": fuzzy_ms,
        "stage": stage,
        "full": full,
        "http": http,
    }


def report(r: dict[str, Any]) -> str:
    """The text block to paste into BENCHMARKS.md."""
    exact_ms, fuzzy_ms, stage, full, http = (
        r["exact_ms"],
        r["fuzzy_ms"],
        r["stage"],
        r["full"],
        r["http"],
    )
    rate, candidates, (d, p) = r["import_rate"], r["candidates"], r["ks"]
    return "\n".join(
        [
            "",
            f"### Offender registry, {r['entries']:,} entries (SQLite, {os.cpu_count()} cores, "
            f"Python {sys.version.split()[0]})",
            "",
            f"- signed import: {r['imported']:,} rows in {r['import_seconds']:.1f} s = "
            f"{rate:,.0f} rows/s (verify + parse + key + seal + insert; 1,000,000 rows ≈ "
            f"{1_000_000 / rate:.0f} s)",
            f"- bulk build of the other {r['bulk_rows']:,}: {r['bulk_seconds']:.1f} s "
            f"({r['workers']} forked preparers); database {r['db_mib']:,.0f} MiB",
            f"- answer sizes (bytes) in-process {r['sizes']}, over HTTP {r['http_sizes']}",
            "- outcomes: " + "; ".join(f"{k} {v}" for k, v in r["outcomes"].items()),
            f"- fuzzy candidates scored per check: median {statistics.median(candidates):.0f}, "
            f"p99 {pct(candidates, 0.99):.0f}, max {max(candidates)}",
            f"- timing side channel, check() hit vs miss: KS D = {d:.3f}, p = {p:.3g}",
            "",
            "| latency (ms)                                 |      p50 |      p99 |      n |",
            "|----------------------------------------------|---------:|---------:|-------:|",
            line("exact stage alone, hit (goal p99 ≤ 1)", exact_ms["exact"]),
            line("exact stage alone, miss (goal p99 ≤ 1)", exact_ms["clear"]),
            line("fuzzy stage alone, fuzzy-only (goal p99 ≤ 10)", fuzzy_ms["fuzzy"]),
            line("fuzzy stage alone, miss (goal p99 ≤ 10)", fuzzy_ms["clear"]),
            line("both stages + decision, exact hit", stage["exact"]),
            line("both stages + decision, fuzzy-only", stage["fuzzy"]),
            line("both stages + decision, miss", stage["clear"]),
            line("Registry.check, exact hit → DO_NOT_ENGAGE", full["exact"]),
            line("Registry.check, fuzzy-only → PENDING_REVIEW", full["fuzzy"]),
            line("Registry.check, miss → CLEAR", full["clear"]),
            line("HTTP POST /v1/registry/checks, exact hit", http["exact"]),
            line("HTTP POST /v1/registry/checks, fuzzy-only", http["fuzzy"]),
            line("HTTP POST /v1/registry/checks, miss", http["clear"]),
            "",
            f"Throughput over HTTP (answer floor {RegistrySettings().answer_min_ms} ms on; "
            "exact, fuzzy and clear checks interleaved; the load generator is a process of "
            "its own on the same cores):",
            "",
            "| workers | clients | checks/s | × 1 worker | p50 ms | p99 ms | non-200 | sizes "
            "| server CPU ms/check | generator CPU ms/check |",
            "|--------:|--------:|---------:|-----------:|-------:|-------:|--------:|-------"
            "|---:|---:|",
            *load_lines(r["load"]),
        ]
    )


def load_lines(rows: Sequence[dict[str, Any]]) -> list[str]:
    single = {row["clients"]: row["rate"] for row in rows if row["workers"] == 1}
    lines = []
    for row in rows:
        base = single.get(row["clients"]) or float("nan")
        refused = sum(n for status, n in row["statuses"].items() if status != "200")
        checks = max(1, row["checks"])
        lines.append(
            f"| {row['workers']:>7} | {row['clients']:>7} | {row['rate']:8.0f} | "
            f"{row['rate'] / base:9.2f}× | {row['p50']:6.1f} | {row['p99']:6.1f} | "
            f"{refused:>7} | {row['sizes']} | {1000 * row['server_cpu_s'] / checks:.2f} | "
            f"{1000 * row['load_cpu_s'] / checks:.2f} |"
        )
    return lines


if __name__ == "__main__":
    main()
