"""`cpims-adapter retention run | stats`: policy §3.6 from the shell (a thin shell over
``adapter.retention``)."""

from __future__ import annotations

import csv
import json
import sys
from enum import StrEnum
from typing import Annotated

import typer
from rich.progress import Progress, TaskID
from rich.table import Table

from adapter.cli._common import err, out, settings
from adapter.clock import utcnow
from adapter.errors import ConfigError
from adapter.privacy import KeyRing, PolicySet
from adapter.retention import Release, RetentionReport, release, run_retention
from adapter.state import StateStore

app = typer.Typer(
    help="Archive closed cases, crypto-shred them when their time comes, publish statistics.",
    no_args_is_help=True,
)
# Fewer items than this finish before a progress bar would be worth drawing.
_BAR_FROM = 200


class Format(StrEnum):
    table = "table"
    csv = "csv"
    json = "json"


def register(root: typer.Typer) -> None:
    root.add_typer(app, name="retention")


@app.command("run")
def run(
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Report what would be done; change nothing.")
    ] = False,
) -> None:
    """Archive cases Primero closed, un-archive reopened ones, and destroy archives older
    than retention.retain_years (crypto-shred; a tombstone is kept)."""
    from adapter.primero import PrimeroClient

    config = settings()
    if not config.primero.url:
        raise ConfigError(
            "primero.url is not set (config [primero] or CPIMS_ADAPTER_PRIMERO__URL): "
            "retention reads case closures from Primero."
        )
    policy = PolicySet.load(config.privacy.policy_dir)
    with (
        StateStore(config.state.url) as store,
        PrimeroClient.from_settings(config.primero) as client,
        Progress(console=err, transient=True) as bar,
    ):
        keyring = KeyRing.open(store, config.privacy.load_kek())
        tasks: dict[str, TaskID] = {}

        def progress(phase: str, done: int, total: int) -> None:
            if phase == "destroy" and total >= _BAR_FROM:
                if phase not in tasks:
                    tasks[phase] = bar.add_task("destroying archives", total=total)
                bar.update(tasks[phase], completed=done)

        report = run_retention(
            config, store, keyring, client, policy=policy, dry_run=dry_run, progress=progress
        )
    _print_report(report)


def _print_report(report: RetentionReport) -> None:
    title = "retention (dry run: nothing changed)" if report.dry_run else "retention"
    table = Table("what", "cases", title=title)
    table.add_row("cases read from Primero", str(report.cases_read))
    table.add_row("archived (closed)", str(report.archived))
    table.add_row("un-archived (reopened)", str(report.unarchived))
    table.add_row("destroyed (crypto-shredded)", str(report.destroyed))
    if report.destroyed_unreadable:
        table.add_row("destroyed, archive already unreadable", str(report.destroyed_unreadable))
    table.add_row("already destroyed, seen again", str(report.tombstoned_seen))
    table.add_row("outbox messages still pending or dead", str(report.outbox_held))
    out.print(table)


@app.command("stats")
def stats(
    fmt: Annotated[Format, typer.Option("--format", help="table, csv or json (one per line).")] = (
        Format.table
    ),
) -> None:
    """Closed-case counts by district × month × concern × age band × sex, with small cells
    and anything that would reveal them suppressed. Each printed release is recorded, so the
    next one cannot be subtracted from it to reveal a small count."""
    config = settings()
    with StateStore(config.state.url) as store, store.transaction() as conn:
        published = release(conn, min_cell=config.retention.min_cell, now=utcnow())
    _print_release(published, fmt, config.retention.min_cell)


def _print_release(published: Release, fmt: Format, min_cell: int) -> None:
    names = ("district", "month", "concern", "age_band", "sex", "count")
    if fmt is Format.json:
        for row in published.rows:
            document = {name: getattr(row, name) for name in names}
            document["suppressed"] = row.count is None
            out.print(json.dumps(document), highlight=False, soft_wrap=True)
        return
    if fmt is Format.csv:
        writer = csv.writer(sys.stdout, lineterminator="\n")
        writer.writerow([*names, "suppressed"])
        for row in published.rows:
            values = [getattr(row, name) for name in names[:-1]]
            writer.writerow([*values, "" if row.count is None else row.count, row.count is None])
        return
    table = Table(
        *names,
        title=f"closed cases (release {published.release_id}; x = suppressed, cells < {min_cell}"
        " and their complements)",
    )
    for row in published.rows:
        values = [getattr(row, name) for name in names[:-1]]
        table.add_row(*values, "x" if row.count is None else str(row.count))
    out.print(table)
