"""`cpims-adapter outbox list|show`: the messages not delivered yet — never tried, retrying or
dead — with their age and last error, so an operator sees what ``status`` counts.

The last error is shown as the outbox stored it: our errors are built without personal data
(a foreign exception keeps its class only; adapter/jobs/delivery.py). Payloads are never shown
here (``deadletter show --payload`` decrypts a dead letter's, with the KEK).
"""

from __future__ import annotations

import json
from datetime import datetime
from enum import StrEnum
from typing import Annotated, Any

import typer
from rich.markup import escape
from rich.table import Table

from adapter.cli._common import out, settings
from adapter.clock import utcnow
from adapter.jobs.writeback import needed_grant
from adapter.ops.status import format_duration
from adapter.state import StateStore
from adapter.state.outbox import DEAD, PENDING, RETRYING, Outbox, OutboxMessage

app = typer.Typer(
    help="Messages not delivered yet: never tried, retrying or dead.", no_args_is_help=True
)


class Format(StrEnum):
    table = "table"
    json = "json"


class Waiting(StrEnum):
    pending = PENDING
    retrying = RETRYING
    dead = DEAD


def register(root: typer.Typer) -> None:
    root.add_typer(app, name="outbox")


@app.command("list")
def outbox_list(
    destination: Annotated[
        str | None,
        typer.Option(help="A department from the config, or primero (write-backs)."),
    ] = None,
    status: Annotated[
        Waiting | None,
        typer.Option(
            "--status", help="pending (never tried), retrying (failed, tried again) or dead."
        ),
    ] = None,
    output: Annotated[
        Format,
        typer.Option("--format", help="table for people, json (one object per line)."),
    ] = Format.table,
) -> None:
    """Messages not delivered yet, oldest first: id, job, destination, kind, status, attempts,
    age, next attempt, last error (redacted)."""
    config = settings()
    with StateStore(config.state.url) as store:
        messages = Outbox(store).waiting(
            destination=destination, status=status.value if status else None, limit=1000
        )
    now = utcnow()
    if output is Format.json:
        for message in messages:
            out.print_json(json.dumps(_document(message, now)), indent=None)
        return
    table = Table(
        "id",
        "job",
        "destination",
        "kind",
        "status",
        "attempts",
        "age",
        "next attempt",
        "last error",
        title="outbox",
    )
    for message in messages:
        table.add_row(
            str(message.id),
            message.job,
            message.destination,
            message.kind,
            _status(message),
            str(message.attempts),
            format_duration(_age(message, now)),
            _when(message.next_attempt_at) if message.status == PENDING else "-",
            escape(_error(message)),
        )
    out.print(table)
    out.print(f"{len(messages)} messages", highlight=False)


@app.command("show")
def outbox_show(
    message_id: Annotated[int, typer.Argument(help="The message's id (from outbox list).")],
) -> None:
    """One message not delivered yet: where it goes, how often it was tried, its last error,
    and for a write-back waiting for a permission, the grant it needs."""
    config = settings()
    with StateStore(config.state.url) as store:
        message = Outbox(store).get(message_id)
    if message is None or message.status not in (PENDING, DEAD):
        raise typer.BadParameter(
            f"no message {message_id} waits in the outbox (delivered, dropped or unknown)",
            param_hint="MESSAGE_ID",
        )
    document = _document(message, utcnow())
    if message.last_error_class == "PrimeroNotPermitted":
        job = config.jobs.get(message.job)
        grant = needed_grant(message.kind, list(job.primero_fields.values()) if job else [])
        document["needs"] = str(grant) if grant else None
    out.print_json(json.dumps(document))


def _document(message: OutboxMessage, now: datetime) -> dict[str, Any]:
    return {
        "id": message.id,
        "job": message.job,
        "destination": message.destination,
        "kind": message.kind,
        "status": _status(message),
        "attempts": message.attempts,
        "created_at": message.created_at.isoformat(),
        "age_seconds": round(_age(message, now), 3),
        "next_attempt_at": message.next_attempt_at.isoformat()
        if message.status == PENDING
        else None,
        "error_class": message.last_error_class,
        "error": message.last_error,
    }


def _status(message: OutboxMessage) -> str:
    if message.status == DEAD:
        return DEAD
    return RETRYING if message.attempts else PENDING


def _age(message: OutboxMessage, now: datetime) -> float:
    return max(0.0, (now - message.created_at).total_seconds())


def _error(message: OutboxMessage) -> str:
    if not message.last_error_class:
        return "-"
    return f"{message.last_error_class}: {message.last_error or ''}"


def _when(at: datetime) -> str:
    return at.strftime("%Y-%m-%d %H:%M:%SZ")
