"""`cpims-adapter retention …` and `db backup|restore` in-process: thin shells over the library."""

from __future__ import annotations

import base64
import csv
import io
import json
import secrets
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from adapter.cli import _common, _db, _retention
from adapter.privacy import KeyRing
from adapter.retention.aggregates import Contribution, add
from adapter.simulator.primero import PrimeroSimulator
from adapter.simulator.scenario import POLICY_DIR, SIM_PASSWORD
from adapter.state import StateStore


@pytest.fixture
def sim() -> object:
    with PrimeroSimulator(cases=3) as running:
        yield running


@pytest.fixture
def cli(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, sim: PrimeroSimulator) -> typer.Typer:
    kek = secrets.token_bytes(32)
    url = f"sqlite:///{tmp_path}/state.sqlite3"
    config = tmp_path / "adapter.toml"
    config.write_text(
        f'[state]\nurl = "{url}"\n'
        f'[primero]\nurl = "{sim.url}"\nusername = "cpims-adapter"\npassword = "{SIM_PASSWORD}"\n'
        f'[privacy]\nkek = "{base64.b64encode(kek).decode()}"\npolicy_dir = "{POLICY_DIR}"\n'
        "[sync]\nlag_seconds = 0\n",
        encoding="utf-8",
    )
    monkeypatch.setenv("CPIMS_ADAPTER_CONFIG", str(config))
    # This root has no --config option: forget one an earlier test gave the real CLI.
    monkeypatch.setattr(_common.state, "config_path", None)
    with StateStore(url) as store:
        KeyRing.init(store, kek, ["health"])
        with store.transaction() as conn:
            for _ in range(6):
                add(conn, Contribution("PK-SD-KHI", "2026-01", "S2", "5-9", "male"), +1)
            add(conn, Contribution("PK-SD-KHI", "2026-01", "S2", "5-9", "female"), +1)
    root = typer.Typer()

    @root.callback()
    def _root() -> None:
        """Test root."""

    _retention.register(root)
    root.add_typer(_db.app, name="db")
    return root


def run(app: typer.Typer, *args: str, code: int = 0) -> str:
    result = CliRunner().invoke(app, list(args), terminal_width=200)
    assert result.exit_code == code, result.output
    return result.output


def test_retention_run_dry_and_real(cli: typer.Typer, tmp_path: Path) -> None:
    dry = run(cli, "retention", "run", "--dry-run")
    assert "dry run: nothing changed" in dry and "cases read from Primero" in dry
    with StateStore(f"sqlite:///{tmp_path}/state.sqlite3") as store:
        assert store.recent_runs("retention") == []
    real = run(cli, "retention", "run")
    assert "archived (closed)" in real
    with StateStore(f"sqlite:///{tmp_path}/state.sqlite3") as store:
        (record,) = store.recent_runs("retention")
        assert record.status == "ok" and record.stats["cases_read"] == 3


def test_stats_in_every_format_hide_the_small_cell(cli: typer.Typer) -> None:
    lines = run(cli, "retention", "stats", "--format", "json").splitlines()
    rows = [json.loads(line) for line in lines]
    female = next(r for r in rows if r["sex"] == "female" and r["concern"] == "S2")
    assert female["count"] is None and female["suppressed"] is True
    table = list(csv.DictReader(io.StringIO(run(cli, "retention", "stats", "--format", "csv"))))
    assert {r["suppressed"] for r in table if r["sex"] == "female"} == {"True"}
    assert all(int(r["count"]) >= 5 for r in table if r["suppressed"] == "False")
    assert "x = suppressed" in run(cli, "retention", "stats")


def test_db_backup_and_restore(cli: typer.Typer, tmp_path: Path) -> None:
    target = tmp_path / "copy.backup"
    assert "written to" in run(cli, "db", "backup", str(target))
    result = CliRunner().invoke(cli, ["db", "restore", str(target)])
    assert result.exit_code != 0 and "not empty" in str(result.exception)
    assert "restored" in run(cli, "db", "restore", str(target), "--force")
