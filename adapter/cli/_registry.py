"""`cpims-adapter registry ...`: the offender registry from the shell (issue 6).

For registry officers: ``import``, ``review``, ``subject-access``, ``remove``, ``appeal``,
``establishment``, ``notifications``, ``review-due``; ``keygen`` and ``sign`` for the signed
imports. For an establishment without an HTTP client: ``check``, which prompts for the
identity (so it stays out of shell history) and prints the answer and nothing else.
"""

from __future__ import annotations

import base64
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated

import typer
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import (
    Encoding,
    NoEncryption,
    PrivateFormat,
    PublicFormat,
    load_pem_private_key,
)
from pydantic import ValidationError
from rich.table import Column, Table

from adapter.cli._common import out, settings
from adapter.cli._progress import progress_bar
from adapter.config import Settings
from adapter.errors import ConfigError
from adapter.privacy import KeyRing
from adapter.registry import CheckRequest, Outcome, Registry, RegistrySettings, sign_file
from adapter.registry.errors import RequestRejected
from adapter.state import StateStore

app = typer.Typer(
    help="The offender registry: imports, checks, reviews, rights.", no_args_is_help=True
)
review_app = typer.Typer(
    help="The registry officers' queue of PENDING_REVIEW checks.", no_args_is_help=True
)
establishment_app = typer.Typer(help="Establishments that may check.", no_args_is_help=True)
appeal_app = typer.Typer(help="Appeals of check outcomes and of entries.", no_args_is_help=True)
app.add_typer(review_app, name="review")
app.add_typer(establishment_app, name="establishment")
app.add_typer(appeal_app, name="appeal")

API_KEY_ENV = "CPIMS_REGISTRY_API_KEY"
Officer = Annotated[str, typer.Option("--officer", help="The registry officer acting (audited).")]


def register(root: typer.Typer) -> None:
    """Mount ``registry`` on the root command."""
    root.add_typer(app, name="registry")


def registry_settings(config: Settings) -> RegistrySettings:
    """``Settings.registry`` once mounted; the defaults until then."""
    value = getattr(config, "registry", None)
    return value if isinstance(value, RegistrySettings) else RegistrySettings()


@contextmanager
def open_registry() -> Iterator[Registry]:
    config = settings()
    with StateStore(config.state.url) as store:
        ring = KeyRing.open(store, config.privacy.load_kek())
        yield Registry.open(store, ring, registry_settings(config))


# --- entries ---------------------------------------------------------------------------------


@app.command("import")
def import_file(
    file: Annotated[Path, typer.Argument(help="The CSV extract (header: see docs).", exists=True)],
    signature: Annotated[
        Path, typer.Option(help="Detached Ed25519 signature of FILE.", exists=True)
    ],
    officer: Officer,
    source: Annotated[
        str, typer.Option(help="Name of the register the extract comes from.")
    ] = "national_register",
) -> None:
    """Verify the officer's signature, then import every row, or nothing."""
    with (
        open_registry() as registry,
        progress_bar("importing the extract", unit="rows") as on_progress,
    ):
        result = registry.import_signed_csv(
            file, signature, officer, source=source, on_progress=on_progress
        )
    out.print(
        f"imported batch {result.batch_ref}: {result.rows} rows, {result.created} new, "
        f"{result.unchanged} already registered ({result.seconds:.1f} s)"
    )


@app.command("keygen")
def keygen(
    private_key: Annotated[
        Path, typer.Option("--out", help="Where to write the private key (PEM, 0600).")
    ],
) -> None:
    """Make an officer's Ed25519 key pair; prints the public key for registry.officer_keys."""
    if private_key.exists():
        raise ConfigError(f"{private_key} exists; choose a new file.")
    key = Ed25519PrivateKey.generate()
    pem = key.private_bytes(Encoding.PEM, PrivateFormat.PKCS8, NoEncryption())
    fd = os.open(private_key, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(pem)
    public = key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
    out.print(f"public key (registry.officer_keys): {base64.b64encode(public).decode()}")


@app.command("sign")
def sign(
    file: Annotated[
        Path, typer.Argument(help="The CSV extract to sign.", exists=True, dir_okay=False)
    ],
    key: Annotated[
        Path,
        typer.Option("--key", help="The officer's private key (PEM).", exists=True, dir_okay=False),
    ],
    signature: Annotated[Path, typer.Option("--out", help="Where to write the signature.")],
) -> None:
    """Sign an extract: Ed25519 over the file's SHA-256, written as base64."""
    try:
        private = load_pem_private_key(key.read_bytes(), password=None)
    except (ValueError, TypeError, UnsupportedAlgorithm):
        # cryptography's text names no secret, but says nothing an officer can act on either.
        private = None
    if not isinstance(private, Ed25519PrivateKey):
        raise ConfigError(
            f"{key} is not an unencrypted Ed25519 private key in PEM (make one with "
            "`cpims-adapter registry keygen`)."
        )
    signature.write_bytes(sign_file(file, private))
    out.print(f"signature written to {signature}")


@app.command("remove")
def remove(
    entry_ref: Annotated[str, typer.Argument(help="The entry reference (RE-…).")],
    reason: Annotated[str, typer.Option(help="Why (kept with the entry, not in logs).")],
    officer: Officer,
) -> None:
    """Take an entry off the register. The very next check no longer finds it."""
    with open_registry() as registry:
        registry.remove(entry_ref, reason, officer)
    out.print(f"{entry_ref} removed")


@app.command("review-due")
def review_due() -> None:
    """Entries whose three-yearly review is due."""
    with open_registry() as registry:
        due = registry.entries_due_for_review()
    table = Table(Column("entry", no_wrap=True, min_width=19), "review due", "status")
    for ref, when, status in due:
        table.add_row(ref, when.date().isoformat(), status)
    out.print(table)


@app.command("confirm-review")
def confirm_review(
    entry_ref: Annotated[str, typer.Argument(help="The entry reference (RE-…).")],
    officer: Officer,
) -> None:
    """Keep an entry after its periodic review (the next one is due in three years)."""
    with open_registry() as registry:
        due = registry.confirm_review(entry_ref, officer)
    out.print(f"{entry_ref} kept; next review {due.date().isoformat()}")


# --- checks ----------------------------------------------------------------------------------


@app.command("check")
def check(
    consent_ref: Annotated[str, typer.Option(help="Reference of the signed consent form.")],
    position: Annotated[str, typer.Option(help="The position applied for.")],
    purpose: Annotated[str, typer.Option(help="Purpose code, e.g. education.")],
    api_key: Annotated[
        str,
        typer.Option(
            envvar=API_KEY_ENV,
            prompt="Establishment API key",
            hide_input=True,
            help="Or $" + API_KEY_ENV + ".",
        ),
    ],
    cnic: Annotated[str, typer.Option(prompt=True, hide_input=True, help="Prompted if omitted.")],
    full_name: Annotated[str, typer.Option(prompt=True, help="Prompted if omitted.")],
    father_name: Annotated[str, typer.Option(prompt=True, help="Prompted if omitted.")],
    dob: Annotated[str, typer.Option(prompt="Date of birth (YYYY-MM-DD)", help="YYYY-MM-DD.")],
) -> None:
    """Check one person for your establishment. Prints the answer only."""
    with open_registry() as registry:
        establishment = registry.authenticate(api_key)
        try:
            request = CheckRequest(
                cnic=cnic,
                full_name=full_name,
                father_name=father_name,
                date_of_birth=dob,
                consent_ref=consent_ref,
                position=position,
                purpose=purpose,
            )
        except ValidationError as exc:
            registry.reject(establishment, "invalid_request")
            fields = ", ".join(sorted({str(e["loc"][0]) for e in exc.errors() if e["loc"]}))
            raise RequestRejected(
                f"the request is malformed: check {fields}.", reason="invalid_request"
            ) from None
        answer = registry.check(request, establishment)
    out.print(f"status:        {answer.status}", highlight=False)
    out.print(f"check ref:     {answer.check_ref}", highlight=False)
    out.print(f"checked at:    {answer.checked_at}", highlight=False)
    out.print(f"valid until:   {answer.valid_until}", highlight=False)
    out.print(f"how to appeal: {answer.how_to_appeal}", highlight=False)


# --- review ----------------------------------------------------------------------------------


@review_app.command("list")
def review_list() -> None:
    """PENDING_REVIEW checks waiting for an officer, the most urgent first."""
    with open_registry() as registry:
        items = registry.review_queue()
    # References are copied into the next command: never let the table shorten them.
    ref = Column("check", no_wrap=True, min_width=19)
    table = Table(ref, "establishment", "checked", "due by", "why", "position")
    for item in items:
        table.add_row(
            item.check_ref,
            item.establishment,
            item.checked_at.strftime("%Y-%m-%d %H:%M"),
            item.due_by.date().isoformat() if item.due_by else "-",
            item.rule,
            item.position or ("(monitoring)" if item.monitoring else "-"),
        )
    out.print(table)


@review_app.command("show")
def review_show(
    check_ref: Annotated[str, typer.Argument(help="The check reference (RC-…).")],
    officer: Officer,
) -> None:
    """The submitted identity and the candidate entries of one check (audited)."""
    with open_registry() as registry:
        detail = registry.review_detail(check_ref, officer)
    if detail.submitted is not None:
        s = detail.submitted
        out.print(f"submitted: {s.full_name} / father {s.father_name} / born {s.date_of_birth}")
    # One block per candidate, not a table: every field must be read in full.
    for c in detail.candidates:
        i = c.identity
        urdu = f" ({i.full_name_urdu})" if i.full_name_urdu else ""
        out.print(f"candidate {c.entry_ref} ({c.status}) from {c.source} {c.source_ref}")
        out.print(f"  {i.full_name}{urdu} / father {i.father_name or '-'} / born {i.date_of_birth}")
        out.print(f"  offence {c.offence_code}, convicted {c.conviction_date}, court {c.court}")


@review_app.command("resolve")
def review_resolve(
    check_ref: Annotated[str, typer.Argument(help="The check reference (RC-…).")],
    decision: Annotated[str, typer.Option(help="clear or do_not_engage.")],
    officer: Officer,
    note: Annotated[str, typer.Option(help="Why (e.g. Verisys result).")] = "",
) -> None:
    """Resolve a PENDING_REVIEW check CLEAR or DO_NOT_ENGAGE."""
    outcomes = {"clear": Outcome.CLEAR, "do_not_engage": Outcome.DO_NOT_ENGAGE}
    if decision.lower() not in outcomes:
        raise typer.BadParameter("use clear or do_not_engage", param_hint="--decision")
    with open_registry() as registry:
        registry.resolve(check_ref, outcomes[decision.lower()], officer, note)
    out.print(f"{check_ref} resolved {outcomes[decision.lower()]}")


# --- rights ----------------------------------------------------------------------------------


@app.command("subject-access")
def subject_access(
    officer: Officer,
    cnic: Annotated[str, typer.Option(prompt=True, hide_input=True, help="Prompted if omitted.")],
) -> None:
    """Which establishments checked (or monitor) a person. Verify their identity document
    first: the registry never looks anyone up by name."""
    with open_registry() as registry:
        rows = registry.subject_access(cnic, officer)
    table = Table("when", "establishment", "registration", "kind", "purpose", "position", "status")
    for r in rows:
        table.add_row(
            r.at.strftime("%Y-%m-%d %H:%M"),
            r.establishment,
            r.registration_number,
            r.kind,
            r.purpose or "-",
            r.position or "-",
            r.status,
        )
    out.print(table)


@appeal_app.command("open")
def appeal_open(
    grounds: Annotated[str, typer.Option(help="The subject's grounds (stored encrypted).")],
    received_by: Annotated[str, typer.Option(help="The officer receiving the appeal.")],
    check_ref: Annotated[
        str | None, typer.Option("--check", help="Appeal a check outcome.")
    ] = None,
    entry_ref: Annotated[
        str | None, typer.Option("--entry", help="Appeal an entry itself.")
    ] = None,
) -> None:
    """Record an appeal of a check outcome (--check) or of an entry (--entry)."""
    with open_registry() as registry:
        ref = registry.appeal(
            grounds=grounds, received_by=received_by, check_ref=check_ref, entry_ref=entry_ref
        )
    out.print(f"appeal {ref} opened")


@appeal_app.command("decide")
def appeal_decide(
    appeal_ref: Annotated[str, typer.Argument(help="The appeal reference (RA-…).")],
    granted: Annotated[bool, typer.Option("--grant/--refuse", help="Grant or refuse it.")],
    officer: Officer,
    note: Annotated[str, typer.Option(help="Why.")] = "",
) -> None:
    """Grant (check → CLEAR, entry removed) or refuse (entry active again) an appeal."""
    with open_registry() as registry:
        registry.decide_appeal(appeal_ref, granted=granted, officer=officer, note=note)
    out.print(f"appeal {appeal_ref} {'granted' if granted else 'refused'}")


# --- establishments and notifications ------------------------------------------------------


@establishment_app.command("add")
def establishment_add(
    registration_number: Annotated[
        str, typer.Argument(help="The establishment's registration number.")
    ],
    name: Annotated[str, typer.Option(help="The establishment's name.")],
    officer1_name: Annotated[str, typer.Option(help="First named officer.")],
    officer1_email: Annotated[str, typer.Option(help="Their e-mail.")],
    officer2_name: Annotated[str, typer.Option(help="Second named officer.")],
    officer2_email: Annotated[str, typer.Option(help="Their e-mail.")],
    officer: Officer,
    daily_quota: Annotated[
        int | None, typer.Option(help="Checks per day (default: config).")
    ] = None,
    monthly_quota: Annotated[
        int | None, typer.Option(help="Checks per month (default: config).")
    ] = None,
) -> None:
    """Register an establishment. Its API key is printed once and never stored."""
    with open_registry() as registry:
        est, api_key = registry.add_establishment(
            registration_number,
            name,
            ((officer1_name, officer1_email), (officer2_name, officer2_email)),
            registered_by=officer,
            daily_quota=daily_quota,
            monthly_quota=monthly_quota,
        )
    out.print(
        f"{est.registration_number} registered ({est.daily_quota}/day, {est.monthly_quota}/month)"
    )
    out.print(
        f"API key (shown once; give it to the establishment securely): {api_key}", highlight=False
    )


@establishment_app.command("list")
def establishment_list() -> None:
    """Registered establishments, their quotas and whether they are locked."""
    with open_registry() as registry:
        rows = registry.establishments()
    table = Table("registration", "name", "officers", "per day", "per month", "status")
    for e in rows:
        table.add_row(
            e.registration_number,
            e.name,
            f"{e.officers[0][0]}, {e.officers[1][0]}",
            str(e.daily_quota),
            str(e.monthly_quota),
            e.status + (f" ({e.status_reason})" if e.status_reason else ""),
        )
    out.print(table)


@establishment_app.command("unlock")
def establishment_unlock(
    registration_number: Annotated[str, typer.Argument(help="The establishment to unlock.")],
    officer: Officer,
    reason: Annotated[str, typer.Option(help="What the investigation found.")],
) -> None:
    """Lift a lock imposed after an anomaly."""
    with open_registry() as registry:
        registry.unlock(registration_number, officer, reason)
    out.print(f"{registration_number} unlocked")


@establishment_app.command("rotate-key")
def establishment_rotate_key(
    registration_number: Annotated[str, typer.Argument(help="The establishment.")],
    officer: Officer,
) -> None:
    """Issue a new API key; the old one stops working at once."""
    with open_registry() as registry:
        api_key = registry.rotate_api_key(registration_number, officer)
    out.print(f"new API key (shown once): {api_key}", highlight=False)


@app.command("notifications")
def notifications(
    undelivered: Annotated[bool, typer.Option(help="Only those not yet delivered.")] = False,
) -> None:
    """Monitoring notifications: which officers were (to be) told about which worker."""
    with open_registry() as registry:
        rows = registry.notifications(undelivered=undelivered)
    table = Table(
        "id", "when", "establishment", "worker", "check", "officer", "e-mail", "delivered"
    )
    for n in rows:
        table.add_row(
            str(n.id),
            n.created_at.strftime("%Y-%m-%d %H:%M"),
            n.establishment,
            n.worker_ref,
            n.check_ref,
            n.officer_name,
            n.officer_email,
            n.delivered_at.strftime("%Y-%m-%d %H:%M") if n.delivered_at else "no",
        )
    out.print(table)
