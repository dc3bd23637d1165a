"""Seed data properties, list speed, and the foreground server used by the CLI."""

from __future__ import annotations

import re
import signal
import subprocess
import sys
import time
from collections import Counter

import requests

from adapter.simulator.primero import build_state, seed
from adapter.simulator.primero.listing import list_cases

URDU = re.compile(r"[\u0600-\u06FF]")


def test_seed_is_deterministic_per_seed() -> None:
    one, two, other = build_state(), build_state(), build_state()
    seed(one, cases=30, seed=5)
    seed(two, cases=30, seed=5)
    seed(other, cases=30, seed=6)
    assert [c.data for c in one.cases.values()] == [c.data for c in two.cases.values()]
    assert list(one.cases) != list(other.cases)


def test_seeded_cases_look_like_pakistani_cp_cases() -> None:
    state = build_state(cases=2000, seed_value=11)
    cases = [c.data for c in state.cases.values()]
    assert all(URDU.search(c["name_local_script"]) for c in cases)
    assert all(c["location_current"][:5] in ("PK-SD", "PK-BA", "PK-KP") for c in cases)
    assert all(0 <= c["age"] <= 17 for c in cases)
    concerns = Counter(p for c in cases for p in c["protection_concerns"])
    for sensitive in (
        "sexually_exploited",
        "gbv_survivor",
        "trafficked_smuggled",
        "physically_or_mentally_abused",
        "child_labour",
        "arrested_detained",
    ):
        assert concerns[sensitive] > 0
    gbv = [c for c in cases if c["module_id"] == "primeromodule-gbv"]
    assert 0.06 < len(gbv) / len(cases) < 0.14 and all(c["hidden_name"] for c in gbv)
    assert 0.7 < sum(c["consent_for_services"] for c in cases) / len(cases) < 0.97
    stamps = [c["last_updated_at"] for c in cases]
    assert len(set(stamps)) == len(stamps)
    assert all(re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", s) for s in stamps)
    assert all(c["created_at"] <= c["last_updated_at"] for c in cases)
    services = {r["service_type"] for c in cases for r in c["services_section"]}
    assert {"health_medical_service", "police_other_service", "registration_service"} <= services
    remote_agencies = {t.get("transitioned_to_agency") for t in state.transitions.values()}
    assert {
        "agency-nadra",
        "agency-sindh-police",
        "agency-juvenile-court-karachi",
    } <= remote_agencies
    assert any(c.get("notes_section") for c in cases)


def test_a_full_page_over_many_cases_is_fast() -> None:
    state = build_state(cases=20000, seed_value=3)
    user = state.users["cpims-adapter"]
    params = {
        "per": "1000",
        "order_by": "last_updated_at",
        "order": "asc",
        "last_updated_at": "2000-01-01T00:00:00Z..2100-01-01T00:00:00Z",
    }
    started = time.perf_counter()
    body = list_cases(state, user, params, "/api/v2/cases").body
    assert time.perf_counter() - started < 1.0
    assert len(body["data"]) == 1000 and body["metadata"]["total"] == 20000


def test_serve_forever_prints_one_line_and_stops_on_sigterm() -> None:
    code = (
        "from adapter.simulator.primero import serve_forever; "
        "serve_forever(port=0, cases=5, seed=1, host='127.0.0.1')"
    )
    process = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    try:
        assert process.stdout is not None
        line = process.stdout.readline()
        match = re.search(r"http://127\.0\.0\.1:\d+", line)
        assert match and "cpims-adapter" in line and "sim-password" in line
        response = requests.get(
            match.group(0) + "/api/v2/cases", auth=("cpims-adapter", "sim-password"), timeout=5
        )
        assert response.json()["metadata"]["total"] == 5
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=10) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        if process.stdout is not None:
            process.stdout.close()
