"""`cpims-adapter simulate fhir` as an IT officer meets it: started from the shell, its printed
config pasted into a config file, and `cpims-adapter sync health` run against it end to end."""

from __future__ import annotations

import base64
import os
import secrets
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from adapter.mappings.fhir import case_code_system
from adapter.simulator.hospital import Hospital
from adapter.simulator.primero import PrimeroSimulator
from adapter.simulator.scenario import (
    POLICY_DIR,
    SIM_PASSWORD,
    install_linked_records_form,
    refer_children_to_health,
    referral_status,
)
from tests.test_cli import ROOT, run_cli

CHILDREN = 3


@pytest.fixture
def simulate_fhir() -> Iterator[dict[str, Any]]:
    """The command in a subprocess; what it printed, parsed as a user would read it."""
    process = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys; from adapter.cli import main; sys.exit(main())",
            "simulate",
            "fhir",
            "--control-port",
            "0",
            "--every",
            "0.2",
            "--reject-every",
            str(CHILDREN),
            "--complete-after",
            "-1",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        cwd=ROOT,
    )
    printed: list[str] = []
    try:
        assert process.stdout is not None
        deadline = time.monotonic() + 120
        while not any(line.startswith("By hand:") for line in printed):
            line = process.stdout.readline()
            assert line or process.poll() is None, "".join(printed)
            printed.append(line.rstrip("\n"))
            assert time.monotonic() < deadline, "\n".join(printed)
        fhir_url = _after(printed, "FHIR R4 server (sekmet) at ")
        control = _after(printed, "hospital desk control API at ")
        start = printed.index(next(p for p in printed if p.startswith("Paste into"))) + 1
        config = [p[2:] for p in printed[start:] if p.startswith("  ") or p == ""]
        yield {"process": process, "fhir": fhir_url, "control": control, "config": config}
    finally:
        if process.poll() is None:
            os.kill(process.pid, signal.SIGTERM)
            process.wait(timeout=30)
        if process.stdout is not None:
            process.stdout.close()


def _after(lines: list[str], prefix: str) -> str:
    return next(line[len(prefix) :].strip() for line in lines if line.startswith(prefix))


def sync(config: Path) -> None:
    result = run_cli("--config", str(config), "sync", "health")
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_health_job_runs_end_to_end_against_simulate_fhir(
    simulate_fhir: dict[str, Any], tmp_path: Path
) -> None:
    assert "[departments.health]" in simulate_fhir["config"]
    kek = secrets.token_bytes(32)
    state_url = f"sqlite:///{tmp_path}/state.sqlite3"
    with PrimeroSimulator(cases=0) as sim, Hospital(simulate_fhir["fhir"]) as hospital:
        install_linked_records_form(sim.url)
        referred = refer_children_to_health(sim.url, CHILDREN)
        config = tmp_path / "adapter.toml"
        config.write_text(
            f'[state]\nurl = "{state_url}"\n'
            f'[primero]\nurl = "{sim.url}"\nusername = "cpims-adapter"\n'
            f'password = "{SIM_PASSWORD}"\n'
            f'[privacy]\nkek = "{base64.b64encode(kek).decode()}"\npolicy_dir = "{POLICY_DIR}"\n'
            "[sync]\nlag_seconds = 0\n\n" + "\n".join(simulate_fhir["config"]) + "\n",
            encoding="utf-8",
        )
        keys = run_cli("--config", str(config), "keys", "init")
        assert keys.returncode == 0, keys.stdout + keys.stderr

        sync(config)  # anonymous probes
        assert len(hospital.referral_tasks()) == CHILDREN
        # The desk answers on its schedule, so it may already have accepted a probe while this
        # run was still going (the run then sends that referral's identified data at once):
        # identified data never left for a probe it had not accepted.
        control = simulate_fhir["control"]
        answered = requests.get(f"{control}/tasks", timeout=30).json()["tasks"]
        assert len(hospital.search("Patient")) <= sum(t["status"] == "accepted" for t in answered)
        # The desk answers on its schedule: accepts two, rejects every third.
        statuses = _wait_for_answers(control, CHILDREN)
        assert sorted(statuses.values()) == ["accepted", "accepted", "rejected"]

        sync(config)  # identified referrals for the accepted ones
        accepted = sorted(key for key, status in statuses.items() if status == "accepted")
        assert len(hospital.search("ServiceRequest")) == len(accepted)
        for key in accepted:
            assert hospital.patients_of(_code(hospital, key)) == 1

        # On command: the hospital completes one referral through the control API.
        done = requests.post(f"{control}/tasks/{accepted[0]}/complete", json={}, timeout=30)
        assert done.status_code == 200 and done.json()["status"] == "completed"
        unknown = requests.post(f"{control}/tasks/ref-nope/accept", timeout=30)
        assert unknown.status_code == 404
        sync(config)  # outcomes back into Primero

        by_key = {f"ref-{referral_id}": (case_id, referral_id) for case_id, referral_id in referred}
        outcome = {key: referral_status(sim.url, *by_key[key]) for key in by_key}
        rejected = next(key for key, status in statuses.items() if status == "rejected")
        assert outcome[accepted[0]] == "done"
        assert outcome[accepted[1]] == "accepted"
        assert outcome[rejected] == "rejected"

    process = simulate_fhir["process"]
    os.kill(process.pid, signal.SIGTERM)
    assert process.wait(timeout=30) == 0
    with pytest.raises(requests.ConnectionError):
        requests.get(f"{simulate_fhir['fhir']}/metadata", timeout=5)  # sekmet stopped too


def _wait_for_answers(control: str, count: int) -> dict[str, str]:
    deadline = time.monotonic() + 60
    while True:
        tasks = requests.get(f"{control}/tasks", timeout=30).json()["tasks"]
        statuses = {t["referral_key"]: t["status"] for t in tasks}
        if len(statuses) == count and "requested" not in statuses.values():
            return statuses
        assert time.monotonic() < deadline, statuses
        time.sleep(0.2)


def _code(hospital: Hospital, referral_key: str) -> str:
    """The case code the identified referral's Patient carries (its Task's subject)."""
    task = hospital.task(referral_key)
    patient = hospital.http.get(
        f"{hospital.base_url}/{task['for']['reference']}", timeout=30
    ).json()
    return next(
        str(i["value"]) for i in patient["identifier"] if i["system"] == case_code_system("health")
    )
