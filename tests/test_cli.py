"""The command line as IT staff meet it: documented, clear errors, never a traceback."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest
import typer

from adapter import __version__
from adapter.cli import app

ROOT = Path(__file__).parent.parent
README = (ROOT / "README.md").read_text(encoding="utf-8")


def run_cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """Run the real console entry point in a subprocess, as a user would."""
    return subprocess.run(
        [sys.executable, "-c", "import sys; from adapter.cli import main; sys.exit(main())", *args],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
        cwd=ROOT,
    )


def _command_paths(group: typer.Typer, prefix: str = "") -> list[str]:
    paths = []
    for command in group.registered_commands:
        name = command.name or (command.callback.__name__ if command.callback else "")
        paths.append(f"{prefix}{name.replace('_', '-')}")
    for sub in group.registered_groups:
        assert sub.typer_instance is not None
        paths.extend(_command_paths(sub.typer_instance, f"{prefix}{sub.name} "))
    return paths


def test_every_command_is_documented_in_the_readme() -> None:
    commands = _command_paths(app)
    assert "primero cases" in commands and "db upgrade" in commands
    for path in commands:
        assert re.search(rf"`cpims-adapter {re.escape(path)}\b", README), f"README lacks {path}"


def test_version() -> None:
    result = run_cli("--version")
    assert result.returncode == 0
    assert result.stdout.strip() == f"cpims-adapter {__version__}"


def test_missing_config_file_is_one_clear_line(tmp_path: Path) -> None:
    result = run_cli("--config", str(tmp_path / "nope.toml"), "db", "upgrade")
    assert result.returncode == 2
    assert "no such config file" in result.stderr
    assert "Traceback" not in result.stderr + result.stdout


def test_unknown_key_exits_2_naming_key_and_file(tmp_path: Path) -> None:
    config = tmp_path / "adapter.toml"
    config.write_text('[state]\nurll = "sqlite:///x"\n')
    result = run_cli("--config", str(config), "db", "status")
    assert result.returncode == 2
    assert "state.urll" in result.stderr and str(config) in result.stderr
    assert "Traceback" not in result.stderr


def test_db_upgrade_then_status(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import os

    env = dict(os.environ, CPIMS_ADAPTER_STATE__URL=f"sqlite:///{tmp_path}/s.sqlite3")
    env["CPIMS_ADAPTER_CONFIG"] = str(ROOT / "config" / "adapter.example.toml")
    first = run_cli("db", "upgrade", env=env)
    assert first.returncode == 0, first.stderr
    assert "applied 1" in first.stdout
    again = run_cli("db", "upgrade", env=env)
    assert again.returncode == 0 and "nothing to do" in again.stdout
    status = run_cli("db", "status", env=env)
    assert "pending" not in status.stdout and "applied" in status.stdout


def test_bad_time_option_is_a_usage_error() -> None:
    result = run_cli("primero", "cases", "--updated-since", "yesterday")
    assert result.returncode == 2
    assert "ISO 8601" in result.stderr and "Traceback" not in result.stderr
