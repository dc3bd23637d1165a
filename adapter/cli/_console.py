"""`cpims-adapter console ...`: the web console's local accounts (README, "The web console").

    cpims-adapter console add-user ayesha.dpo --role dpo --name "Ayesha Khan"       # prompts
    cpims-adapter console add-user head.sch001 --role establishment_officer \\
        --establishment SCH-001 --name "Head teacher" --password-file /run/secrets/pw
    cpims-adapter console list-users [--format json]
    cpims-adapter console disable-user USERNAME

A password is never taken from the command line (it would sit in the shell history and the
process list): it is typed at a prompt or read from a file.
"""

from __future__ import annotations

import json
from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape
from rich.table import Table

from adapter.cli._common import out, settings
from adapter.cli._privacy import open_keyring
from adapter.console.accounts import TOTP_ROLES, Accounts, Role
from adapter.console.sessions import Sessions
from adapter.errors import ConfigError
from adapter.privacy.audit import AuditLog
from adapter.registry import Registry, UnknownReference
from adapter.state import StateStore

app = typer.Typer(
    help="The web console's local accounts: add, list, disable.", no_args_is_help=True
)


class Format(StrEnum):
    table = "table"
    json = "json"


def register(root: typer.Typer) -> None:
    """Mount ``console`` on the root command."""
    root.add_typer(app, name="console")


def _password(password_file: Path | None) -> str:
    if password_file is not None:
        try:
            return password_file.read_text(encoding="utf-8").rstrip("\r\n")
        except OSError as exc:
            raise ConfigError(
                f"--password-file: cannot read {password_file} ({exc.strerror}); give a "
                "readable file holding the password on its first line."
            ) from None
    return str(typer.prompt("Password", hide_input=True, confirmation_prompt=True))


@app.command("add-user")
def add_user(
    username: Annotated[
        str, typer.Argument(help="Sign-in name: lower-case letters, digits, . _ -")
    ],
    role: Annotated[
        Role,
        typer.Option(help="establishment_officer, reviewer, dpo or operator."),
    ],
    name: Annotated[str, typer.Option("--name", help="The person's name as the console shows it.")],
    establishment: Annotated[
        str | None,
        typer.Option(help="An establishment officer's establishment (registration number)."),
    ] = None,
    password_file: Annotated[
        Path | None,
        typer.Option(help="Read the password from this file instead of a prompt."),
    ] = None,
    locale: Annotated[str, typer.Option(help="en or ur.")] = "en",
    oidc_issuer: Annotated[
        str | None, typer.Option(help="Map the account to this OIDC issuer's subject.")
    ] = None,
    oidc_subject: Annotated[
        str | None, typer.Option(help="The subject (sub) the identity provider gives them.")
    ] = None,
    email: Annotated[
        str | None,
        typer.Option(
            help="Their work e-mail: an OIDC sign-in with this verified address finds the "
            "account and links it (docs/console-oidc.md)."
        ),
    ] = None,
    no_password: Annotated[
        bool, typer.Option(help="No local password: OIDC sign-in only.")
    ] = False,
) -> None:
    """Create a console account (the first one is usually the DPO). Reviewer, DPO and
    operator accounts set up a TOTP authenticator at their first sign-in."""
    config = settings()
    with StateStore(config.state.url) as store:
        keyring = open_keyring(config, store)
        if establishment is not None:
            try:
                Registry.open(store, keyring, config.registry).establishment(establishment)
            except UnknownReference:
                raise ConfigError(
                    f"--establishment: no establishment '{establishment}' is registered; see "
                    "`cpims-adapter registry establishment list`."
                ) from None
        password = None if no_password else _password(password_file)
        account = Accounts(store, keyring).add(
            username,
            display_name=name,
            role=role,
            password=password,
            created_by="cli",
            establishment=establishment,
            locale=locale,
            oidc_issuer=oidc_issuer,
            oidc_subject=oidc_subject,
            email=email,
        )
        AuditLog(store, keyring).append(
            {
                "event": "console_account_added",
                "recorded_by": "cli",
                "role": str(account.role),
                "reason": f"account={account.username}",
            }
        )
    second = " (sets up TOTP at first sign-in)" if account.role in TOTP_ROLES else ""
    out.print(f"account {escape(account.username)} created as {account.role}{second}")


@app.command("list-users")
def list_users(
    fmt: Annotated[Format, typer.Option("--format", help="table, or json (one per line).")] = (
        Format.table
    ),
) -> None:
    """Every console account: username, role, establishment, TOTP set up, disabled."""
    config = settings()
    with StateStore(config.state.url) as store:
        accounts = Accounts(store, open_keyring(config, store)).list()
    if fmt is Format.json:
        for a in accounts:
            document = {
                "username": a.username,
                "role": str(a.role),
                "establishment": a.establishment,
                "totp": a.totp_confirmed,
                "disabled": a.disabled,
                "last_sign_in_at": a.last_sign_in_at.isoformat() if a.last_sign_in_at else None,
            }
            out.print_json(json.dumps(document), indent=None)
        return
    table = Table("username", "role", "establishment", "totp", "disabled", "last sign-in")
    for a in accounts:
        table.add_row(
            escape(a.username),
            str(a.role),
            a.establishment or "-",
            "yes" if a.totp_confirmed else "no",
            "yes" if a.disabled else "no",
            f"{a.last_sign_in_at:%Y-%m-%d %H:%M}" if a.last_sign_in_at else "-",
        )
    out.print(table)


@app.command("disable-user")
def disable_user(username: Annotated[str, typer.Argument(help="The account to disable.")]) -> None:
    """Disable an account and end its sessions at once (the account is kept for the audit)."""
    config = settings()
    with StateStore(config.state.url) as store:
        keyring = open_keyring(config, store)
        account = Accounts(store, keyring).disable(username)
        Sessions(store, config.console).end_all_of(account.id)
        AuditLog(store, keyring).append(
            {
                "event": "console_account_disabled",
                "recorded_by": "cli",
                "role": str(account.role),
                "reason": f"account={account.username}",
            }
        )
    out.print(f"account {escape(account.username)} disabled")
