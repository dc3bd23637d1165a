"""`cpims-adapter decisions ...` and `explain`: the DPO's fallback for decisions taken outside
Primero, run as a user would, against the Primero and police simulators.

A police referral without consent is held; `explain` names the decision that would release it
and who may give it; a case worker cannot be entered as the approver; a supervisor's
mandatory-report override entered on the server releases it once; revoking it stops anything
further; `decisions log` shows the DPO every decision used, never a reason's text.
"""

from __future__ import annotations

import base64
import json
import os
import secrets
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from adapter.simulator.departments import API_KEY, DepartmentSimulator, Desk
from adapter.simulator.departments.scenario import (
    MAPPINGS_DIR,
    POLICE_AGENCY,
    POLICE_SERVICE,
    refer_children,
)
from adapter.simulator.primero import PrimeroSimulator
from adapter.simulator.scenario import POLICY_DIR, cpo_edit, install_linked_records_form
from tests.test_cli import run_cli

LEGAL = "Sindh CP Authority Act 2011 s.15"
REASON = "Synthetic: bruises seen at the clinic."


@pytest.fixture
def world(tmp_path: Path) -> Iterator[dict[str, Any]]:
    with (
        PrimeroSimulator(cases=0) as sim,
        DepartmentSimulator("police", auth="api_key") as police,
        Desk(police.url) as desk,
    ):
        install_linked_records_form(sim.url)
        ((case_id, _),) = refer_children(sim.url, 1, consent=False)
        config = tmp_path / "adapter.toml"
        config.write_text(
            f'[primero]\nurl = "{sim.url}"\nusername = "cpims-adapter"\n'
            f'[state]\nurl = "sqlite:///{tmp_path}/state.sqlite3"\n'
            "[sync]\nlag_seconds = 0\n"
            f'[privacy]\npolicy_dir = "{POLICY_DIR}"\n'
            '[decisions]\napprover_roles = ["role-cp-supervisor"]\n'
            'approvers_reason = "CPU supervisors (office order 12/2026)"\n'
            "[departments.police]\n"
            f'connector = "rest"\nbase_url = "{police.url}"\nauth = "api_key"\n'
            f'mapping_file = "{MAPPINGS_DIR / "police.toml"}"\nrate_per_second = 1000\n'
            "two_stage = false\n"
            "[jobs.police]\n"
            f'department = "police"\nagencies = ["{POLICE_AGENCY}"]\n'
            f'services = ["{POLICE_SERVICE}"]\n'
        )
        env = {k: v for k, v in os.environ.items() if not k.startswith("CPIMS_ADAPTER_")}
        env["CPIMS_ADAPTER_CONFIG"] = str(config)
        env["CPIMS_ADAPTER_PRIMERO__PASSWORD"] = "sim-password"
        env["CPIMS_ADAPTER_DEPARTMENTS__POLICE__API_KEY"] = API_KEY
        env["CPIMS_ADAPTER_PRIVACY__KEK"] = base64.b64encode(secrets.token_bytes(32)).decode()
        assert cli(env, "keys", "init").returncode == 0
        yield {"sim": sim, "desk": desk, "env": env, "case_id": case_id}


def cli(env: dict[str, str], *args: str) -> Any:
    result = run_cli(*args, env=env)
    assert "Traceback" not in result.stdout + result.stderr
    return result


def as_json(result: Any) -> Any:
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def test_the_dpos_fallback_records_checks_and_audits_a_decision(world: dict[str, Any]) -> None:
    env, desk, case_id = world["env"], world["desk"], world["case_id"]
    assert cli(env, "sync", "police").returncode == 0
    assert desk.records() == []

    (held,) = as_json(cli(env, "decisions", "held", "--format", "json"))
    assert held["case_id"] == case_id and held["awaiting"] == "consent_or_override"
    status = cli(env, "status", "--format", "json")
    waiting = json.loads(status.stdout)["held_for_decision"]
    assert [(w["department"], w["count"]) for w in waiting] == [("police", 1)]

    explained = as_json(cli(env, "explain", case_id, "--department", "police"))
    (referral,) = explained["referrals"]
    assert referral["allowed"] is False and referral["requested_by"] == "cp_worker1"
    release = referral["release"]
    assert "mandatory_report" in release["decision"]["decision_basis"]
    assert "role-cp-supervisor" in release["approvers"] and release["not_by"] == "cp_worker1"

    base = ["decisions", "add", case_id, "--department", "police", "--basis", "mandatory_report"]
    worker = cli(
        env, *base, "--approved-by", "cp_worker1", "--legal-reference", LEGAL, "--reason", REASON
    )
    assert worker.returncode == 1 and "cp_worker1 is not an approver" in worker.stderr
    assert len(worker.stderr.strip().splitlines()) == 1
    no_reference = cli(env, *base, "--approved-by", "cp_supervisor1", "--reason", REASON)
    assert no_reference.returncode == 1 and "legal reference" in no_reference.stderr

    (recorded,) = as_json(
        cli(
            env,
            *base,
            "--approved-by",
            "cp_supervisor1",
            "--legal-reference",
            LEGAL,
            "--reason",
            REASON,
            "--format",
            "json",
        )
    )
    assert recorded["state"] == "active" and recorded["requested_by"] == "cp_worker1"
    assert cli(env, "sync", "police").returncode == 0
    (record,) = desk.records()
    assert record["body"]["referral"]["basis"] == "mandatory_report"
    assert as_json(cli(env, "decisions", "held", "--format", "json")) == []

    # Revoked: a later edit of the case sends nothing more.
    revoked = cli(env, "decisions", "revoke", str(recorded["id"]))
    assert revoked.returncode == 0, revoked.stderr
    (listed,) = as_json(cli(env, "decisions", "list", "--format", "json"))
    assert listed["state"] == "revoked"
    cpo_edit(world["sim"].url, case_id, {"age": 12})
    assert cli(env, "sync", "police").returncode == 0
    (record,) = desk.records()
    assert record["versions"] == 1

    log = as_json(cli(env, "decisions", "log", "--format", "json"))
    events = [e["event"] for e in log]
    assert "override_recorded" in events and "override_revoked" in events
    (used,) = [e for e in log if e["event"] == "disclosure"]
    assert used["approved_by"] == ["cp_supervisor1"] and used["legal_reference"] == [LEGAL]
    assert REASON not in json.dumps(log)


def test_an_approver_who_made_the_referral_is_refused_on_the_server_too(
    world: dict[str, Any],
) -> None:
    env, case_id = world["env"], world["case_id"]
    config = Path(env["CPIMS_ADAPTER_CONFIG"])
    config.write_text(
        config.read_text().replace(
            'approver_roles = ["role-cp-supervisor"]',
            'approver_roles = ["role-cp-supervisor"]\napprover_user_names = ["cp_worker1"]',
        )
    )
    mine = cli(
        env,
        "decisions",
        "add",
        case_id,
        "--department",
        "police",
        "--basis",
        "mandatory_report",
        "--approved-by",
        "cp_worker1",
        "--legal-reference",
        LEGAL,
        "--reason",
        REASON,
    )
    assert mine.returncode == 1
    assert "cp_worker1 made the referral; a second person must approve" in mine.stderr
    assert as_json(cli(env, "decisions", "list", "--format", "json")) == []
    unknown = cli(
        env,
        "decisions",
        "add",
        "not-a-uuid",
        "--department",
        "police",
        "--basis",
        "s3_approval",
        "--approved-by",
        "cp_supervisor1",
    )
    assert unknown.returncode == 2 and "neither" in unknown.stderr
