"""`cpims-adapter sync JOB` and `cpims-adapter deadletter ...`."""

from __future__ import annotations

import hashlib
import hmac
import json
import secrets
from collections.abc import Callable
from typing import Annotated, Any

import typer
from rich.table import Table

from adapter.cli._common import err, out, parse_since, settings
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
            "line; values masked, codes shown), send nothing, keep the cursor.",
        ),
    ] = False,
    since: Annotated[
        str | None, typer.Option(help="Re-read cases changed since this ISO 8601 time.")
    ] = None,
    show_values: Annotated[
        bool,
        typer.Option(
            "--show-values",
            help="With --dry-run: print the values themselves instead of masking them (for "
            "a data-protection officer's review; the output then holds personal data).",
        ),
    ] = False,
) -> None:
    """Run one sync of JOB: pull changed cases, send referrals, collect statuses, write back."""
    from adapter.app.jobs import open_job

    config = settings()
    if show_values and not dry_run:
        raise typer.BadParameter(
            "only a dry run prints values: add --dry-run", param_hint="--show-values"
        )
    mask: Callable[[Any], Any] = _unmasked if show_values else value_mask()
    printed = 0

    def emit(line: dict[str, Any]) -> None:
        nonlocal printed
        printed += 1
        out.print_json(json.dumps(mask(line), default=str, ensure_ascii=False), indent=None)

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
        if show_values:
            err.print(
                f"dry run: {printed} document(s) with their values: this output holds personal "
                "data; do not paste it into tickets or chats."
            )
        else:
            err.print(
                f"dry run: {printed} document(s); values masked (length and a per-run hash "
                "prefix), codes shown. --show-values prints the values."
            )
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
        ("written back into Primero", _counts(report.written_back)),
        ("waiting for a Primero permission", _counts(report.waiting_for_grant)),
    ]
    if report.not_carried:
        rows.append(("allowed but not carried", ", ".join(sorted(report.not_carried))))
    for name, value in rows:
        table.add_row(name, str(value))
    out.print(table)
    # A write-back waiting for a permission is said by the run's WARNING line, with the grant.
    if report.dead_lettered or report.waiting_for_grant:
        raise typer.Exit(1)


# Keys whose values are codes the adapter or a standard defines (pseudonymous keys and codes,
# FHIR structure, service and concern codes), never a child's data: shown as they are. Every
# other string or number in a dry-run line is masked, so a field a new mapping adds is masked
# until someone lists it here (default deny, like the allow-lists).
SHOWN_KEYS = frozenset(
    {
        # the dry-run envelope and the adapter's own pseudonymous keys (privacy.md §6.1)
        "job",
        "department",
        "kind",
        "route",
        "referral_key",
        "case_code",
        "referred_by",
        "basis",
        "service",
        "priority",
        "protection_concerns",
        "sex",
        "gender",
        # FHIR R4 structure and codings
        "resourceType",
        "type",
        "fullUrl",
        "method",
        "url",
        "ifNoneExist",
        "reference",
        "system",
        "code",
        "display",
        "status",
        "intent",
    }
)
_HASH_CHARS = 8


def value_mask(key: bytes | None = None) -> Callable[[Any], Any]:
    """A function masking a dry-run line: each value not under a key of ``SHOWN_KEYS`` becomes
    ``<masked N chars #xxxxxxxx>``, its length and a short HMAC prefix. The HMAC key is new for
    each run (unless given), so equal values share a prefix within one run's output, and a
    prefix can be neither looked up (a date of birth has a few thousand values) nor compared
    across runs."""
    secret = key if key is not None else secrets.token_bytes(32)

    def masked(value: str | int | float) -> str:
        text = str(value)
        digest = hmac.new(secret, text.encode(), hashlib.sha256).hexdigest()[:_HASH_CHARS]
        return f"<masked {len(text)} chars #{digest}>"

    def walk(value: Any, shown: bool) -> Any:
        if isinstance(value, dict):
            return {k: walk(v, shown=k in SHOWN_KEYS) for k, v in value.items()}
        if isinstance(value, list):
            return [walk(item, shown) for item in value]
        if isinstance(value, bool) or value is None or shown:
            return value
        if isinstance(value, str | int | float):
            return masked(value)
        return masked(str(value))

    return lambda line: walk(line, shown=False)


def _unmasked(line: Any) -> Any:
    return line


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
