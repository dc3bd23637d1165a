"""The DPO's pages: incidents with their countdown, the notice, closing with a reason;
decisions list/add (the CLI fallback's rules, against the Primero simulator)/revoke; the audit
chain; explain for one case."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from fastapi import FastAPI

from adapter.config import DepartmentSettings, JobSettings, PrimeroSettings, Settings
from adapter.config.console import ConsoleSettings
from adapter.config.privacy import DecisionSettings, PrivacySettings
from adapter.console.app import Console, build_console
from adapter.incidents import get_incident, scan_security_events
from adapter.primero import PrimeroClient
from adapter.privacy.audit import AuditLog
from adapter.privacy.events import SecurityEventKind, record_security_event
from adapter.simulator.departments.scenario import (
    MAPPINGS_DIR,
    POLICE_AGENCY,
    POLICE_SERVICE,
    refer_children,
)
from adapter.simulator.primero import PrimeroSimulator
from adapter.simulator.scenario import POLICY_DIR, install_linked_records_form
from tests.console.conftest import World, csrf_of, sign_in


def dpo_world(world: World, primero_url: str = "http://127.0.0.1:9") -> World:
    """The world's console over settings with Primero, the police department and its job,
    the scenario's policy files and the supervisors as approvers (as tests/test_cli_decisions)."""
    settings = Settings(
        console=ConsoleSettings(enabled=True, cookie_secure=False),
        primero=PrimeroSettings(url=primero_url, username="cpims-adapter", password="sim-password"),
        privacy=PrivacySettings(policy_dir=POLICY_DIR),
        departments={
            "police": DepartmentSettings(
                connector="rest",
                base_url="http://127.0.0.1:9",
                auth="api_key",
                mapping_file=MAPPINGS_DIR / "police.toml",
            )
        },
        jobs={
            "police": JobSettings(
                department="police", agencies=[POLICE_AGENCY], services=[POLICE_SERVICE]
            )
        },
        decisions=DecisionSettings(approver_roles=("role-cp-supervisor",)),
    )
    old = world.console
    console = Console.build(settings, old.store, old.keyring, old.registry)
    app = FastAPI()
    app.mount("/console", build_console(console))
    return World(console, world.registry, app, world.totp)


def open_incident(world: World) -> int:
    with world.console.store.transaction() as conn:
        record_security_event(
            conn, SecurityEventKind.AUDIT_CHAIN_BROKEN, department=None, detail="seq 12 broken"
        )
    result = scan_security_events(world.console.store, world.console.full_settings)
    return result.opened[0]


def test_incidents_show_the_countdown_give_the_notice_and_close_with_a_reason(world: World) -> None:
    world = dpo_world(world)
    incident_id = open_incident(world)
    dpo = sign_in(world, world.client(), "dpo1")
    page = dpo.get("/console/dpo").text
    assert f'id="incident-{incident_id}"' in page and "left" in page
    notice = dpo.get(f"/console/dpo/incidents/{incident_id}/notice")
    assert notice.headers["content-disposition"].startswith("attachment;")
    assert "audit_chain_broken" in notice.text or "audit" in notice.text.lower()
    csrf = csrf_of(page)
    short = dpo.post(
        f"/console/dpo/incidents/{incident_id}/close",
        data={"csrf_token": csrf, "resolution": "done"},
    )
    assert "10-1000 characters" in short.text
    closed = dpo.post(
        f"/console/dpo/incidents/{incident_id}/close",
        data={"csrf_token": csrf, "resolution": "chain restored from backup, DPO informed"},
    )
    assert closed.status_code == 303
    incident = get_incident(world.console.store, incident_id)
    assert incident.status == "closed" and incident.closed_by == "dpo1"
    events = {
        r.entry["event"] for r in AuditLog(world.console.store, world.console.keyring).entries()
    }
    assert {"console_notice_downloaded", "console_incident_closed"} <= events


def test_the_audit_chain_is_verified_on_demand(world: World) -> None:
    world = dpo_world(world)
    dpo = sign_in(world, world.client(), "dpo1")
    page = dpo.get("/console/dpo").text
    assert "Not verified yet." in page
    verified = dpo.post("/console/dpo/audit/verify", data={"csrf_token": csrf_of(page)}).text
    assert "The audit log is intact" in verified
    assert "Last verified:" in dpo.get("/console/dpo").text


def test_only_the_dpo_opens_the_dpo_pages(world: World) -> None:
    world = dpo_world(world)
    operator = sign_in(world, world.client(), "operator1")
    for path in (
        "/console/dpo",
        "/console/dpo/decisions",
        "/console/dpo/explain",
        "/console/dpo/incidents/1/notice",
    ):
        assert operator.get(path).status_code == 403
    reviewer = sign_in(world, world.client("192.0.2.30"), "reviewer1")
    csrf = csrf_of(reviewer.get("/console/sign-in").text)
    assert (
        reviewer.post("/console/dpo/decisions/1/revoke", data={"csrf_token": csrf}).status_code
        == 403
    )


@pytest.fixture
def sim() -> Iterator[PrimeroSimulator]:
    with PrimeroSimulator(cases=0) as simulator:
        install_linked_records_form(simulator.url)
        yield simulator


def test_decisions_follow_the_cli_rules_and_explain_one_case(
    world: World, sim: PrimeroSimulator
) -> None:
    world = dpo_world(world, sim.url)
    ((case_id, _),) = refer_children(sim.url, 1, consent=False)
    dpo = sign_in(world, world.client(), "dpo1")
    page = dpo.get("/console/dpo/decisions").text
    csrf = csrf_of(page)
    form = {
        "csrf_token": csrf,
        "case": case_id,
        "department": "police",
        "basis": "mandatory_report",
        "approved_by": "cp_supervisor1",
        "legal_reference": "SCPA Act 2011 s.15",
        "reason": "",
    }
    no_reason = dpo.post("/console/dpo/decisions", data=form).text
    assert "needs a reason" in no_reason
    stranger = dpo.post(
        "/console/dpo/decisions", data={**form, "reason": "at risk", "approved_by": "someone_else"}
    ).text
    assert "--approved-by:" in stranger
    added = dpo.post("/console/dpo/decisions", data={**form, "reason": "at risk"})
    assert added.headers["location"] == "/console/dpo/decisions?done=added"
    listed = dpo.get("/console/dpo/decisions").text
    assert case_id in listed and "active" in listed
    decision_id = listed.split("/console/dpo/decisions/")[1].split("/revoke")[0]
    revoked = dpo.post(f"/console/dpo/decisions/{decision_id}/revoke", data={"csrf_token": csrf})
    assert revoked.headers["location"] == "/console/dpo/decisions?done=revoked"
    assert "revoked" in dpo.get("/console/dpo/decisions").text

    explained = dpo.post(
        "/console/dpo/explain",
        data={"csrf_token": csrf, "case": case_id, "department": "police", "purpose": "referral"},
    ).text
    assert 'id="explanation"' in explained
    assert "would be released by" in explained or "held" in explained
    with PrimeroClient(sim.url, username="cp_worker1", password="sim-password") as cpo:
        name = str(cpo.get_case(case_id).get("name"))
    assert name not in explained  # field names and reasons, never values


XSS = '"><script>alert(1)</script>'


def test_reflected_input_is_escaped_in_the_dpo_forms(world: World) -> None:
    world = dpo_world(world)  # Primero unreachable: every form comes back with its input
    incident_id = open_incident(world)
    dpo = sign_in(world, world.client(), "dpo1")
    csrf = csrf_of(dpo.get("/console/dpo").text)
    short = dpo.post(
        f"/console/dpo/incidents/{incident_id}/close",
        data={"csrf_token": csrf, "resolution": "<i>x</i>"},
    ).text
    assert "&lt;i&gt;x&lt;/i&gt;" in short and "<i>x</i>" not in short
    closing = {"csrf_token": csrf, "resolution": XSS}
    assert dpo.post(f"/console/dpo/incidents/{incident_id}/close", data=closing).status_code == 303
    pages = [
        dpo.get("/console/dpo", params={"closed": "1"}).text,
        dpo.post(
            "/console/dpo/decisions",
            data={
                "csrf_token": csrf,
                "case": XSS,
                "department": "police",
                "basis": "mandatory_report",
                "approved_by": XSS,
                "legal_reference": XSS,
                "reason": XSS,
                "purpose": XSS,
                "hours": "1",
            },
        ).text,
        dpo.post(
            "/console/dpo/decisions", data={"csrf_token": csrf, "basis": XSS, "hours": XSS}
        ).text,
        dpo.post(
            "/console/dpo/explain",
            data={"csrf_token": csrf, "case": XSS, "department": "police", "purpose": XSS},
        ).text,
    ]
    for page in pages:
        assert "<script>alert(1)" not in page
    assert "&lt;script&gt;" in pages[0] and "&lt;script&gt;" in pages[1]
