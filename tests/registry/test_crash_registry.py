"""Crash consistency of the offender registry: imports and court orders killed with SIGKILL.

- ``cpims-adapter registry import`` is one transaction (ingest.py): killed anywhere, it leaves
  either nothing of the file or all of it with its import record and audit entry; re-running
  imports it once, or refuses it as imported before.
- ``ingest_conviction`` is one transaction per order: a process working through a list of
  court orders (as the court connector does) is killed at random points and restarted from the
  top of the list; in the end every order is one entry, with its blocking index rows and one
  audit entry, and the audit chain verifies.

On SQLite and PostgreSQL. ``CPIMS_ADAPTER_CRASH_SEED`` sets the seed; ``pytest --long`` runs
many more kills.
"""

from __future__ import annotations

import base64
import json
import os
import random
import secrets
import sqlite3
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from adapter.privacy import AuditLog, KeyRing
from adapter.registry._tables import registry_blocks, registry_entries, registry_imports
from adapter.state import StateStore
from adapter.state.store import normalise_url
from tests.jobs.crash_support import kill_when, start_cli, start_python, wait_ok
from tests.registry.conftest import OFFICER, csv_row, public_b64, write_signed_csv

SEED = int(os.environ.get("CPIMS_ADAPTER_CRASH_SEED", "1234"))
ROWS = 2500  # an import of this size takes about a second inside its transaction
ORDERS = 30
EXIT_REFUSED = (1, 2)  # an AdapterError at the CLI: "imported before" on a re-run

# A stand-in for the court connector: ingest every order of a JSON-lines file, in order.
INGEST_ORDERS = """
import base64, json, os, sys
from adapter.privacy import KeyRing
from adapter.registry import ConvictionOrder, Registry, RegistrySettings
from adapter.state import StateStore
kek = base64.b64decode(os.environ["CPIMS_ADAPTER_PRIVACY__KEK"])
with StateStore(sys.argv[1]) as store:
    registry = Registry.open(store, KeyRing.open(store, kek), RegistrySettings())
    with open(sys.argv[2], encoding="utf-8") as lines:
        for line in lines:
            registry.ingest_conviction(ConvictionOrder(**json.loads(line)))
"""


class RegistryWorld:
    """A state store with keys, an officer's key, and the operator's config and environment."""

    def __init__(self, tmp_path: Path, state_url: str) -> None:
        self.tmp_path = tmp_path
        self.state_url = state_url
        self.kek = secrets.token_bytes(32)
        self.officer_key = Ed25519PrivateKey.generate()
        with StateStore(state_url) as store:
            KeyRing.init(store, self.kek, ["health"])
        self.config = tmp_path / "adapter.toml"
        self.config.write_text(
            f"[state]\nurl = {json.dumps(state_url)}\n\n"
            f"[registry.officer_keys]\n{json.dumps(OFFICER)} = "
            f"{json.dumps(public_b64(self.officer_key))}\n",
            encoding="utf-8",
        )
        self.engine = sa.create_engine(normalise_url(state_url))
        self.log = tmp_path / "processes.log"

    def env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("CPIMS_ADAPTER_")}
        env["CPIMS_ADAPTER_CONFIG"] = str(self.config)
        env["CPIMS_ADAPTER_PRIVACY__KEK"] = base64.b64encode(self.kek).decode()
        return env

    def close(self) -> None:
        self.engine.dispose()

    def count(self, table: sa.Table) -> int:
        with self.engine.connect() as conn:
            return int(conn.execute(sa.select(sa.func.count()).select_from(table)).scalar_one())

    def refs(self) -> Counter[tuple[str, str]]:
        with self.engine.connect() as conn:
            rows = conn.execute(
                sa.select(registry_entries.c.source, registry_entries.c.source_ref)
            ).all()
        return Counter((source, ref) for source, ref in rows)

    def writing(self) -> bool:
        """True while another process is inside a transaction that has written: the moment a
        kill must land in to test atomicity."""
        if self.engine.dialect.name == "sqlite":
            # A second writer cannot start while one is in its transaction (no waiting here).
            raw = sqlite3.connect(self.engine.url.database or "", timeout=0)
            try:
                raw.execute("BEGIN IMMEDIATE")
                raw.rollback()
                return False
            except sqlite3.OperationalError:
                return True
            finally:
                raw.close()
        with self.engine.connect() as conn:
            # backend_xid is assigned at a transaction's first write.
            return bool(
                conn.execute(
                    sa.text(
                        "SELECT count(*) FROM pg_stat_activity WHERE backend_xid IS NOT NULL "
                        "AND pid <> pg_backend_pid() AND datname = current_database()"
                    )
                ).scalar_one()
            )

    def unindexed(self) -> int:
        """Entries without a row in the blocking index: written by half."""
        with self.engine.connect() as conn:
            return int(
                conn.execute(
                    sa.select(sa.func.count())
                    .select_from(registry_entries)
                    .where(~sa.exists().where(registry_blocks.c.entry_id == registry_entries.c.id))
                ).scalar_one()
            )

    def import_args(self, csv_path: Path, sig: Path) -> list[str]:
        return ["registry", "import", str(csv_path), "--signature", str(sig), "--officer", OFFICER]

    def audit(self) -> Counter[str]:
        """Audit events by name, after checking the whole chain."""
        with StateStore(self.state_url) as store:
            log = AuditLog(store, KeyRing.open(store, self.kek))
            report = log.verify()
            assert report.ok, report.problems
            events: Counter[str] = Counter()
            after = 0
            while batch := log.entries(after_seq=after):
                events.update(str(r.entry.get("event")) for r in batch)
                after = batch[-1].seq
        return events


@pytest.fixture
def world(tmp_path: Path, state_url: str) -> Any:
    made = RegistryWorld(tmp_path, state_url)
    try:
        yield made
    finally:
        made.close()


def _trials(long_mode: bool, default: int) -> int:
    return default * 5 if long_mode else default


def test_a_killed_import_leaves_all_or_nothing_and_a_rerun_imports_once(
    world: RegistryWorld, long_mode: bool
) -> None:
    rng = random.Random(SEED)
    env = world.env()
    first, first_sig = write_signed_csv(
        world.tmp_path, [csv_row(i) for i in range(ROWS)], world.officer_key, "first"
    )
    wait_ok(start_cli(world.import_args(first, first_sig), env, world.log), world.log)
    expected = ROWS
    outcomes: Counter[str] = Counter()
    for trial in range(_trials(long_mode, 3)):
        # Each file repeats half of the last one's rows (already registered: unchanged) and
        # brings as many new ones.
        low = ROWS // 2 * (trial + 1)
        path, sig = write_signed_csv(
            world.tmp_path,
            [csv_row(i) for i in range(low, low + ROWS)],
            world.officer_key,
            f"extract-{trial}",
        )
        before = (world.count(registry_entries), world.count(registry_imports))
        process = start_cli(world.import_args(path, sig), env, world.log)
        # Once the import's transaction has written, a random moment later: mostly inside it,
        # sometimes after its commit.
        killed = kill_when(process, world.writing, rng.uniform(0, 0.8), poll=0.02)
        after = (world.count(registry_entries), world.count(registry_imports))
        # All or nothing: the file's new rows and its import record, or neither.
        committed = after == (before[0] + ROWS // 2, before[1] + 1)
        assert committed or after == before, (before, after)
        if not killed:
            outcomes["finished"] += 1
        else:
            outcomes["killed after the commit" if committed else "killed, nothing kept"] += 1
        rerun = start_cli(world.import_args(path, sig), env, world.log)
        status = wait_ok(rerun, world.log, ok=(0, *EXIT_REFUSED))
        assert (status != 0) == committed, "a committed file must be refused, and only that"
        expected += ROWS // 2
        assert world.count(registry_entries) == expected

    refs = world.refs()
    assert len(refs) == expected and max(refs.values()) == 1
    assert world.unindexed() == 0
    with world.engine.connect() as conn:
        imports = conn.execute(sa.select(registry_imports.c.rows, registry_imports.c.created)).all()
    assert sum(created for _, created in imports) == expected
    assert all(rows == ROWS for rows, _ in imports)
    assert world.audit()["registry_import"] == len(imports)
    assert outcomes["finished"] < sum(outcomes.values()), f"no kill landed: {outcomes}"


def test_killed_court_order_ingestion_registers_each_order_once(
    world: RegistryWorld, long_mode: bool
) -> None:
    rng = random.Random(SEED)
    orders = [
        {
            "court": "shc",
            "order_ref": f"CRL-{n:04d}",
            "order_date": "2024-01-15",
            "offence_code": "ppc_377a",
            "cnic": f"42101-{2000000 + n:07d}-{n % 10}",
            "full_name": "Muhammad Ali",
            "father_name": "Muhammad Aslam",
            "date_of_birth": "1990-05-01",
        }
        for n in range(ORDERS)
    ]
    lines = world.tmp_path / "orders.jsonl"
    lines.write_text("".join(json.dumps(o) + "\n" for o in orders), encoding="utf-8")
    args = [world.state_url, str(lines)]
    killed = 0
    for _ in range(_trials(long_mode, 4)):
        # Kill after a random number of orders went in, a random moment later: inside the
        # next order's transaction, or between two.
        target = world.count(registry_entries) + rng.randint(1, ORDERS // 4)
        process = start_python(INGEST_ORDERS, args, world.env(), world.log)
        progressed = lambda: world.count(registry_entries) >= target  # noqa: B023, E731
        killed += kill_when(process, progressed, rng.uniform(0, 0.05))
        assert max(world.refs().values(), default=1) == 1
    wait_ok(start_python(INGEST_ORDERS, args, world.env(), world.log), world.log)

    refs = world.refs()
    assert sorted(ref for _, ref in refs) == sorted(o["order_ref"] for o in orders)
    assert max(refs.values()) == 1
    assert world.unindexed() == 0
    assert world.audit()["registry_entry_added"] == ORDERS
    assert killed >= 1, "no kill landed inside a run"
