"""`cpims-adapter demo`: the main job, end to end, on embedded defaults."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.table import Column, Table

from adapter.cli._common import out
from adapter.logs import configure_logging


def register(root: typer.Typer) -> None:
    root.command("demo")(demo)


def demo(
    cases: Annotated[int, typer.Option(min=0, help="Synthetic background cases in Primero.")] = 300,
) -> None:
    """Referrals from a Primero simulator to a FHIR server and three departments, with a report."""
    from adapter.jobs.demo import run_demo

    configure_logging("WARNING")
    result = run_demo(cases=cases, say=lambda line: out.print(line, highlight=False))
    table = Table(
        "run",
        "cases",
        "refs",
        "sent",
        "refused",
        "statuses",
        "written back",
        title="Demo: health referrals (refs: referrals addressed to the hospital)",
    )
    for label, report in result.runs:
        table.add_row(
            label,
            str(report.cases_examined),
            str(report.referrals_routed),
            _counts(report.delivered),
            str(sum(report.refused.values())),
            str(report.status_updates),
            str(report.write_backs),
        )
    out.print(table)
    out.print(
        f"FHIR server: {result.tasks} Tasks, {result.service_requests} ServiceRequests. "
        f"Primero referral statuses of the new referrals: {result.statuses}. "
        f"Linked-record rows in their cases: {result.linked_rows}."
    )
    summary = Table(
        Column("department", no_wrap=True, min_width=len("birth_registration")),
        "children",
        "sent",
        "statuses back",
        "written back",
        "linked rows",
        title="Demo: all departments (children: the demo's new referrals; sent: all documents)",
    )
    for part in result.departments:
        summary.add_row(
            part.department,
            str(part.children),
            str(part.sent),
            str(part.statuses_back),
            str(part.written_back),
            str(part.linked_rows),
        )
    out.print(summary)
    statuses = "; ".join(f"{p.department} {_counts(p.statuses)}" for p in result.departments)
    out.print(f"Primero referral statuses of the new referrals: {statuses}.")
    out.print(f"state kept in {result.state_url}")
    if not result.ok:
        for problem in result.problems:
            out.print(f"[red]problem:[/] {problem}")
        raise typer.Exit(1)
    out.print(
        "[green]demo passed: every referral once, identified data only after acceptance, "
        "outcomes visible in Primero, nothing sent twice; police, birth registration and "
        "courts the same way[/]"
    )


def _counts(counter: dict[str, int]) -> str:
    return ", ".join(f"{k} {v}" for k, v in sorted(counter.items())) or "-"
