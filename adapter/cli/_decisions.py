"""`cpims-adapter decisions ...`: the fallback for sites that decide outside Primero.

Supervisors normally record S3 approvals and overrides of consent in the case's "Disclosure
decisions" form in Primero, where the record history proves who wrote them. A site that
decides on paper lets its data-protection officer (DPO) enter the decision on the server:
the same checks (the approver is one of ``[decisions]``'s approvers, never the adapter's own
account, not the person who made the referral; a legal reference and a reason for an override;
at most ``lifetime_hours``), the same hash-chained audit.

    cpims-adapter decisions add CASE --department police --basis mandatory_report \\
        --legal-reference "SCPA Act 2011 s.15" --reason-file note.txt --approved-by cp_supervisor1
    cpims-adapter decisions list [--case CASE_ID] [--department D] [--format json]
    cpims-adapter decisions held [--department D] [--format json]
    cpims-adapter decisions log [--format json]
    cpims-adapter decisions revoke ID
"""

from __future__ import annotations

import json
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.markup import escape
from rich.table import Table

from adapter.app.decisions import DecisionRequest, record_decision, revoke_decision
from adapter.cli._common import out, settings
from adapter.cli._primero import open_client
from adapter.cli._privacy import open_keyring
from adapter.clock import utcnow
from adapter.errors import ConfigError
from adapter.privacy import ConsentOverride, OverrideBasis
from adapter.privacy.audit import AuditLog
from adapter.privacy.consent import list_overrides
from adapter.state import StateStore
from adapter.state.held import HeldReferrals

app = typer.Typer(
    help="Record, list and revoke disclosure decisions (S3 approvals, overrides of consent) "
    "on the server; supervisors normally record them in Primero.",
    no_args_is_help=True,
)

# Audit events a DPO reviews (adapter/privacy/gate.py, adapter/jobs/sync.py).
_DECISION_EVENTS = {"override_recorded", "override_revoked", "decision_refused"}


class Format(StrEnum):
    table = "table"
    json = "json"


def register(root: typer.Typer) -> None:
    root.add_typer(app, name="decisions")


@app.command("add")
def add(
    case: Annotated[
        str, typer.Argument(help="The case: Primero's id, short_id or case_id_display.")
    ],
    department: Annotated[str, typer.Option(help="The department the decision lets data go to.")],
    basis: Annotated[OverrideBasis, typer.Option(help="s3_approval, or an override of consent.")],
    approved_by: Annotated[
        str, typer.Option(help="The approver's Primero user name (one of [decisions]).")
    ],
    legal_reference: Annotated[
        str, typer.Option(help="Act and section, or the order number (overrides).")
    ] = "",
    reason: Annotated[
        str | None, typer.Option(help="Why (kept in the adapter only; never sent or audited).")
    ] = None,
    reason_file: Annotated[
        Path | None, typer.Option(help="Read the reason from this file instead.")
    ] = None,
    requested_by: Annotated[
        str | None,
        typer.Option(help="Who asked (default: who made the case's referrals, from Primero)."),
    ] = None,
    purpose: Annotated[
        str | None, typer.Option(help="Only this purpose (default: every purpose).")
    ] = None,
    hours: Annotated[
        float | None, typer.Option(help="Valid for this many hours (default and maximum: config).")
    ] = None,
    output: Annotated[Format, typer.Option("--format", help="table or json.")] = Format.table,
) -> None:
    """Record a decision taken outside Primero, after the checks a Primero decision gets."""
    config = settings()
    text = reason_file.read_text(encoding="utf-8").strip() if reason_file else (reason or "")
    request = DecisionRequest(
        case=case,
        department=department,
        basis=basis,
        approved_by=approved_by,
        legal_reference=legal_reference,
        reason=text,
        requested_by=requested_by,
        purpose=purpose,
        hours=hours,
    )
    with open_client() as client, StateStore(config.state.url) as store:
        stored = record_decision(config, store, open_keyring(config, store), client, request)
    _print_overrides([stored], output, title="decision recorded")


@app.command("list")
def list_(
    case_id: Annotated[str | None, typer.Option("--case", help="Only this case (UUID).")] = None,
    department: Annotated[str | None, typer.Option(help="Only this department.")] = None,
    output: Annotated[Format, typer.Option("--format", help="table or json.")] = Format.table,
) -> None:
    """Decisions recorded on the server, newest first, with their state.

    State is active, expired or revoked. Decisions recorded in Primero are in the case, and
    in `decisions log`."""
    config = settings()
    with StateStore(config.state.url) as store, store.transaction() as conn:
        found = list_overrides(conn, case_id=case_id, department=department)
    _print_overrides(found, output, title="decisions recorded on the server")


@app.command("revoke")
def revoke(
    decision_id: Annotated[int, typer.Argument(help="The id `decisions list` shows.")],
) -> None:
    """End a decision recorded on the server before it expires (audited).

    A decision recorded in Primero is revoked by removing its row from the case's
    "Disclosure decisions"."""
    config = settings()
    with StateStore(config.state.url) as store:
        if not revoke_decision(config, store, open_keyring(config, store), decision_id):
            raise ConfigError(f"no active decision #{decision_id} (see `decisions list`).")
    out.print(f"decision #{decision_id} revoked: nothing further leaves on it")


@app.command("held")
def held(
    department: Annotated[str | None, typer.Option(help="Only this department.")] = None,
    output: Annotated[Format, typer.Option("--format", help="table or json.")] = Format.table,
) -> None:
    """Referrals waiting for a person's decision, oldest first.

    `explain CASE_ID --department D` shows which decision would release one and who may give
    it."""
    config = settings()
    with StateStore(config.state.url) as store:
        rows = HeldReferrals(store).listed(department=department)
    now = utcnow()
    docs: list[dict[str, Any]] = [
        {
            "case_id": h.case_id,
            "referral_id": h.referral_id,
            "department": h.department,
            "awaiting": h.awaiting,
            "held_since": h.held_since.isoformat(),
            "waiting_hours": round((now - h.held_since).total_seconds() / 3600, 1),
            "reason": h.reason,
        }
        for h in rows
    ]
    if output is Format.json:
        out.print_json(json.dumps(docs), indent=None)
        return
    table = Table("case", "department", "awaiting", "waiting (h)", "why", title="held referrals")
    for doc in docs:
        table.add_row(
            doc["case_id"],
            doc["department"],
            doc["awaiting"],
            str(doc["waiting_hours"]),
            escape(doc["reason"]),
        )
    out.print(table)


@app.command("log")
def log(
    limit: Annotated[int, typer.Option(help="At most this many entries (newest last).")] = 200,
    output: Annotated[Format, typer.Option("--format", help="table or json.")] = Format.table,
) -> None:
    """For the DPO: every decision used or refused, from the audit log.

    Who, basis, legal reference; never a reason's text. Run `audit verify` to check the
    hash chain."""
    config = settings()
    with StateStore(config.state.url) as store:
        audit = AuditLog(store, open_keyring(config, store))
        found: list[dict[str, Any]] = []
        after = 0
        while batch := audit.entries(after_seq=after):
            after = batch[-1].seq
            found += [
                {"seq": r.seq, "recorded_at": r.recorded_at.isoformat(), **r.entry}
                for r in batch
                if r.entry.get("event") in _DECISION_EVENTS or r.entry.get("approved_by")
            ]
    found = found[-limit:]
    if output is Format.json:
        out.print_json(json.dumps(found, default=str), indent=None)
        return
    table = Table("seq", "when", "event", "department", "basis", "by", "legal reference", "note")
    for e in found:
        by = e.get("approved_by") or e.get("recorded_by") or ""
        table.add_row(
            str(e["seq"]),
            e["recorded_at"][:16],
            e["event"],
            str(e.get("department") or ""),
            escape(_joined(e.get("approval_bases") or e.get("consent_basis"))),
            escape(_joined(by)),
            escape(_joined(e.get("legal_reference"))),
            escape(str(e.get("problem") or e.get("reason") or "")),
        )
    out.print(table)


def _joined(value: Any) -> str:
    if isinstance(value, list):
        return ", ".join(str(v) for v in value)
    return "" if value is None else str(value)


def _print_overrides(found: list[ConsentOverride], output: Format, *, title: str) -> None:
    now = utcnow()
    docs: list[dict[str, Any]] = [
        {
            "id": o.id,
            "case_id": o.case_id,
            "department": o.department,
            "purpose": o.purpose,
            "basis": str(o.basis),
            "legal_reference": o.legal_reference,
            "requested_by": o.requested_by,
            "approved_by": o.approved_by,
            "recorded_at": o.created_at.isoformat(),
            "expires_at": o.expires_at.isoformat(),
            "state": "revoked"
            if o.revoked_at
            else ("expired" if now >= o.expires_at else "active"),
        }
        for o in found
    ]
    if output is Format.json:
        out.print_json(json.dumps(docs), indent=None)
        return
    table = Table(
        "id", "case", "department", "basis", "approved by", "expires", "state", title=title
    )
    for doc in docs:
        table.add_row(
            str(doc["id"]),
            doc["case_id"],
            doc["department"],
            doc["basis"],
            escape(doc["approved_by"]),
            doc["expires_at"][:16],
            doc["state"],
        )
    out.print(table)
