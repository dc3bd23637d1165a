"""`cpims-adapter status` never calls an empty, new or freshly restored store healthy, nor a
configuration that runs nothing (issue 13 item 10: operations that rehearse truthfully)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import sqlalchemy as sa
from typer.testing import CliRunner

from adapter.cli import app
from adapter.state import StateStore, schema
from adapter.state.store import normalise_url
from tests.ops.conftest import worked_in
from tests.ops.test_status import write_config


def status(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(app, ["status", *args], terminal_width=400)
    return result.exit_code, result.output


def needs_attention(output: str) -> list[str]:
    return [line for line in output.splitlines() if line.startswith("needs attention:")]


def test_a_store_in_which_no_job_has_run_is_not_healthy_until_one_has(
    tmp_path: Path, store: StateStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    # An emptied store the service has re-created: schema and keys, but no runs.
    monkeypatch.setenv("CPIMS_ADAPTER_CONFIG", str(write_config(tmp_path / "a.toml", store.url)))
    worked_in(store)

    code, output = status()
    assert code == 1, output
    (line,) = needs_attention(output)
    assert "no runs recorded for any configured job (police)" in line
    assert "healthy" not in output.replace("needs attention", "")

    code, output = status("--format", "json")
    document = json.loads(output)
    assert code == 1 and document["healthy"] is False
    assert document["config_file"] == str(tmp_path / "a.toml")

    worked_in(store, "police")  # the first run
    code, output = status()
    assert code == 0 and output.rstrip().endswith("healthy"), output


def test_an_empty_store_says_so_in_one_line_and_is_left_as_it_was(
    tmp_path: Path, state_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A database created for a restore that never happened (or wiped): no tables at all.
    engine = sa.create_engine(normalise_url(state_url))
    with engine.begin() as conn:
        conn.exec_driver_sql("CREATE TABLE placeholder (x INTEGER)")
    monkeypatch.setenv("CPIMS_ADAPTER_CONFIG", str(write_config(tmp_path / "a.toml", state_url)))

    code, output = status()
    assert code == 1, output
    (line,) = needs_attention(output)
    assert "the state store is empty (no schema, no runs)" in line
    assert "cpims-adapter db upgrade" in line
    assert "jobs" not in output.split("needs attention")[0]  # no tables of nothing

    # status is a check, not a repair: it neither migrated nor created anything.
    with engine.connect() as conn:
        assert not sa.inspect(conn).has_table("schema_migrations")
    engine.dispose()


def test_a_store_without_keys_needs_attention(
    tmp_path: Path, store: StateStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Runs restored, keys not (a partial restore): every case would get a new case code.
    monkeypatch.setenv("CPIMS_ADAPTER_CONFIG", str(write_config(tmp_path / "a.toml", store.url)))
    worked_in(store, "police", keys=False)
    code, output = status()
    assert code == 1, output
    (line,) = needs_attention(output)
    assert "the state store holds no keys" in line and "keys init" in line


def test_a_missing_sqlite_store_is_reported_not_created(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "gone" / "state.sqlite3"
    monkeypatch.setenv(
        "CPIMS_ADAPTER_CONFIG", str(write_config(tmp_path / "a.toml", f"sqlite:///{path}"))
    )
    code, output = status()
    assert code == 1, output
    (line,) = needs_attention(output)
    assert f"the state store {path} does not exist (state.url)" in line
    assert not path.exists() and not path.parent.exists()


def test_without_a_config_file_status_is_not_healthy_and_says_none_was_found(
    tmp_path: Path, store: StateStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    # An operator runs status from a folder without config/adapter.toml and without
    # CPIMS_ADAPTER_CONFIG: the defaults configure no job at all.
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("CPIMS_ADAPTER_CONFIG", raising=False)
    monkeypatch.setenv("CPIMS_ADAPTER_STATE__URL", store.url)
    worked_in(store, "police")

    code, output = status()
    assert code == 1, output
    (line,) = needs_attention(output)
    assert "no jobs are configured (no config file was found at config/adapter.toml" in line
    assert "--config" in line and "CPIMS_ADAPTER_CONFIG" in line
    code, output = status("--format", "json")
    assert code == 1 and json.loads(output)["config_file"] is None

    # The same with the default SQLite store, which does not exist here either.
    monkeypatch.delenv("CPIMS_ADAPTER_STATE__URL")
    code, output = status()
    assert code == 1, output
    assert "does not exist" in needs_attention(output)[0]
    assert not (tmp_path / "var").exists()


def test_a_config_file_without_jobs_is_named(
    tmp_path: Path, store: StateStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = tmp_path / "adapter.toml"
    config.write_text(f'[state]\nurl = "{store.url}"\n', encoding="utf-8")
    monkeypatch.setenv("CPIMS_ADAPTER_CONFIG", str(config))
    worked_in(store)
    with store.transaction() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(schema.runs)).scalar() == 0
    code, output = status()
    assert code == 1, output
    (line,) = needs_attention(output)
    assert f"no jobs are configured in {config}" in line
