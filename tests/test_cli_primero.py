"""`check` and `primero cases` against a real (simulated) Primero, as IT staff would run them."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from adapter.simulator.primero import PrimeroSimulator
from tests.test_cli import run_cli

CASES = 2500


@pytest.fixture(scope="module")
def sim() -> Iterator[PrimeroSimulator]:
    with PrimeroSimulator(cases=CASES, seed=3) as simulator:
        yield simulator


def env_for(
    sim: PrimeroSimulator, tmp_path: Path, password: str = "sim-password"
) -> dict[str, str]:
    config = tmp_path / "adapter.toml"
    config.write_text(
        f'[primero]\nurl = "{sim.url}"\nusername = "cpims-adapter"\n'
        f'[state]\nurl = "sqlite:///{tmp_path}/state.sqlite3"\n'
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("CPIMS_ADAPTER_")}
    env["CPIMS_ADAPTER_CONFIG"] = str(config)
    env["CPIMS_ADAPTER_PRIMERO__PASSWORD"] = password
    return env


def failed_logins(sim: PrimeroSimulator, user: str = "cpims-adapter") -> int:
    body = requests.get(f"{sim.url}/_sim/users/{user}", timeout=5).json()
    return int(body["login_failures_total"])


def test_lists_every_case_while_cases_change_during_paging(
    sim: PrimeroSimulator, tmp_path: Path
) -> None:
    every_id: set[str] = set()
    for page in (1, 2, 3):
        response = requests.get(
            f"{sim.url}/api/v2/cases",
            params={"per": 1000, "page": page, "fields": "id"},
            auth=("cpims-adapter", "sim-password"),
            timeout=30,
        )
        every_id.update(r["id"] for r in response.json()["data"])
    assert len(every_id) == CASES
    # Each list request now edits 7 random cases, moving them to the end of the order.
    requests.post(f"{sim.url}/_sim/faults", json={"mutate_on_list": 7}, timeout=5)
    try:
        result = run_cli(
            "primero",
            "cases",
            "--updated-since",
            "2000-01-01T00:00:00Z",
            "--format",
            "json",
            env=env_for(sim, tmp_path),
        )
    finally:
        requests.delete(f"{sim.url}/_sim/faults", timeout=5)
    assert result.returncode == 0, result.stderr
    lines = [json.loads(line) for line in result.stdout.splitlines()]
    assert {tuple(sorted(line)) for line in lines} == {("case_id_display", "id", "last_updated_at")}
    listed = {line["id"] for line in lines}
    assert len(lines) > len(listed), "no case changed while paging: the fault was not active"
    assert listed == every_id, f"missing {len(every_id - listed)} cases"


def test_table_format_counts_the_cases(sim: PrimeroSimulator, tmp_path: Path) -> None:
    result = run_cli("primero", "cases", env=env_for(sim, tmp_path))
    assert result.returncode == 0, result.stderr
    assert f"{CASES} cases" in result.stdout


def test_locations_lists_the_codes_departments_may_name(
    sim: PrimeroSimulator, tmp_path: Path
) -> None:
    result = run_cli("primero", "locations", env=env_for(sim, tmp_path))
    assert result.returncode == 0, result.stderr
    codes = requests.get(
        f"{sim.url}/api/v2/locations",
        params={"per": 1000},
        auth=("cpims-adapter", "sim-password"),
        timeout=10,
    ).json()["data"]
    assert codes and all(item["code"] in result.stdout for item in codes)
    assert f"{len(codes)} locations" in result.stdout


def test_check_reports_version_and_permissions(sim: PrimeroSimulator, tmp_path: Path) -> None:
    env = env_for(sim, tmp_path)
    env["CPIMS_ADAPTER_PRIVACY__KEK"] = "QUJDREVGR0hJSktMTU5PUFFSU1RVVldYWVowMTIzNDU="
    assert run_cli("keys", "init", env=env).returncode == 0
    result = run_cli("check", env=env)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "version 2.15" in result.stdout
    assert "cases.read" in result.stdout


def test_wrong_password_costs_one_attempt_and_one_clear_error(
    sim: PrimeroSimulator, tmp_path: Path
) -> None:
    before = failed_logins(sim)
    env = env_for(sim, tmp_path, password="wrong-password-canary")
    for args in (("check",), ("primero", "cases")):
        result = run_cli(*args, env=env)
        assert result.returncode != 0
        output = result.stdout + result.stderr
        assert "Traceback" not in output
        assert "wrong-password-canary" not in output
        assert "six" in output or "locks" in output or "locked" in output
    # Two commands, one failed attempt each: never the retries that would lock the account.
    assert failed_logins(sim) - before == 2


def test_unreachable_primero_is_a_clear_error(tmp_path: Path) -> None:
    from tests.support.servers import free_port

    config = tmp_path / "adapter.toml"
    config.write_text(
        f'[primero]\nurl = "http://127.0.0.1:{free_port()}"\nusername = "u"\nmax_retries = 0\n'
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("CPIMS_ADAPTER_")}
    env.update(CPIMS_ADAPTER_CONFIG=str(config), CPIMS_ADAPTER_PRIMERO__PASSWORD="x")
    result = run_cli("primero", "cases", env=env)
    assert result.returncode == 1
    assert "error:" in result.stderr and "Traceback" not in result.stderr


def test_the_case_table_prints_whole_ids_at_80_columns(
    sim: PrimeroSimulator, tmp_path: Path
) -> None:
    env = env_for(sim, tmp_path)
    env["COLUMNS"] = "80"
    table = run_cli("primero", "cases", env=env)
    listed = run_cli("primero", "cases", "--format", "json", env=env)
    assert table.returncode == 0 and listed.returncode == 0, table.stderr + listed.stderr
    for line in listed.stdout.splitlines():
        record = json.loads(line)
        assert record["id"] in table.stdout and record["case_id_display"] in table.stdout
    assert "…" not in table.stdout


def test_explain_takes_the_short_id_a_cpo_reads_in_primero(
    sim: PrimeroSimulator, tmp_path: Path
) -> None:
    case = requests.get(
        f"{sim.url}/api/v2/cases",
        params={"per": 1, "fields": "short_id"},
        auth=("cpims-adapter", "sim-password"),
        timeout=10,
    ).json()["data"][0]
    env = env_for(sim, tmp_path)
    env["CPIMS_ADAPTER_PRIVACY__KEK"] = "QUJDREVGR0hJSktMTU5PUFFSU1RVVldYWVowMTIzNDU="
    assert run_cli("keys", "init", env=env).returncode == 0
    by_short_id = run_cli("explain", case["short_id"], "--department", "health", env=env)
    by_id = run_cli("explain", case["id"], "--department", "health", env=env)
    assert by_short_id.returncode == 0, by_short_id.stderr
    assert by_short_id.stdout == by_id.stdout and '"department"' in by_id.stdout

    unknown = run_cli("explain", "abcdef1", "--department", "health", env=env)
    assert unknown.returncode == 1 and unknown.stdout == ""
    assert unknown.stderr.count("\n") == 1 and "no case visible" in unknown.stderr
    garbled = run_cli("explain", "Ayesha Khan", "--department", "health", env=env)
    assert garbled.returncode == 2 and garbled.stderr.count("\n") == 1
    assert "Ayesha" not in garbled.stderr and "Traceback" not in garbled.stderr
