"""`cpims-adapter sync JOB` and `cpims-adapter deadletter ...`."""

from __future__ import annotations

import json
from typing import Annotated, Any

import typer
from rich.table import Table

from adapter.cli._common import out, parse_since, settings
from adapter.cli._progress import observe_pull, progress_bar
from adapter.logs import log_context
from adapter.state import StateStore
from adapter.state.outbox import Outbox

deadletter_app = typer.Typer(
    help="Messages that failed max_attempts times: inspect, retry or drop.", no_args_is_help=True
)


def register(root: typer.Typer) -> None:
    root.command("sync")(sync)
    root.add_typer(deadletter_app, name="deadletter")


def sync(
    job: Annotated[str, typer.Argument(help="A job from the config's [jobs.*] sections.")],
    dry_run: Annotated[
        bool,
        typer.Option(
            "--dry-run",
            help="Run the whole pipeline, print what would be sent (one JSON document per "
            "line), send nothing, keep the cursor.",
        ),
    ] = False,
    since: Annotated[
        str | None, typer.Option(help="Re-read cases changed since this ISO 8601 time.")
    ] = None,
) -> None:
    """Run one sync of JOB: pull changed cases, send referrals, collect statuses, write back."""
    from adapter.jobs.sync import open_job

    config = settings()

    def emit(line: dict[str, Any]) -> None:
        out.print_json(json.dumps(line, default=str, ensure_ascii=False), indent=None)

    # A backfill (--since) can read 100k cases: show its progress (stderr, terminals only).
    backfill = since is not None and not dry_run
    with (
        log_context(job=job, department=config.job(job).department),
        progress_bar(f"backfill {job}", unit="cases", enabled=backfill) as on_progress,
        open_job(config, job, emit=emit) as sync_job,
    ):
        observe_pull(sync_job, on_progress)
        report = sync_job.run(dry_run=dry_run, since=parse_since(since, "--since"))
    if dry_run:
        return
    table = Table("what", "count", title=f"sync {job} → {report.department}")
    pull = report.pull
    rows: list[tuple[str, Any]] = [
        ("cases read / new", f"{pull.records_read if pull else 0} / {report.cases_examined}"),
        ("referrals addressed to the department", report.referrals_routed),
        ("queued", _counts(report.enqueued)),
        ("unchanged (nothing to send)", report.unchanged),
        ("refused by policy", _counts(report.refused)),
        ("delivered", _counts(report.delivered)),
        ("retrying later", report.retrying),
        ("dead letters", report.dead_lettered),
        ("status updates", report.status_updates),
        ("written back into Primero", report.write_backs),
    ]
    if report.not_carried:
        rows.append(("allowed but not carried", ", ".join(sorted(report.not_carried))))
    for name, value in rows:
        table.add_row(name, str(value))
    out.print(table)
    if report.dead_lettered:
        raise typer.Exit(1)


def _counts(counter: dict[str, int]) -> str:
    return ", ".join(f"{k} {v}" for k, v in sorted(counter.items())) or "0"


@deadletter_app.command("list")
def deadletter_list() -> None:
    """List dead letters: id, job, destination, kind, attempts, last error (redacted)."""
    config = settings()
    with StateStore(config.state.url) as store:
        letters = Outbox(store).dead_letters(limit=1000)
    table = Table("id", "job", "destination", "kind", "attempts", "error", "since")
    for letter in letters:
        table.add_row(
            str(letter.id),
            letter.job,
            letter.destination,
            letter.kind,
            str(letter.attempts),
            f"{letter.last_error_class}: {letter.last_error or ''}",
            letter.created_at.isoformat(timespec="seconds"),
        )
    out.print(table)
    out.print(f"{len(letters)} dead letters")


@deadletter_app.command("show")
def deadletter_show(
    message_id: Annotated[int, typer.Argument(help="The dead letter's id.")],
    payload: Annotated[
        bool, typer.Option(help="Also decrypt and print the pseudonymised document (needs KEK).")
    ] = False,
) -> None:
    """Show one dead letter; with --payload, the document it carries."""
    config = settings()
    with StateStore(config.state.url) as store:
        letter = Outbox(store).get(message_id)
        if letter is None or letter.status != "dead":
            raise typer.BadParameter(f"no dead letter {message_id}", param_hint="MESSAGE_ID")
        out.print(
            {
                "id": letter.id,
                "job": letter.job,
                "destination": letter.destination,
                "kind": letter.kind,
                "attempts": letter.attempts,
                "error_class": letter.last_error_class,
                "error": letter.last_error,
                "created_at": letter.created_at.isoformat(),
            }
        )
        if payload:
            from adapter.cli._privacy import open_keyring

            document = open_keyring(config, store).decrypt_payload(
                letter.payload, context=letter.idempotency_key.encode()
            )
            out.print_json(document.decode())


@deadletter_app.command("retry")
def deadletter_retry(
    message_ids: Annotated[list[int], typer.Argument(help="Dead letters to queue again.")],
) -> None:
    """Queue dead letters again with a fresh attempt budget (the next sync delivers them)."""
    config = settings()
    with StateStore(config.state.url) as store:
        count = Outbox(store).retry(message_ids)
    out.print(f"{count} dead letters queued again")


@deadletter_app.command("drop")
def deadletter_drop(
    message_ids: Annotated[list[int], typer.Argument(help="Dead letters to give up on.")],
) -> None:
    """Give up on dead letters for good; their payloads are erased."""
    config = settings()
    with StateStore(config.state.url) as store:
        count = Outbox(store).drop(message_ids)
    out.print(f"{count} dead letters dropped")
