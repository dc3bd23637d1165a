"""`cpims-adapter db ...`: the state store's schema."""

from __future__ import annotations

import typer
from rich.table import Table

from adapter.cli._common import out, settings
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
