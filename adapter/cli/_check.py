"""`cpims-adapter check`: everything a run needs, checked the way Airbyte checks a connector.

Each row is one thing a run relies on, answered by a harmless action: the config file read,
every secret and key file, the key-encryption key and the key ring, the state store, Primero
(version, the account, each permission and form the configured jobs use) and every configured
department (FHIR ``GET /metadata``, a REST department's health route or one item of its status
feed, an SFTP login and listing, the e-mail fallback's sign-in). A "NO" is a failed row and
the command exits 1; "-" marks what this configuration does not need; "?" what cannot be
known without writing. Never a secret, a case or a value from Primero in the output.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import typer
from pydantic import BaseModel
from rich.markup import escape
from rich.table import Table

from adapter.app.departments import open_department
from adapter.cli._common import out, settings, state
from adapter.cli._primero import open_client
from adapter.config import Settings, resolve_config_path
from adapter.errors import AdapterError
from adapter.primero import decision_form
from adapter.primero.linked_records import FORM_ID as LINKED_RECORDS_FORM
from adapter.privacy import DisclosurePolicy, KeyRing
from adapter.state import StateStore

Verdict = Literal["yes", "NO", "-", "?"]
_SHOWN = {"yes": "[green]yes[/]", "NO": "[red]NO[/]", "-": "[dim]-[/]", "?": "[yellow]?[/]"}


@dataclass(frozen=True)
class Row:
    check: str
    verdict: Verdict
    detail: str


def register(root: typer.Typer) -> None:
    root.command("check")(check)


def check() -> None:
    """Check the config, secrets, keys, state store, Primero and every department.

    Every department gets one harmless request; Primero at most one authenticated attempt (a
    wrong password costs one failed login, never six: Primero locks the account after six).
    Exit 1 if any row says NO.
    """
    config = settings()
    rows = [_config_file(config), *_files(config), *_policy(config)]
    store_rows, store = _state_store(config)
    rows += store_rows
    try:
        rows += _keys(config, store)
    finally:
        if store is not None:
            store.close()
    rows += _primero(config)
    rows += [_department(config, name) for name in sorted(config.departments)]
    table = Table("check", "ok", "detail", title="cpims-adapter check")
    for row in rows:
        table.add_row(row.check, _SHOWN[row.verdict], escape(row.detail))
    out.print(table)
    if any(row.verdict == "NO" for row in rows):
        raise typer.Exit(1)


def _config_file(config: Settings) -> Row:
    path, _ = resolve_config_path(state.config_path)
    if path.is_file():
        return Row("config file", "yes", f"read {path.resolve()}")
    if config.primero.url:
        return Row(
            "config file", "yes", f"none at {path}; settings from the environment and defaults"
        )
    return Row(
        "config file",
        "NO",
        f"none found at {path} and primero.url is not set: copy config/adapter.example.toml "
        "and pass --config PATH (or set CPIMS_ADAPTER_CONFIG)",
    )


def _paths(model: BaseModel, prefix: str) -> Iterator[tuple[str, Path]]:
    """Every ``*_file`` / ``*_dir`` setting that is set, with its dotted name."""
    for name in type(model).model_fields:
        value = getattr(model, name)
        where = f"{prefix}.{name}" if prefix else name
        if isinstance(value, BaseModel):
            yield from _paths(value, where)
        elif isinstance(value, dict):
            for key, item in value.items():
                if isinstance(item, BaseModel):
                    yield from _paths(item, f"{where}.{key}")
        elif isinstance(value, Path) and name.endswith("_file"):
            yield where, value


def _files(config: Settings) -> list[Row]:
    """Secret, key, CA and mapping files: present and readable by this user (never read out)."""
    rows = []
    for name, path in _paths(config, ""):
        if not path.is_file():
            rows.append(Row(name, "NO", f"{path}: no such file"))
        elif not os.access(path, os.R_OK):
            rows.append(Row(name, "NO", f"{path}: not readable by this user"))
        else:
            rows.append(Row(name, "yes", f"{path} readable"))
    return rows


def _policy(config: Settings) -> list[Row]:
    try:
        policy = DisclosurePolicy.load(config.privacy.policy_dir)
    except AdapterError as exc:
        return [Row("disclosure policy", "NO", str(exc))]
    missing = sorted(set(config.departments) - set(policy.departments))
    if missing:
        return [
            Row(
                "disclosure policy",
                "NO",
                f"no policy file for {', '.join(missing)} in {config.privacy.policy_dir}: "
                "nothing may be sent to them (default deny)",
            )
        ]
    return [Row("disclosure policy", "yes", f"{len(policy.departments)} departments")]


def _state_store(config: Settings) -> tuple[list[Row], StateStore | None]:
    try:
        store = StateStore(config.state.url)
        detail = f"{store.backend}, schema v{store.schema_version()}"
    except AdapterError as exc:
        return [Row("state store", "NO", str(exc))], None
    return [Row("state store", "yes", detail)], store


def _keys(config: Settings, store: StateStore | None) -> list[Row]:
    try:
        kek = config.privacy.load_kek()
    except AdapterError as exc:
        return [Row("key-encryption key", "NO", str(exc))]
    rows = [Row("key-encryption key", "yes", "set (32 bytes)")]
    if store is None:
        return rows
    try:
        keys = KeyRing.open(store, kek).status()
    except AdapterError as exc:
        return [*rows, Row("key ring", "NO", str(exc))]
    scopes = {key.scope for key in keys if key.role == "token" and key.state == "active"}
    missing = sorted(set(config.departments) - scopes)
    if missing:
        return [
            *rows,
            Row(
                "key ring",
                "NO",
                f"no case-code key for {', '.join(missing)}: run `cpims-adapter keys init`",
            ),
        ]
    return [*rows, Row("key ring", "yes", f"{len(keys)} keys open with this KEK")]


def _needed(config: Settings) -> dict[str, str]:
    """The Primero capabilities this configuration uses, with why."""
    jobs = list(config.jobs.values())
    needed = {"cases.read": "every job reads cases"}
    if jobs:
        needed["cases.change_log"] = "to prove who recorded a disclosure decision"
        needed[f"forms.{decision_form.FORM_ID}.read"] = "to read supervisors' decisions"
    if any(job.write_back for job in jobs):
        needed["cases.write"] = "to write statuses back"
        needed[f"forms.{LINKED_RECORDS_FORM}.write"] = "to write linked department records"
    if any(job.mark_synced for job in jobs):
        needed["cases.sync_external"] = "jobs.*.mark_synced"
    if any(
        d.inbound_api_key_sha256 or d.inbound_client_cert_subjects
        for d in config.departments.values()
    ):
        needed["cases.create"] = "the inbound API creates cases from departments' referrals"
    return needed


# Capabilities that are not required but save work, with what their absence costs.
_WORTH_GRANTING = {
    "cases.referral_summary": (
        "optional: without it the sync fetches the referrals of every case it reads; grant the "
        "integration role the dashboard 'Shared with others' (docs/primero-requests.md)"
    ),
}


def _primero(config: Settings) -> list[Row]:
    needed = _needed(config)
    try:
        with open_client() as client:
            report = client.capabilities(
                forms={LINKED_RECORDS_FORM: "rw", decision_form.FORM_ID: "r"}
            )
            client.check_version()
    except AdapterError as exc:
        return [Row("primero", "NO", str(exc))]
    rows = [
        Row("primero", "yes", f"version {report.version} at {config.primero.url}"),
        Row(
            "account", "yes", f"{report.user_name or config.primero.username} ({report.auth_mode})"
        ),
    ]
    for name, capability in report.checks.items():
        why = needed.get(name)
        if capability.permitted == "yes":
            verdict: Verdict = "yes"
        elif capability.permitted == "unknown":
            verdict = "?"
        else:
            verdict = "NO" if why else "-"
        detail = capability.how
        if why:
            detail += f" (needed: {why})"
        elif verdict == "-" and name in _WORTH_GRANTING:
            detail += f" ({_WORTH_GRANTING[name]})"
        elif verdict == "-":
            detail += " (not needed by this configuration)"
        rows.append(Row(f"may {name}", verdict, detail))
    return rows


def _department(config: Settings, name: str) -> Row:
    try:
        with open_department(config, name) as (connector, _):
            return Row(f"department {name}", "yes", connector.check())
    except AdapterError as exc:
        return Row(f"department {name}", "NO", str(exc))


__all__ = ["check", "register"]
