"""The establishment officer's page takes the API's path: the same quota, single-use consent,
answer, audit and anti-enumeration rules; the page's size does not tell the outcome."""

from __future__ import annotations

import re

from fastapi import FastAPI
from fastapi.testclient import TestClient

from adapter.privacy.audit import AuditLog
from adapter.registry import ConvictionOrder, Registry, RegistrySettings
from adapter.registry.api import build_router
from tests.console.conftest import World, csrf_of, sign_in
from tests.console.test_security import check_form


def registry_api(world: World) -> tuple[TestClient, str]:
    """The registry's HTTP API over the same registry, and SCH-001's rotated API key."""
    app = FastAPI()
    app.include_router(build_router(world.registry))
    key = world.registry.rotate_api_key("SCH-001", "r.officer")
    return TestClient(app), key


def convict(registry: Registry) -> None:
    registry.ingest_conviction(
        ConvictionOrder(
            court="lhc",
            order_ref="CRL-1",
            order_date="2024-01-15",
            offence_code="ppc_377a",
            cnic="35202-1234567-1",
            full_name="Muhammad Ali",
            father_name="Muhammad Aslam",
            date_of_birth="1990-05-01",
        )
    )


def post_check(client: TestClient, **fields: str) -> str:
    csrf = csrf_of(client.get("/console/establishment").text)
    answer = client.post("/console/establishment/check", data=check_form(csrf, **fields))
    assert answer.status_code == 200
    return answer.text


def test_a_check_answers_status_reference_and_next_steps_and_is_audited(world: World) -> None:
    convict(world.registry)
    client = sign_in(world, world.client(), "officer1")
    page = post_check(client)
    assert "DO NOT ENGAGE" in page and "Do not engage this person" in page
    ref = re.search(r'id="check-ref">(RC[^<]+)<', page).group(1)  # type: ignore[union-attr]
    # Status only: nothing about the entry (offence, court, order) is on the page.
    assert "ppc_377a" not in page and "CRL-1" not in page and "lhc" not in page
    clear = post_check(
        client,
        cnic="42101-7654321-3",
        full_name="Zainab Bibi",
        father_name="Ghulam Rasool",
        consent_ref="CF-2026-000002",
    )
    assert "Nothing in the register prevents" in clear
    history = client.get("/console/establishment").text
    assert ref in history and "Checks used: 2 of 20 today" in history
    entries = [r.entry for r in AuditLog(world.console.store, world.console.keyring).entries()]
    assert any(e["event"] == "registry_check" and e.get("case_code") == ref for e in entries)
    mine = [e for e in entries if e["event"] == "console_check"]
    assert mine[0]["recorded_by"] == "officer1" and mine[0]["case_code"] == ref
    assert not any("35202" in str(e) or "Muhammad" in str(e) for e in entries)


def test_every_answer_page_has_the_same_size(world: World) -> None:
    convict(world.registry)
    client = sign_in(world, world.client(), "officer1")
    hit = post_check(client)
    other = {"cnic": "42101-7654321-3", "full_name": "Zainab Bibi", "father_name": "Ghulam Rasool"}
    miss = post_check(client, consent_ref="CF-2026-000002", **other)
    near = post_check(client, consent_ref="CF-2026-000003", cnic="42101-7654321-3")
    reused = post_check(client, consent_ref="CF-2026-000002", **other)
    assert "DO NOT ENGAGE" in hit and "Nothing in the register" in miss
    assert "PENDING REVIEW" in near and "already used" in reused
    sizes = {len(page.encode()) for page in (hit, miss, near, reused)}
    assert sizes == {world.console.settings.check_page_bytes}


def test_the_console_and_the_api_share_one_quota_and_consent_register(world: World) -> None:
    api, key = registry_api(world)
    headers = {"Authorization": f"Bearer {key}"}
    body = {k: v for k, v in check_form("").items() if k != "csrf_token"}
    assert api.post("/v1/registry/checks", json=body, headers=headers).status_code == 200
    client = sign_in(world, world.client(), "officer1")
    assert "already used" in post_check(client)  # the API's consent reference, refused here
    school = world.registry.establishment("SCH-001")
    assert world.registry.quota_used(school)[0] == 2  # the refusal counted too, as in the API


def test_the_daily_quota_stops_the_console_as_it_stops_the_api(world: World, store: object) -> None:
    tight = Registry.open(
        world.console.store, world.console.keyring, RegistrySettings(answer_min_ms=0)
    )
    tight.add_establishment(
        "SCH-009",
        "School 9",
        (("A B", "a@school.example"), ("C D", "c@school.example")),
        registered_by="r.officer",
        daily_quota=2,
    )
    world.console.accounts.add(
        "officer9",
        display_name="Officer Nine",
        role=world.console.accounts.by_username("officer1").role,  # type: ignore[union-attr]
        password="correct horse battery staple",
        created_by="test",
        establishment="SCH-009",
    )
    client = sign_in(world, world.client(), "officer9")
    for i in range(2):
        post_check(client, consent_ref=f"CF-2026-10000{i}", cnic=f"42101-765432{i}-3")
    refused = post_check(client, consent_ref="CF-2026-100009")
    assert "quota of checks is used up" in refused and "Checks used: 2 of 2 today" in refused
