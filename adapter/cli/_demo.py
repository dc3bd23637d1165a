"""`cpims-adapter demo`: the whole thing, end to end, on embedded defaults."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.table import Table

from adapter.cli._common import out
from adapter.logs import configure_logging


def register(root: typer.Typer) -> None:
    root.command("demo")(demo)


def demo(
    cases: Annotated[int, typer.Option(help="Synthetic cases in the simulator.")] = 300,
) -> None:
    """Start a Primero simulator, run the adapter against it, and print a short report."""
    from adapter.jobs.demo import run_demo

    configure_logging("WARNING")
    result = run_demo(cases=cases, say=lambda line: out.print(line, highlight=False))
    table = Table("run", "new", "read", "pages", "already seen", title="Demo report")
    for label, report in result.runs:
        table.add_row(
            label,
            str(report.records_new),
            str(report.records_read),
            str(report.pages),
            str(report.records_already_seen),
        )
    out.print(table)
    out.print(f"Primero version {result.primero_version}; state kept in {result.state_url}")
    if not result.ok:
        out.print("[red]the demo did not behave as expected[/]")
        raise typer.Exit(1)
    out.print("[green]demo passed: everything once, nothing twice, edits picked up[/]")
