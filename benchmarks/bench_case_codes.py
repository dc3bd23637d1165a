"""Case-code throughput on one core: issue and verify, against a baseline in the same run.

    .venv/bin/python benchmarks/bench_case_codes.py [N]

Prints operations per second for: the baseline (bare HMAC-SHA256 of 16 bytes), issuing a case
code (``KeyRing.case_code``: AES-SIV-512 + base32), verifying one (``KeyRing.open_case_code``:
parse, key lookup, grace check, AES-SIV open), and a short printed code. The ratio is each
operation's time over the baseline's, so it travels between machines better than ops/s.
Single-threaded on purpose: the number is per core. privacy.md §1.2 measured ~255k SIV ops/s on
a 2-core machine for the bare primitive.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from adapter.privacy import KeyRing, new_short_code
from adapter.state import StateStore


def rate(label: str, n: int, fn: Callable[[int], object], repetitions: int = 1) -> float:
    """Operations per second of ``fn`` over ``n`` calls: the median of ``repetitions`` runs."""
    fn(0)  # warm caches (key objects, regexes)
    rates = []
    for _ in range(repetitions):
        start = time.perf_counter()
        for i in range(n):
            fn(i)
        rates.append(n / (time.perf_counter() - start))
    ops = statistics.median(rates)
    print(f"{label:<44} {ops:>12,.0f} ops/s")
    return ops


def measure(n: int = 100_000, repetitions: int = 3) -> dict[str, float]:
    """Ops/s (median of ``repetitions``) of the baseline and of each case-code operation."""
    ids = [str(uuid.uuid4()) for _ in range(n)]
    raw = [uuid.UUID(i).bytes for i in ids]
    mac_key = secrets.token_bytes(32)
    with tempfile.TemporaryDirectory() as tmp:
        store = StateStore(f"sqlite:///{tmp}/bench.db")
        ring = KeyRing.init(store, secrets.token_bytes(32), ["health", "police"])
        codes = [ring.case_code(i, "health") for i in ids]
        print(f"case codes, one core, n = {n:,}")
        result = {
            "baseline": rate(
                "baseline: HMAC-SHA256(16 bytes)",
                n,
                lambda i: hmac.new(mac_key, raw[i], hashlib.sha256).digest(),
                repetitions,
            ),
            "issue": rate(
                "issue: KeyRing.case_code",
                n,
                lambda i: ring.case_code(ids[i], "health"),
                repetitions,
            ),
            "verify": rate(
                "verify: KeyRing.open_case_code",
                n,
                lambda i: ring.open_case_code(codes[i], "health"),
                repetitions,
            ),
            "short": rate(
                "short printed code: new_short_code", n, lambda i: new_short_code(), repetitions
            ),
        }
        store.close()
    return result


def main() -> None:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 100_000
    result = measure(n, repetitions=1)
    base = result["baseline"]
    print()
    for label, key in (("issue", "issue"), ("verify", "verify"), ("short code", "short")):
        print(f"{label:<12} costs {base / result[key]:5.2f}x a bare HMAC-SHA256")


if __name__ == "__main__":
    main()
