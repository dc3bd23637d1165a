"""`cpims-adapter status`: what every job and queue is doing; exit 1 when something needs
attention, so monitoring scripts can use it."""

from __future__ import annotations

import json
from datetime import datetime
from enum import StrEnum
from typing import Annotated

import typer
from rich.markup import escape
from rich.table import Table

from adapter.cli._common import out, settings
from adapter.ops.status import RunSummary, Status, format_duration, store_status


class Format(StrEnum):
    table = "table"
    json = "json"


def register(root: typer.Typer) -> None:
    root.command("status")(status)


def status(
    output: Annotated[
        Format,
        typer.Option("--format", help="table for people, json (one document) for scripts."),
    ] = Format.table,
) -> None:
    """Jobs (last run, lag behind Primero, next run, running where), outbox, dead letters,
    registry reviews, key ages, audit verification, incidents. Exit 1 if anything needs
    attention: a failed last run, dead letters, an overdue incident, a job lagging more than
    three times its schedule, no job configured, or a store in which no job has run yet
    (empty, new or freshly restored; missing schema or keys). Changes nothing in the store."""
    found = store_status(settings())
    if output is Format.json:
        out.print_json(json.dumps(found.to_json()), indent=None)
    else:
        _print_tables(found)
    if not found.healthy:
        raise typer.Exit(1)


def _print_tables(found: Status) -> None:
    if found.store_read:
        _print_store(found)
    for warning in found.warnings:
        out.print(f"[yellow]warning:[/] {escape(warning)}", highlight=False)
    for problem in found.problems:
        out.print(f"[bold red]needs attention:[/] {escape(problem)}", highlight=False)
    if found.healthy:
        out.print("[green]healthy[/]")


def _print_store(found: Status) -> None:
    jobs = Table(
        "job", "department", "last run", "outcome", "lag", "next run", "running", title="jobs"
    )
    for job in found.jobs:
        jobs.add_row(
            job.name,
            job.department,
            _when(job.last_run.started_at if job.last_run else None),
            _outcome(job.last_run),
            _seconds(job.lag_seconds),
            _when(job.next_run_at),
            job.running_on or ("yes" if job.running else "-"),
        )
    for task in found.housekeeping:
        jobs.add_row(
            task.name,
            "-",
            _when(task.last_run.started_at if task.last_run else None),
            _outcome(task.last_run),
            "-",
            "-",
            "-",
        )
    out.print(jobs)

    queues = Table("destination", "pending", "retrying", "dead letters", title="outbox")
    for depth in found.outbox:
        queues.add_row(depth.destination, str(depth.pending), str(depth.retrying), str(depth.dead))
    if not found.outbox:
        queues.add_row("-", "0", "0", "0")
    out.print(queues)

    if found.held:
        held = Table(
            "department", "awaiting", "referrals", "oldest waits", title="held for a decision"
        )
        for waiting in found.held:
            held.add_row(
                waiting.department,
                waiting.awaiting,
                str(waiting.count),
                format_duration(waiting.oldest_seconds),
            )
        out.print(held)

    keys = Table("key role", "version", "age (days)", title="oldest active keys")
    for key in found.keys:
        keys.add_row(key.role, str(key.version), f"{key.age_days}{' (rotate)' if key.warn else ''}")
    out.print(keys)

    if found.instances:
        service = Table("instance", "version", "since", "last seen", "alive", title="service")
        for instance in found.instances:
            service.add_row(
                instance.host_pid,
                instance.version,
                _when(instance.started_at),
                _when(instance.last_seen),
                "yes" if instance.live else "[red]no (killed?)[/]",
            )
        out.print(service)

    incidents = f"{found.incidents.open} open, {found.incidents.overdue} overdue"
    audit = found.last_audit_verification
    out.print(
        f"registry reviews: {found.pending_reviews} pending, {found.overdue_reviews} overdue; "
        f"incidents: {incidents}; audit verified: "
        f"{_when(audit.started_at if audit else None)} ({_outcome(audit)})",
        highlight=False,
    )


def _outcome(run: RunSummary | None) -> str:
    if run is None:
        return "never"
    return f"{run.outcome} ({run.error_class})" if run.error_class else run.outcome


def _when(at: datetime | None) -> str:
    return at.strftime("%Y-%m-%d %H:%M:%SZ") if at else "-"


def _seconds(value: float | None) -> str:
    return "-" if value is None else format_duration(value)
