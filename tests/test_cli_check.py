"""`cpims-adapter check` against the demo's world: the Primero simulator with the adapter's
forms, a real FHIR server for health and the police simulator. It passes there, and says NO
(exit 1) for a department that is down, a form the role may not write, a missing KEK, a
secret file that is not there and a missing config file."""

from __future__ import annotations

import base64
import os
import secrets
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from adapter.simulator.departments import API_KEY, DepartmentSimulator
from adapter.simulator.departments.scenario import MAPPINGS_DIR, POLICE_AGENCY, POLICE_SERVICE
from adapter.simulator.fhir_server import start_fhir_server
from adapter.simulator.primero import PrimeroSimulator
from adapter.simulator.scenario import HEALTH_AGENCY, POLICY_DIR, install_linked_records_form
from tests.support.servers import free_port
from tests.test_cli import run_cli


def config_text(sim_url: str, fhir_url: str, police_url: str, state: Path) -> str:
    return (
        f'[primero]\nurl = "{sim_url}"\nusername = "cpims-adapter"\n'
        f'[state]\nurl = "sqlite:///{state}"\n'
        f'[privacy]\npolicy_dir = "{POLICY_DIR}"\n'
        '[decisions]\napprover_roles = ["role-cp-supervisor"]\n'
        f'[departments.health]\nbase_url = "{fhir_url}"\norganization = "chk"\n'
        "[departments.police]\n"
        f'connector = "rest"\nbase_url = "{police_url}"\nauth = "api_key"\n'
        f'mapping_file = "{MAPPINGS_DIR / "police.toml"}"\ntwo_stage = false\n'
        f'[jobs.health]\ndepartment = "health"\nagencies = ["{HEALTH_AGENCY}"]\n'
        f'[jobs.police]\ndepartment = "police"\nagencies = ["{POLICE_AGENCY}"]\n'
        f'services = ["{POLICE_SERVICE}"]\n'
    )


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    tmp = tmp_path_factory.mktemp("check")
    fhir = start_fhir_server(tmp)
    try:
        with (
            PrimeroSimulator(cases=0) as sim,
            DepartmentSimulator("police", auth="api_key") as police,
        ):
            install_linked_records_form(sim.url)
            config = tmp / "adapter.toml"
            config.write_text(config_text(sim.url, fhir.base_url, police.url, tmp / "s.sqlite3"))
            env = {k: v for k, v in os.environ.items() if not k.startswith("CPIMS_ADAPTER_")}
            env["CPIMS_ADAPTER_CONFIG"] = str(config)
            env["CPIMS_ADAPTER_PRIMERO__PASSWORD"] = "sim-password"
            env["CPIMS_ADAPTER_DEPARTMENTS__POLICE__API_KEY"] = API_KEY
            env["CPIMS_ADAPTER_PRIVACY__KEK"] = base64.b64encode(secrets.token_bytes(32)).decode()
            assert run_cli("keys", "init", env=env).returncode == 0
            yield {
                "sim": sim,
                "fhir": fhir,
                "police": police,
                "env": env,
                "config": config,
                "tmp": tmp,
            }
    finally:
        fhir.cleanup()


def check(env: dict[str, str]) -> tuple[int, dict[str, tuple[str, str]]]:
    """Run `check`; its rows as ``name → (ok, detail)``."""
    env = {**env, "COLUMNS": "400"}
    result = run_cli("check", env=env)
    assert "Traceback" not in result.stdout + result.stderr
    rows = {}
    for line in result.stdout.splitlines():
        cells = [cell.strip() for cell in line.strip("│┃ ").split("│")]
        if len(cells) == 3 and cells[1] in ("yes", "NO", "-", "?"):
            rows[cells[0]] = (cells[1], cells[2])
    return result.returncode, rows


def test_check_passes_on_the_demos_world(world: dict[str, Any]) -> None:
    code, rows = check(world["env"])
    assert code == 0, rows
    assert rows["config file"] == ("yes", f"read {world['config'].resolve()}")
    assert rows["key-encryption key"][0] == "yes" and rows["key ring"][0] == "yes"
    assert rows["state store"][0] == "yes"
    assert rows["department health"][0] == "yes" and "FHIR 4.0" in rows["department health"][1]
    assert rows["department police"][0] == "yes"
    assert "answered 200" in rows["department police"][1]
    for needed in (
        "may cases.read",
        "may cases.change_log",
        "may forms.linked_department_records.write",
        "may forms.disclosure_decisions.read",
    ):
        assert rows[needed][0] == "yes", (needed, rows[needed])
    assert rows["may forms.manage"][0] == "-"  # only install-forms needs it, as an admin
    assert rows["may cases.referral_summary"][0] == "yes"  # the "Shared with others" dashboard
    assert rows["may referrals.create"][0] == "yes"
    assert API_KEY not in str(rows) and "sim-password" not in str(rows)


def test_a_form_the_role_may_not_write_is_a_no(world: dict[str, Any]) -> None:
    grant = f"{world['sim'].url}/_sim/roles/role-integration/forms"
    requests.put(grant, json={"forms": {"linked_department_records": "r"}}, timeout=10)
    try:
        code, rows = check(world["env"])
    finally:
        requests.put(grant, json={"forms": {"linked_department_records": "rw"}}, timeout=10)
    assert code == 1
    verdict, detail = rows["may forms.linked_department_records.write"]
    assert verdict == "NO" and "read only" in detail and "linked department records" in detail


def test_a_role_without_the_referral_summary_passes_with_advice(world: dict[str, Any]) -> None:
    role = f"{world['sim'].url}/_sim/roles/role-integration/permissions"
    requests.put(role, json={"dashboard": []}, timeout=10)
    try:
        code, rows = check(world["env"])
    finally:
        requests.put(role, json={"dashboard": ["dash_shared_with_others"]}, timeout=10)
    assert code == 0, rows  # the sync works without it, one referral GET per case read
    verdict, detail = rows["may cases.referral_summary"]
    assert verdict == "-" and "Shared with others" in detail


def test_a_department_that_is_down_is_a_no_naming_it(world: dict[str, Any]) -> None:
    config: Path = world["config"]
    down = config.with_name("down.toml")
    port = free_port()
    down.write_text(config.read_text().replace(world["police"].url, f"http://127.0.0.1:{port}"))
    code, rows = check({**world["env"], "CPIMS_ADAPTER_CONFIG": str(down)})
    assert code == 1
    verdict, detail = rows["department police"]
    assert verdict == "NO" and f"127.0.0.1:{port}" in detail
    assert rows["department health"][0] == "yes"


def test_missing_kek_secret_file_and_config_are_each_a_no(world: dict[str, Any]) -> None:
    env = dict(world["env"])
    del env["CPIMS_ADAPTER_PRIVACY__KEK"]
    code, rows = check(env)
    assert code == 1 and rows["key-encryption key"][0] == "NO"

    secret = world["tmp"] / "police-api-key"
    env = {
        k: v for k, v in world["env"].items() if k != "CPIMS_ADAPTER_DEPARTMENTS__POLICE__API_KEY"
    }
    env["CPIMS_ADAPTER_DEPARTMENTS__POLICE__API_KEY_FILE"] = str(secret)
    code, rows = check(env)
    assert code == 1
    verdict, detail = rows["departments.police.api_key_file"]
    assert verdict == "NO" and str(secret) in detail

    env = {k: v for k, v in world["env"].items() if k != "CPIMS_ADAPTER_CONFIG"}
    empty = world["tmp"] / "elsewhere"
    empty.mkdir(exist_ok=True)
    result = run_cli("check", env={**env, "COLUMNS": "400", "PWD": str(empty)})
    assert result.returncode != 0
    assert "Traceback" not in result.stdout + result.stderr
