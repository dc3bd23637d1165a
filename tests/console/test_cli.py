"""`cpims-adapter console …`: accounts from the shell; a password never on the command line."""

from __future__ import annotations

import base64
import json
import secrets
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from adapter.cli import _console, main
from adapter.config.console import ConsoleSettings
from adapter.console.accounts import Accounts, Role
from adapter.console.sessions import Sessions
from adapter.privacy import KeyRing
from adapter.privacy.audit import AuditLog
from adapter.registry import Registry
from adapter.state import StateStore

PASSWORD = "a long enough pass phrase"


@pytest.fixture
def cli(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[typer.Typer, str, bytes]:
    kek = secrets.token_bytes(32)
    url = f"sqlite:///{tmp_path}/state.sqlite3"
    config = tmp_path / "adapter.toml"
    config.write_text(
        f'[state]\nurl = "{url}"\n[privacy]\nkek = "{base64.b64encode(kek).decode()}"\n',
        encoding="utf-8",
    )
    monkeypatch.setenv("CPIMS_ADAPTER_CONFIG", str(config))
    with StateStore(url) as store:
        ring = KeyRing.init(store, kek, ["health"])
        Registry.open(store, ring).add_establishment(
            "SCH-001",
            "School 1",
            (("A B", "a@school.example"), ("C D", "c@school.example")),
            registered_by="r.officer",
        )
    root = typer.Typer()

    @root.callback()
    def _root() -> None:
        """Test root."""

    _console.register(root)
    return root, url, kek


def invoke(app: typer.Typer, *args: str, stdin: str | None = None) -> tuple[int, str]:
    result = CliRunner().invoke(app, list(args), input=stdin, terminal_width=200)
    return result.exit_code, result.output


def test_the_first_dpo_from_a_prompt_then_list_and_disable(
    cli: tuple[typer.Typer, str, bytes],
) -> None:
    app, url, kek = cli
    code, output = invoke(
        app,
        "console",
        "add-user",
        "ayesha.dpo",
        "--role",
        "dpo",
        "--name",
        "Ayesha Khan",
        stdin=f"{PASSWORD}\n{PASSWORD}\n",
    )
    assert code == 0, output
    assert "ayesha.dpo created as dpo (sets up TOTP at first sign-in)" in output
    assert PASSWORD not in output
    with StateStore(url) as store:
        accounts = Accounts(store, KeyRing.open(store, kek))
        assert accounts.verify_password("ayesha.dpo", PASSWORD) is not None
        account = accounts.by_username("ayesha.dpo")
        assert account is not None and account.role is Role.dpo
        session = Sessions(store, ConsoleSettings()).start(
            "signed_in", account.id, account.created_at
        )
    code, output = invoke(app, "console", "list-users", "--format", "json")
    assert json.loads(output.splitlines()[0])["username"] == "ayesha.dpo"
    code, output = invoke(app, "console", "disable-user", "ayesha.dpo")
    assert code == 0 and "disabled" in output
    with StateStore(url) as store:
        ring = KeyRing.open(store, kek)
        assert Accounts(store, ring).verify_password("ayesha.dpo", PASSWORD) is None
        assert Sessions(store, ConsoleSettings()).load(session.id, session.created_at) is None
        events = [r.entry["event"] for r in AuditLog(store, ring).entries()]
    assert "console_account_added" in events and "console_account_disabled" in events


def test_an_establishment_officer_from_a_password_file(
    cli: tuple[typer.Typer, str, bytes], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    app, url, kek = cli
    secret = tmp_path / "pw"
    secret.write_text(PASSWORD + "\n", encoding="utf-8")
    args = ["console", "add-user", "head.sch001", "--role", "establishment_officer"]
    assert main([*args, "--name", "Head", "--password-file", str(secret)]) == 2
    assert "establishment: give the registration number" in capsys.readouterr().err
    unknown = [*args, "--name", "Head", "--password-file", str(secret), "--establishment", "X-404"]
    assert main(unknown) == 2
    assert "--establishment: no establishment 'X-404'" in capsys.readouterr().err
    code, output = invoke(
        app, *args, "--name", "Head", "--password-file", str(secret), "--establishment", "SCH-001"
    )
    assert code == 0, output
    with StateStore(url) as store:
        account = Accounts(store, KeyRing.open(store, kek)).verify_password("head.sch001", PASSWORD)
    assert account is not None and account.establishment == "SCH-001"


def test_there_is_no_password_option() -> None:
    names = {p.name for p in typer.main.get_command(_console.app).commands["add-user"].params}  # type: ignore[attr-defined]
    assert "password" not in names and "password_file" in names


def test_a_short_password_is_refused_naming_the_field(
    cli: tuple[typer.Typer, str, bytes], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    secret = tmp_path / "pw"
    secret.write_text("short\n", encoding="utf-8")
    args = ["console", "add-user", "x.dpo", "--role", "dpo", "--name", "X"]
    assert main([*args, "--password-file", str(secret)]) == 2
    assert "password: use at least 12 characters" in capsys.readouterr().err
