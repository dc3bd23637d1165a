"""`cpims-adapter registry …` in-process: a thin shell that prints answers and nothing more."""

from __future__ import annotations

import base64
import csv
import re
import secrets
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from adapter.cli import _registry
from adapter.privacy import KeyRing
from adapter.registry import CSV_COLUMNS, RegistrySettings
from adapter.state import StateStore
from tests.registry.conftest import csv_row


@pytest.fixture
def cli(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> typer.Typer:
    kek = secrets.token_bytes(32)
    url = f"sqlite:///{tmp_path}/state.sqlite3"
    config = tmp_path / "adapter.toml"
    config.write_text(
        f'[state]\nurl = "{url}"\n[privacy]\nkek = "{base64.b64encode(kek).decode()}"\n',
        encoding="utf-8",
    )
    monkeypatch.setenv("CPIMS_ADAPTER_CONFIG", str(config))
    with StateStore(url) as store:
        KeyRing.init(store, kek, ["health"])
    root = typer.Typer()

    @root.callback()
    def _root() -> None:
        """Test root."""

    _registry.register(root)
    return root


def run(app: typer.Typer, *args: str) -> str:
    result = CliRunner().invoke(app, list(args), catch_exceptions=False, terminal_width=200)
    assert result.exit_code == 0, result.output
    return result.output


def test_officer_and_establishment_round_trip(
    cli: typer.Typer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    key_file = tmp_path / "officer.pem"
    public = run(cli, "registry", "keygen", "--out", str(key_file)).split(": ")[-1].strip()
    settings = RegistrySettings(officer_keys={"r.officer": public})
    monkeypatch.setattr(_registry, "registry_settings", lambda _config: settings)

    extract = tmp_path / "extract.csv"
    with extract.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=CSV_COLUMNS)
        writer.writeheader()
        writer.writerows({c: r.get(c, "") for c in CSV_COLUMNS} for r in [csv_row(1), csv_row(2)])
    sig = tmp_path / "extract.sig"
    run(cli, "registry", "sign", str(extract), "--key", str(key_file), "--out", str(sig))
    assert "2 new" in run(
        cli, "registry", "import", str(extract), "--signature", str(sig), "--officer", "r.officer"
    )

    added = run(
        cli, "registry", "establishment", "add", "SCH-7", "--name", "Model School",
        "--officer1-name", "Amina Khan", "--officer1-email", "amina@school.example",
        "--officer2-name", "Bilal Shah", "--officer2-email", "bilal@school.example",
        "--officer", "r.officer",
    )  # fmt: skip
    api_key = re.search(r"(cpr1_\S+)", added)
    assert api_key is not None
    assert "SCH-7" in run(cli, "registry", "establishment", "list")

    checked = run(
        cli, "registry", "check", "--consent-ref", "CF-77-0001", "--position", "Teacher",
        "--purpose", "education", "--api-key", api_key.group(1), "--cnic", csv_row(1)["cnic"],
        "--full-name", "Ahmed Raza", "--father-name", "Zafar Iqbal", "--dob", "1990-05-01",
    )  # fmt: skip
    assert "PENDING_REVIEW" in checked
    assert "Ahmed" not in checked and "Muhammad" not in checked and "42101" not in checked
    check_ref = re.search(r"(RC-\w+)", checked)
    assert check_ref is not None

    assert check_ref.group(1) in run(cli, "registry", "review", "list")
    shown = run(cli, "registry", "review", "show", check_ref.group(1), "--officer", "r.officer")
    assert "Ahmed Raza" in shown and "Muhammad Ali" in shown  # the officer's screen only
    run(
        cli,
        "registry",
        "review",
        "resolve",
        check_ref.group(1),
        "--decision",
        "clear",
        "--officer",
        "r.officer",
    )
    assert check_ref.group(1) not in run(cli, "registry", "review", "list")
    access = run(
        cli, "registry", "subject-access", "--officer", "r.officer", "--cnic", csv_row(1)["cnic"]
    )
    assert "SCH-7" in access and "CLEAR" in access


def test_malformed_check_is_refused_without_echo(cli: typer.Typer) -> None:
    result = CliRunner().invoke(
        cli,
        ["registry", "check", "--consent-ref", "CF-77-0002", "--position", "Teacher",
         "--purpose", "education", "--api-key", "cpr1_unknown", "--cnic", "35202-99-1",
         "--full-name", "Ali", "--father-name", "Aslam", "--dob", "1990-05-01"],
    )  # fmt: skip
    assert result.exit_code != 0
    assert "35202-99-1" not in result.output
