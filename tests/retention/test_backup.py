"""`db backup` / `db restore` on SQLite and PostgreSQL: a round trip, and the refusals."""

from __future__ import annotations

import secrets
import sqlite3
from datetime import UTC, datetime
from pathlib import Path

import pytest

from adapter.privacy import KeyRing
from adapter.retention import BackupError, backup_schema_version, backup_store, restore_store
from adapter.retention import backup as backup_module
from adapter.state import StateStore
from adapter.state.migrations import MIGRATIONS


def test_backup_change_restore_round_trip(state_url: str, tmp_path: Path) -> None:
    kek = secrets.token_bytes(32)
    with StateStore(state_url) as store:
        KeyRing.init(store, kek, ["health"])
        store.set_cursor("health", "cases", "before")
        info = backup_store(store, tmp_path / "state.backup")
        assert info.schema_version == MIGRATIONS[-1].version and info.size_bytes > 0
        assert (info.path.stat().st_mode & 0o777) == 0o600
        with pytest.raises(BackupError, match="exists"):
            backup_store(store, info.path)
        store.set_cursor("health", "cases", "after")
        store.set_cursor("police", "cases", "new")

    assert backup_schema_version(info.path, info.backend) == MIGRATIONS[-1].version
    with pytest.raises(BackupError, match="not empty"):
        restore_store(state_url, info.path, kek)
    restored = restore_store(state_url, info.path, kek, force=True)
    assert restored.backup_schema_version == info.schema_version
    assert restored.migrations_applied == 0 and restored.destroyed == 0
    with StateStore(state_url) as store:
        assert store.get_cursor("health", "cases") == "before"
        assert store.get_cursor("police", "cases") is None
        KeyRing.open(store, kek)  # the key ring came back and opens with the same KEK


def test_restore_into_an_empty_store_needs_no_force(tmp_path: Path) -> None:
    kek = secrets.token_bytes(32)
    with StateStore(f"sqlite:///{tmp_path}/a.sqlite3") as store:
        KeyRing.init(store, kek, ["health"])
        path = backup_store(store, tmp_path / "a.backup").path
    fresh = f"sqlite:///{tmp_path}/b.sqlite3"
    StateStore(fresh).close()  # migrated, but holding no data
    assert restore_store(fresh, path, kek).backend == "sqlite"
    with StateStore(fresh) as store:
        assert KeyRing.open(store, kek).departments == ["health"]


def test_a_backup_from_a_newer_adapter_is_refused(tmp_path: Path) -> None:
    with StateStore(f"sqlite:///{tmp_path}/a.sqlite3") as store:
        path = backup_store(store, tmp_path / "a.backup").path
    with sqlite3.connect(path) as conn:
        conn.execute(
            "INSERT INTO schema_migrations (version, name, applied_at) VALUES (999, 'x', ?)",
            (datetime.now(UTC).replace(tzinfo=None).isoformat(" "),),
        )
    with pytest.raises(BackupError, match="newer than this adapter"):
        restore_store(f"sqlite:///{tmp_path}/b.sqlite3", path, secrets.token_bytes(32))


def test_a_missing_postgresql_client_is_named(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(backup_module.glob, "glob", lambda _pattern: [])
    monkeypatch.setattr(backup_module.shutil, "which", lambda _name: None)
    with pytest.raises(BackupError, match=r"pg_dump not found.*postgresql-client"):
        backup_module.pg_tool("pg_dump")


def test_a_file_that_is_not_a_backup_is_refused(tmp_path: Path) -> None:
    junk = tmp_path / "junk.backup"
    junk.write_bytes(b"not a database at all" * 100)
    with pytest.raises(BackupError, match="not a SQLite backup"):
        backup_schema_version(junk, "sqlite")
    with pytest.raises(BackupError, match="no such backup file"):
        backup_schema_version(tmp_path / "missing", "sqlite")
