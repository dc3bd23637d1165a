"""`cpims-adapter primero install-forms` against a real (simulated) Primero, as an administrator
would run it once: with admin credentials from the environment over the adapter's config."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from adapter.primero.linked_records import FORM_ID, SUBFORM_ID
from adapter.simulator.primero import PrimeroSimulator

ROOT = Path(__file__).parent.parent
ENTRY = "import sys; from adapter.cli import main; sys.exit(main())"


@pytest.fixture
def sim() -> Iterator[PrimeroSimulator]:
    """A fresh simulator per test: installing changes its forms."""
    with PrimeroSimulator(cases=0) as simulator:
        yield simulator


def run(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", ENTRY, *args],
        capture_output=True,
        text=True,
        timeout=120,
        env={**env, "COLUMNS": "200"},
        cwd=ROOT,
    )


def env_for(sim: PrimeroSimulator, tmp_path: Path, admin: bool) -> dict[str, str]:
    """The adapter's usual config (the integration account), plus, for `admin`, the documented
    environment override with an administrator's account."""
    config = tmp_path / "adapter.toml"
    config.write_text(f'[primero]\nurl = "{sim.url}"\nusername = "cpims-adapter"\n')
    env = {k: v for k, v in os.environ.items() if not k.startswith("CPIMS_ADAPTER_")}
    env["CPIMS_ADAPTER_CONFIG"] = str(config)
    env["CPIMS_ADAPTER_PRIMERO__PASSWORD"] = "sim-password"
    if admin:
        env["CPIMS_ADAPTER_PRIMERO__USERNAME"] = "primero_admin"
    return env


def test_the_integration_account_gets_one_clear_line(sim: PrimeroSimulator, tmp_path: Path) -> None:
    result = run("primero", "install-forms", env=env_for(sim, tmp_path, admin=False))
    assert result.returncode == 1
    assert "Traceback" not in result.stdout + result.stderr
    (line,) = [line for line in result.stderr.splitlines() if line.strip()]
    assert line.startswith("error:") and "metadata:manage" in line
    assert "CPIMS_ADAPTER_PRIMERO__USERNAME" in line


def test_install_forms_with_an_admin_account_is_idempotent(
    sim: PrimeroSimulator, tmp_path: Path
) -> None:
    env = env_for(sim, tmp_path, admin=True)
    first = run("primero", "install-forms", env=env)
    assert first.returncode == 0, first.stderr
    for form in (SUBFORM_ID, FORM_ID):
        assert any(form in line and "created" in line for line in first.stdout.splitlines())
    assert "An administrator must grant" in first.stdout
    assert f"Forms › {FORM_ID}: Read and write" in first.stdout
    assert "sync_external" in first.stdout

    again = run("primero", "install-forms", env=env)
    assert again.returncode == 0, again.stderr
    assert "created" not in again.stdout and "updated" not in again.stdout
    assert again.stdout.count("unchanged") == 2


def test_install_forms_attaches_another_module(sim: PrimeroSimulator, tmp_path: Path) -> None:
    env = env_for(sim, tmp_path, admin=True)
    run("primero", "install-forms", env=env)
    result = run(
        "primero",
        "install-forms",
        "--module",
        "primeromodule-cp",
        "--module",
        "primeromodule-gbv",
        env=env,
    )
    assert result.returncode == 0, result.stderr
    assert "attached to primeromodule-gbv" in result.stdout
