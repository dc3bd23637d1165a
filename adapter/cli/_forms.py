"""`cpims-adapter primero install-forms`: install the "Linked department records" and
"Disclosure decisions" forms.

Creating forms needs Primero's `metadata:manage`, which the integration role should not hold.
Run the command once with an administrator's account through the environment, which overrides
the config file:

    CPIMS_ADAPTER_PRIMERO__USERNAME=primero_admin CPIMS_ADAPTER_PRIMERO__PASSWORD=... \\
        cpims-adapter primero install-forms
"""

from __future__ import annotations

from typing import Annotated

import typer
from rich.panel import Panel
from rich.table import Table

from adapter.app.departments import configured_record_types
from adapter.cli._common import out, settings
from adapter.cli._primero import open_client
from adapter.primero.linked_records import DEFAULT_MODULES, InstallReport, install_forms

ACTION_STYLE = {"created": "green", "updated": "yellow", "unchanged": "dim"}


def install_forms_command(
    module: Annotated[
        list[str] | None,
        typer.Option(
            "--module",
            help="Primero module to attach the form to; repeat for several "
            f"(default: {', '.join(DEFAULT_MODULES)}).",
        ),
    ] = None,
) -> None:
    """Create the "Linked department records" and "Disclosure decisions" forms in Primero, or
    complete them; safe to re-run (a department, or a record type a mapping file declares,
    added to the config becomes a new option).

    Never deletes or renames anything. Needs an account with metadata:manage: run it once
    with an administrator's account via CPIMS_ADAPTER_PRIMERO__USERNAME and
    CPIMS_ADAPTER_PRIMERO__PASSWORD. Prints the role permissions an administrator must grant.
    """
    modules = tuple(module) if module else DEFAULT_MODULES
    config = settings()
    approvers = config.decisions
    with open_client() as client:
        report = install_forms(
            client,
            module_ids=modules,
            departments=sorted(config.departments),
            record_types=configured_record_types(config),
            approvers_by_role=bool(approvers.approver_roles or approvers.approver_user_groups),
        )
    print_report(report)


def print_report(report: InstallReport) -> None:
    """What changed, then the grants, as rich tables."""
    forms = Table("form", "action", "details", title="Primero forms")
    for change in report.forms:
        style = ACTION_STYLE[change.action]
        forms.add_row(change.unique_id, f"[{style}]{change.action}[/]", "; ".join(change.details))
    out.print(forms)
    grants = Table("role", "grant", "why", show_edge=False)
    for grant in report.grants:
        grants.add_row(grant.role, grant.permission, grant.why)
    out.print(
        Panel(
            grants,
            title="An administrator must grant (Primero: Settings › Roles)",
            subtitle="install-forms does not change roles",
        )
    )


def register(primero_app: typer.Typer) -> None:
    """Add `install-forms` to the `primero` command group."""
    primero_app.command("install-forms")(install_forms_command)


__all__ = ["configured_record_types", "print_report", "register"]
