"""`cpims-adapter keys ...`, `audit verify` and `explain`: the privacy core from the shell."""

from __future__ import annotations

import csv
import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from adapter.cli._common import out, settings
from adapter.cli._progress import progress_bar
from adapter.config import Settings
from adapter.errors import ConfigError
from adapter.jobs.decisions import DecisionReader
from adapter.mappings.routing import RoutedReferral, route_referrals
from adapter.ops.status import AUDIT_VERIFY_JOB, recorded_run
from adapter.privacy import (
    AuditLog,
    ConsentOverride,
    DisclosureGate,
    DisclosurePolicy,
    KeyRing,
    Stage,
)
from adapter.privacy.decisions import RecordedDecision, for_referral, release_hint
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
    jobs = [job for job in config.jobs.values() if job.department == department]
    with open_client() as client, StateStore(config.state.url) as store:
        case = client.get_case(client.resolve_case_id(case_id))
        case_id = str(case["id"])
        transitions = client.list_referrals(case_id)
        routed = [ref for job in jobs for ref in route_referrals(case, transitions, job)]
        reader = DecisionReader(
            client, config.decisions, department, service_user=config.primero.username
        )
        recorded = reader.for_cases([case]).get(case_id, [])
        gate = DisclosureGate(store, load_policy(config), open_keyring(config, store))
        overrides = [
            *gate.overrides(case_id),
            *(d.override(case_id) for d in recorded if d.valid),
        ]
        first = routed[0].transition if routed else None
        doc = gate.explain(case, department, purpose, overrides=overrides, referral=first).to_dict()
        doc["referrals"] = [
            _referral_view(gate, case, department, purpose, ref, overrides, recorded, reader)
            for ref in routed
        ]
        doc["decisions"] = [d.summary() for d in recorded]
    out.print_json(json.dumps(doc, default=str, ensure_ascii=False))


def _referral_view(
    gate: DisclosureGate,
    case: Mapping[str, Any],
    department: str,
    purpose: str,
    ref: RoutedReferral,
    overrides: list[ConsentOverride],
    recorded: list[RecordedDecision],
    reader: DecisionReader,
) -> dict[str, Any]:
    """One referral's verdict and, when a person's decision would release it, which and by
    whom (DEVELOPERS: a held referral is never silent)."""
    requester = ref.transition.get("transitioned_by") if ref.transition else None
    requester = requester if isinstance(requester, str) else None
    decision = gate.policy.decide(
        case,
        department,
        purpose,
        Stage.IDENTIFIED,
        codes=gate.keyring,
        overrides=overrides,
        referral=ref.transition,
    )
    view: dict[str, Any] = {
        "referral_id": ref.referral_id,
        "requested_by": requester,
        "allowed": decision.allowed,
        "reason": decision.reason,
        "decisions": [d.summary() for d in for_referral(recorded, requester)],
    }
    if decision.awaiting:
        view["release"] = release_hint(decision.awaiting, department, reader.approvers, requester)
    return view
