"""`cpims-adapter incidents ...`: breach handling from the shell (policy §3.4), a thin shell over
``adapter.incidents``. The steps an officer follows are in docs/runbook-breach.md."""

from __future__ import annotations

import json
from enum import StrEnum
from typing import Annotated

import typer
from rich.markup import escape
from rich.table import Table

from adapter.cli._common import err, out, settings
from adapter.clock import utcnow
from adapter.incidents import (
    close_incident,
    get_incident,
    list_incidents,
    notifications_of,
    render_notice,
    report_key_compromise,
    run_incident_checks,
)
from adapter.state import StateStore

app = typer.Typer(
    help="Suspected breaches: list, show, notices for the DPO, scan now, close.",
    no_args_is_help=True,
)


class Format(StrEnum):
    table = "table"
    json = "json"


def register(root: typer.Typer) -> None:
    """Mount ``incidents`` on the root command."""
    root.add_typer(app, name="incidents")


@app.command("list")
def list_command(
    include_closed: Annotated[
        bool, typer.Option("--all", help="Include closed incidents.")
    ] = False,
    fmt: Annotated[Format, typer.Option("--format", help="table, or json (one per line).")] = (
        Format.table
    ),
) -> None:
    """Incidents not yet closed (newest first), with their deadline: pending, overdue, met or
    missed."""
    config = settings()
    now = utcnow()
    with StateStore(config.state.url) as store:
        found = list_incidents(store, include_closed=include_closed)
    if fmt is Format.json:
        for incident in found:
            out.print_json(json.dumps(incident.as_dict(now)), indent=None)
        return
    table = Table("id", "severity", "kind", "department", "events", "status", "deadline")
    for incident in found:
        table.add_row(
            str(incident.id),
            incident.severity,
            incident.kind,
            incident.department or "-",
            str(incident.event_count),
            incident.status,
            f"{incident.deadline_state(now)} ({incident.deadline_at:%Y-%m-%d %H:%M} UTC)",
        )
    out.print(table)
    out.print(f"{len(found)} incident(s)")


@app.command("show")
def show(incident_id: Annotated[int, typer.Argument(help="The incident's number.")]) -> None:
    """One incident with its notifications (recipient, status, attempts, last error)."""
    config = settings()
    now = utcnow()
    with StateStore(config.state.url) as store:
        incident = get_incident(store, incident_id)
        notifications = notifications_of(store, incident_id)
    for key, value in incident.as_dict(now).items():
        out.print(f"{key:>15}: {escape(str(value))}", highlight=False)
    table = Table("recipient", "status", "attempts", "sent at", "last error", title="Notices")
    for notification in notifications:
        table.add_row(
            notification.recipient,
            notification.status,
            str(notification.attempts),
            notification.sent_at.isoformat() if notification.sent_at else "-",
            escape(notification.last_error or "-"),
        )
    out.print(table)


@app.command("notice")
def notice(incident_id: Annotated[int, typer.Argument(help="The incident's number.")]) -> None:
    """Print the notice for the data-protection officer, as it stands now."""
    config = settings()
    with StateStore(config.state.url) as store:
        text = render_notice(store, get_incident(store, incident_id), config)
    out.print(escape(text), end="", highlight=False)


@app.command("scan")
def scan() -> None:
    """Turn new security events into incidents and send the notices that are due, now (the
    `run` daemon does this every minute)."""
    config = settings()
    with StateStore(config.state.url) as store:
        report = run_incident_checks(config, store)
    out.print(
        f"{report.scan.events} new security event(s): {len(report.scan.opened)} incident(s) "
        f"opened, {report.scan.joined} joined open ones; notices sent {report.delivery.sent}, "
        f"failed {report.delivery.failed}; open {report.summary.open}, overdue "
        f"{report.summary.overdue}"
    )
    for warning in report.warnings:
        err.print(f"[yellow]warning:[/] {escape(warning)}", highlight=False)
    if report.delivery.failed or report.summary.overdue:
        raise typer.Exit(1)


@app.command("close")
def close(
    incident_id: Annotated[int, typer.Argument(help="The incident's number.")],
    by: Annotated[str, typer.Option("--by", help="The officer closing the incident.")],
    resolution: Annotated[
        str, typer.Option("--resolution", help="What was done (runbook steps, outcome).")
    ],
) -> None:
    """Close an incident after the runbook's steps (docs/runbook-breach.md)."""
    config = settings()
    with StateStore(config.state.url) as store:
        closed = close_incident(store, incident_id, by=by, resolution=resolution)
    out.print(
        f"incident {closed.id} closed by {escape(closed.closed_by or '')}; DPO deadline "
        f"{closed.deadline_state()}"
    )


@app.command("report-key-compromise")
def report_compromise(
    department: Annotated[str, typer.Argument(help="Department whose case-code key leaked.")],
    key_version: Annotated[
        int | None, typer.Option("--key-version", help="The exposed version (default: active).")
    ] = None,
) -> None:
    """Declare a department's case-code key possibly exposed: a critical incident opens at
    once and its notice lists every code issued under that key version."""
    config = settings()
    with StateStore(config.state.url) as store:
        version = report_key_compromise(store, department, key_version=key_version)
        report = run_incident_checks(config, store)
    opened = ", ".join(str(i) for i in report.scan.opened) or "joined an open one"
    out.print(f"{department} key version {version} reported as exposed; incident: {opened}")
    out.print(f"next: cpims-adapter keys rotate {department} --crosswalk FILE (the runbook)")
