"""The registry served by several processes over one state store (issue 15 item 4).

A real ``serve_registry`` with two forked uvicorn workers on 127.0.0.1, hit by concurrent
clients each on its own connection (so the kernel spreads them over the workers): a quota, a
single-use consent reference and the audit hash chain hold across processes, on SQLite and
PostgreSQL.
"""

from __future__ import annotations

import base64
import os
import secrets
import signal
import subprocess
import sys
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest
import sqlalchemy as sa

from adapter.privacy import KeyRing
from adapter.privacy.audit import AuditLog
from adapter.registry import Registry, RegistrySettings
from adapter.registry._tables import registry_checks
from adapter.state import StateStore
from tests.registry.conftest import OFFICER, request

ROOT = Path(__file__).resolve().parents[2]
WORKERS = 2
SERVE = (
    "import base64, os, sys\n"
    "from adapter.registry import RegistrySettings\n"
    "from adapter.registry.api import serve_registry\n"
    "serve_registry(sys.argv[1], base64.b64decode(os.environ['KEK']),\n"
    "    RegistrySettings.model_validate_json(os.environ['SETTINGS']), workers=int(sys.argv[2]),\n"
    "    on_ready=lambda url: print('READY', url, flush=True))\n"
)


def _children(pid: int) -> list[int]:
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            found.append(int(stat.parent.name))
    return found


@pytest.fixture
def kek() -> bytes:
    return secrets.token_bytes(32)


@pytest.fixture
def served(
    store: StateStore, kek: bytes, settings: RegistrySettings
) -> Iterator[tuple[str, Registry]]:
    """The registry in ``WORKERS`` processes over ``store``; its URL and an in-test handle."""
    ring = KeyRing.init(store, kek, ["health"])
    registry = Registry.open(store, ring, settings)
    env = {
        **os.environ,
        "KEK": base64.b64encode(kek).decode(),
        "SETTINGS": settings.model_dump_json(),
    }
    process = subprocess.Popen(
        [sys.executable, "-c", SERVE, store.url, str(WORKERS)],
        stdout=subprocess.PIPE,
        text=True,
        env=env,
        cwd=ROOT,
    )
    try:
        assert process.stdout is not None
        url = process.stdout.readline().split()[1]
        for _ in range(500):  # the workers open the store, then accept
            try:
                httpx.get(url + "/v1/registry/checks/RC-0", timeout=5)
                break
            except httpx.TransportError:
                assert process.poll() is None, "the registry server stopped"
        assert len(_children(process.pid)) == WORKERS
        yield url, registry
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(60)
        if process.stdout is not None:
            process.stdout.close()
    assert _children(process.pid) == []


def _school(registry: Registry, daily: int, number: str = "WRK-001") -> str:
    _, key = registry.add_establishment(
        number,
        "Workers School",
        (("Amina Khan", "amina@school.example"), ("Bilal Shah", "bilal@school.example")),
        registered_by=OFFICER,
        daily_quota=daily,
        monthly_quota=10 * daily,
    )
    return key


def _burst(url: str, keys: list[str], bodies: list[dict[str, str]]) -> Counter[int]:
    def post(n: int) -> int:
        # A connection per request: the kernel hands each to whichever worker accepts it.
        headers = {"Authorization": f"Bearer {keys[n % len(keys)]}"}
        answer = httpx.post(
            url + "/v1/registry/checks", json=bodies[n], headers=headers, timeout=60
        )
        return answer.status_code

    with ThreadPoolExecutor(16) as pool:
        return Counter(pool.map(post, range(len(bodies))))


def _body(n: int, **fields: str) -> dict[str, str]:
    values = {"consent_ref": f"CF-W-{n:04d}-{secrets.token_hex(3)}", **fields}
    return request(**values).model_dump(mode="json")


def test_a_quota_holds_across_workers_and_the_audit_chain_does_not_fork(
    served: tuple[str, Registry], store: StateStore, kek: bytes
) -> None:
    url, registry = served
    key = _school(registry, daily=7)
    statuses = _burst(url, [key], [_body(n) for n in range(40)])
    assert statuses == Counter({200: 7, 429: 33})
    with store.transaction() as conn:
        recorded = conn.execute(
            sa.select(sa.func.count())
            .select_from(registry_checks)
            .where(registry_checks.c.status != "REJECTED")
        ).scalar_one()
    assert recorded == 7
    report = AuditLog(store, KeyRing.open(store, kek)).verify()
    assert report.ok, report.problems
    checks = [
        record
        for record in AuditLog(store, KeyRing.open(store, kek)).entries(limit=10_000)
        if record.entry["event"] == "registry_check"
    ]
    assert len(checks) == 7


def test_a_consent_reference_is_used_once_across_workers(
    served: tuple[str, Registry], store: StateStore, kek: bytes
) -> None:
    url, registry = served
    key = _school(registry, daily=100)
    same = _body(0)
    # Fewer than mismatch_min_checks attempts: re-used consents count as mismatches, and
    # ten of them would lock the establishment (403) instead.
    statuses = _burst(url, [key], [dict(same) for _ in range(8)])
    assert statuses == Counter({200: 1, 409: 7})
    assert AuditLog(store, KeyRing.open(store, kek)).verify().ok


def test_a_consent_reference_is_used_once_by_any_establishment(
    served: tuple[str, Registry], store: StateStore, kek: bytes
) -> None:
    url, registry = served
    keys = [_school(registry, daily=100, number=f"WRK-{n:03d}") for n in range(1, 5)]
    same = _body(0)
    statuses = _burst(url, keys, [dict(same) for _ in range(12)])
    assert statuses == Counter({200: 1, 409: 11})
    assert AuditLog(store, KeyRing.open(store, kek)).verify().ok
