"""The production layout works as written: the systemd unit's command line, with the example
config, in a temporary root standing in for /, writes only where the unit allows, and every
file it makes holding the store is 0600."""

from __future__ import annotations

import base64
import os
import secrets
import shlex
import stat
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).parent.parent
UNIT = ROOT / "docs" / "systemd" / "cpims-adapter.service"
EXAMPLE = ROOT / "config" / "adapter.example.toml"


def unit_settings() -> dict[str, list[str]]:
    """`Key=value` lines of the unit's [Service] section, every value of a repeated key."""
    found: dict[str, list[str]] = {}
    section = ""
    for line in UNIT.read_text(encoding="utf-8").splitlines():
        line = line.strip()
        if line.startswith("[") and line.endswith("]"):
            section = line
        elif section == "[Service]" and "=" in line and not line.startswith("#"):
            key, _, value = line.partition("=")
            found.setdefault(key, []).append(value)
    return found


@pytest.fixture
def root(tmp_path: Path) -> Path:
    """A stand-in for /: /opt/cpims-adapter is this checkout, /etc and /var/lib are empty."""
    (tmp_path / "opt").mkdir()
    (tmp_path / "opt" / "cpims-adapter").symlink_to(ROOT)
    return tmp_path


def rooted(root: Path, text: str) -> str:
    for prefix in ("/etc/cpims-adapter", "/var/lib/cpims-adapter", "/opt/cpims-adapter"):
        text = text.replace(prefix, f"{root}{prefix}")
    return text


def test_the_unit_runs_with_the_example_config_and_makes_private_files(root: Path) -> None:
    unit = unit_settings()
    assert unit["ProtectSystem"] == ["strict"] and unit["User"] == ["cpims-adapter"]
    writable = [Path(rooted(root, path)) for path in unit["ReadWritePaths"]]
    env_config = dict(item.split("=", 1) for item in unit["Environment"])["CPIMS_ADAPTER_CONFIG"]

    # /etc/cpims-adapter as docs/operations.md §1 lays it out.
    config = Path(rooted(root, env_config))
    config.parent.mkdir(parents=True)
    config.write_text(rooted(root, EXAMPLE.read_text(encoding="utf-8")), encoding="utf-8")
    kek = base64.b64encode(secrets.token_bytes(32)).decode()
    secrets_env = Path(rooted(root, unit["EnvironmentFile"][0]))
    secrets_env.write_text(f"CPIMS_ADAPTER_PRIVACY__KEK={kek}\n", encoding="utf-8")
    secrets_env.chmod(0o400)

    env = {k: v for k, v in os.environ.items() if not k.startswith("CPIMS_ADAPTER_")}
    env["CPIMS_ADAPTER_CONFIG"] = str(config)
    for line in secrets_env.read_text(encoding="utf-8").splitlines():
        key, _, value = line.partition("=")
        env[key] = value
    program, *args = shlex.split(rooted(root, unit["ExecStart"][0]))
    assert args == ["run"] and Path(program).is_file()

    def run(*command: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [program, *command],
            capture_output=True,
            text=True,
            timeout=120,
            env=env,
            cwd=rooted(root, unit["WorkingDirectory"][0]),
            # An operator's shell, not systemd's UMask=0077: the adapter itself makes them 0600.
            preexec_fn=lambda: os.umask(0o022),
        )

    for command in (("db", "upgrade"), ("keys", "init"), ("status",)):
        result = run(*command)
        assert "Traceback" not in result.stderr
        assert result.returncode in (0, 1), (command, result.stderr)  # status: 1 = warnings
    state_dir = root / "var" / "lib" / "cpims-adapter"
    backup = state_dir / "backups" / "state.backup"
    assert run("db", "backup", str(backup)).returncode == 0

    made = [path for path in state_dir.rglob("*") if path.is_file()]
    assert state_dir / "state.sqlite3" in made and backup in made
    for path in made:
        assert any(path.is_relative_to(allowed) for allowed in writable), path
        assert stat.S_IMODE(path.stat().st_mode) == 0o600, f"{path} is not 0600"
    assert stat.S_IMODE(backup.parent.stat().st_mode) == 0o700
