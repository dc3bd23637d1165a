"""`cpims-adapter db ...`: the state store's schema, backups and restores."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from adapter.cli._common import out, settings
from adapter.retention import backup_store, restore_store
from adapter.state import StateStore
from adapter.state.migrations import MIGRATIONS

app = typer.Typer(help="Manage the state store (SQLite or PostgreSQL).", no_args_is_help=True)


@app.command("upgrade")
def upgrade() -> None:
    """Apply pending schema migrations (also done automatically on first use)."""
    config = settings()
    with StateStore(config.state.url, migrate=False) as store:
        applied = store.upgrade()
        version = store.schema_version()
    if applied:
        for migration in applied:
            out.print(f"applied {migration.version}: {migration.name}")
    else:
        out.print("nothing to do")
    out.print(f"schema version {version} ({store.backend})")


@app.command("status")
def status() -> None:
    """Show the schema version and the pending migrations."""
    config = settings()
    with StateStore(config.state.url, migrate=False) as store:
        current = store.schema_version()
        table = Table("version", "migration", "state")
        for migration in MIGRATIONS:
            table.add_row(
                str(migration.version),
                migration.name,
                "applied" if migration.version <= current else "pending",
            )
    out.print(table)


@app.command("backup")
def backup(
    path: Annotated[Path, typer.Argument(help="New file to write (never overwritten).")],
) -> None:
    """Write a consistent copy of the state store to PATH (mode 0600), while the service
    runs: SQLite's online backup, or pg_dump -Fc for PostgreSQL."""
    config = settings()
    with StateStore(config.state.url) as store:
        info = backup_store(store, path)
    out.print(
        f"backup of the {info.backend} state store (schema version {info.schema_version}) "
        f"written to {info.path} ({info.size_bytes} bytes). It holds the key ring wrapped "
        "under the KEK: keep it briefly and apart from the KEK."
    )


@app.command("restore")
def restore(
    path: Annotated[Path, typer.Argument(help="A file written by `db backup`.")],
    force: Annotated[
        bool, typer.Option("--force", help="Replace a state store that already holds data.")
    ] = False,
) -> None:
    """Replace the state store with the backup at PATH, apply newer migrations, then at once
    destroy every archive whose retention time has passed. Stop the service first."""
    config = settings()
    info = restore_store(config.state.url, path, config.privacy.load_kek(), force=force)
    out.print(
        f"restored {path} into the {info.backend} state store (backup schema version "
        f"{info.backup_schema_version}, {info.migrations_applied} migrations applied); "
        f"{info.destroyed} archives past their retention destroyed again."
    )
