"""`cpims-adapter keys ...`, `audit verify` and `explain`: the privacy core from the shell."""

from __future__ import annotations

import csv
import json
import os
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from adapter.app.decisions import explain_case as explain
from adapter.cli._common import out, settings
from adapter.cli._progress import progress_bar
from adapter.config import Settings
from adapter.errors import ConfigError
from adapter.ops.status import AUDIT_VERIFY_JOB, recorded_run
from adapter.privacy import (
    AuditLog,
    DisclosurePolicy,
    KeyRing,
)
from adapter.state import StateStore

keys_app = typer.Typer(help="Manage the adapter's keys (case codes, audit, data at rest).")
audit_app = typer.Typer(help="Check the hash-chained disclosure audit log.")


def register(root: typer.Typer) -> None:
    root.add_typer(keys_app, name="keys")
    root.add_typer(audit_app, name="audit")
    root.command("explain")(explain_case)


def open_keyring(config: Settings, store: StateStore) -> KeyRing:
    """The key ring, unwrapped with the KEK from the environment or its file."""
    return KeyRing.open(store, config.privacy.load_kek())


def load_policy(config: Settings) -> DisclosurePolicy:
    return DisclosurePolicy.load(config.privacy.policy_dir)


@keys_app.command("init")
def keys_init() -> None:
    """Generate every missing key: audit, data-at-rest, and one case-code key per department
    in the policy. Safe to run again: existing keys are kept."""
    config = settings()
    policy = load_policy(config)
    with StateStore(config.state.url) as store:
        ring = KeyRing.init(store, config.privacy.load_kek(), policy.departments)
        statuses = ring.status()
    departments = ", ".join(policy.departments)
    out.print(f"key ring ready: {len(statuses)} keys for departments {departments}")


@keys_app.command("status")
def keys_status() -> None:
    """Show every key's role, version, state and age (never key material)."""
    config = settings()
    with StateStore(config.state.url) as store:
        statuses = open_keyring(config, store).status()
    table = Table("role", "scope", "version", "state", "age (days)", "retire after")
    for key in statuses:
        table.add_row(
            key.role,
            key.scope or "-",
            str(key.version),
            key.state,
            str(key.age_days),
            key.retire_after.date().isoformat() if key.retire_after else "-",
        )
    out.print(table)


@keys_app.command("rotate")
def keys_rotate(
    department: Annotated[str, typer.Argument(help="Department whose case-code key to rotate.")],
    crosswalk: Annotated[
        Path,
        typer.Option(help="Where to write the old→new code crosswalk (CSV, mode 0600)."),
    ],
    grace_days: Annotated[
        int | None, typer.Option(help="Days the old codes stay valid (default: config).")
    ] = None,
) -> None:
    """Issue a new case-code key for DEPARTMENT and write the crosswalk the department needs.

    Old codes keep working for the grace window, then the retired key is refused.
    """
    from datetime import timedelta

    config = settings()
    if crosswalk.exists():
        raise ConfigError(f"{crosswalk} exists; choose a new file for the crosswalk.")
    days = grace_days if grace_days is not None else config.privacy.rotation_grace_days
    with (
        StateStore(config.state.url) as store,
        progress_bar(f"re-issuing {department} case codes", unit="codes") as on_progress,
    ):
        rotation = open_keyring(config, store).rotate(
            department, grace=timedelta(days=days), on_progress=on_progress
        )
    # The crosswalk pairs two pseudonyms per case: readable by the service account only.
    fd = os.open(crosswalk, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["old_code", "new_code"])
        writer.writerows(rotation.crosswalk)
    out.print(
        f"{department}: key v{rotation.old_version} → v{rotation.new_version}; "
        f"{len(rotation.crosswalk)} codes re-issued (crosswalk in {crosswalk}); "
        f"old codes refused after {rotation.retire_after.isoformat()}"
    )


@audit_app.command("verify")
def audit_verify() -> None:
    """Check the whole audit chain: any edit, reorder or deletion is reported (exit 1)."""
    config = settings()
    with StateStore(config.state.url) as store, recorded_run(store, AUDIT_VERIFY_JOB) as run:
        report = AuditLog(store, open_keyring(config, store)).verify()
        run.stats["entries"] = report.entries
        if not report.ok:
            run.fail("AuditChainBroken")  # shown by `cpims-adapter status` and the metrics
    if report.ok:
        out.print(f"audit log intact: {report.entries} entries, head at {report.head_seq}")
        return
    out.print(f"[red]audit log BROKEN[/]: {report.entries} entries checked")
    for problem in report.problems:
        out.print(f"  - {problem}")
    raise typer.Exit(1)


def explain_case(
    case_id: Annotated[
        str,
        typer.Argument(help="The case: Primero's id (UUID), short id or case_id_display."),
    ],
    department: Annotated[str, typer.Option(help="The receiving department.")],
    purpose: Annotated[str, typer.Option(help="The purpose of the disclosure.")] = "referral",
) -> None:
    """For one case: what would be sent to DEPARTMENT and why each field is in or out.

    Excluded fields are named, never shown. For each referral to DEPARTMENT that is held, it
    says which decision would release it and who may give it. Nothing is sent or recorded.
    """
    from adapter.cli._primero import open_client

    config = settings()
    with open_client() as client, StateStore(config.state.url) as store:
        # Primero first: an unreachable Primero is the one problem reported (then the keys).
        record = client.get_case(client.resolve_case_id(case_id))
        doc = explain(
            config, store, open_keyring(config, store), client, record, department, purpose
        )
    out.print_json(json.dumps(doc, default=str, ensure_ascii=False))
