"""`cpims-adapter check` and `cpims-adapter primero ...`: see what the adapter sees."""

from __future__ import annotations

import json
from enum import StrEnum
from typing import TYPE_CHECKING, Annotated

import typer
from rich.table import Table

from adapter.cli._common import out, parse_since, settings
from adapter.errors import ConfigError

if TYPE_CHECKING:
    from adapter.primero import PrimeroClient

app = typer.Typer(help="Look at Primero through the adapter's eyes.", no_args_is_help=True)

LIST_FIELDS = ("id", "case_id_display", "last_updated_at")


class Format(StrEnum):
    table = "table"
    json = "json"


def open_client() -> PrimeroClient:
    config = settings()
    if not config.primero.url:
        raise ConfigError(
            "primero.url is not set. Put it in the config file's [primero] section or set "
            "CPIMS_ADAPTER_PRIMERO__URL."
        )
    from adapter.primero import PrimeroClient

    return PrimeroClient.from_settings(config.primero)


@app.command("cases")
def cases(
    updated_since: Annotated[
        str | None,
        typer.Option(help="Only cases changed at or after this ISO 8601 time (UTC if no zone)."),
    ] = None,
    fmt: Annotated[Format, typer.Option("--format", help="table, or json (one per line).")] = (
        Format.table
    ),
) -> None:
    """List every case the adapter would see: id, case_id_display, last_updated_at.

    Reads with keyset-style paging, so no case is missed while cases change; a case edited
    during the listing may appear twice (once per version).
    """
    since = parse_since(updated_since)
    with open_client() as client:
        records = client.iter_cases(updated_since=since, fields=LIST_FIELDS)
        if fmt is Format.json:
            for record in records:
                out.print_json(
                    json.dumps({key: record.get(key) for key in LIST_FIELDS}), indent=None
                )
            return
        rows = [tuple(str(record.get(key) or "") for key in LIST_FIELDS) for record in records]
    # Ids are copied from here into other commands: never truncate or wrap one, even when the
    # table is wider than the terminal (or than 80 columns when piped).
    table = Table(title="Cases visible to the adapter")
    for key in LIST_FIELDS:
        table.add_column(key, no_wrap=True, overflow="ignore")
    for row in rows:
        table.add_row(*row)
    widths = [max([len(key), *(len(row[i]) for row in rows)]) for i, key in enumerate(LIST_FIELDS)]
    needed = sum(widths) + 3 * len(widths) + 1  # a space either side of each cell, and borders
    shown = out.width  # Console.print(width=) never exceeds the console's own width
    out.width = max(shown, needed)
    try:
        out.print(table, crop=False)
    finally:
        out.width = shown
    out.print(f"{len(rows)} cases")


@app.command("locations")
def locations() -> None:
    """List Primero's location codes (code, admin level, name): the districts a department may
    name in a referral to the inbound API."""
    with open_client() as client:
        found = client.list_locations()
    table = Table("code", "admin level", "name", title="Primero locations")
    for item in sorted(found, key=lambda i: str(i.get("code", ""))):
        name = item.get("name")
        if isinstance(name, dict):  # translated: {"en": "Karachi South", ...}
            name = name.get("en") or next(iter(name.values()), "")
        table.add_row(str(item.get("code", "")), str(item.get("admin_level", "")), str(name or ""))
    out.print(table)
    out.print(f"{len(found)} locations")
