"""The shared fault model: validation, determinism, and each kind of failure on a real server.

Each kind is exercised against the police simulator on loopback with plain ``requests``, the
way the adapter's connectors see it: the status and Retry-After, a hang past the client's
timeout, an invalid JSON body, a body cut short, a request carried out twice, a token that
stops working.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from adapter.errors import ConfigError
from adapter.simulator.departments import DepartmentSimulator, Desk
from adapter.simulator.faults import FaultInjector, FaultPlan, load_plan, parse_plan
from adapter.simulator.primero import PrimeroSimulator

REFERRALS = "/api/v1/referrals"


def plan(*rules: dict[str, Any], seed: int = 7) -> dict[str, Any]:
    return {"seed": seed, "rules": list(rules)}


def test_a_plan_is_validated_and_errors_name_the_field() -> None:
    with pytest.raises(ConfigError, match=r"rules\.0\.rate"):
        parse_plan(plan({"kind": "error", "rate": 2}))
    with pytest.raises(ConfigError, match="never fires"):
        parse_plan(plan({"kind": "error"}))
    with pytest.raises(ConfigError, match="delay_seconds"):
        parse_plan(plan({"kind": "timeout", "rate": 0.5}))
    with pytest.raises(ConfigError, match="429 or 503"):
        parse_plan(plan({"kind": "throttle", "rate": 0.5, "status": 500}))
    with pytest.raises(ConfigError, match=r"rules\.0\.colour"):
        parse_plan(plan({"kind": "error", "rate": 0.5, "colour": "red"}))


def test_the_same_seed_fails_the_same_requests() -> None:
    rules = plan(
        {"kind": "error", "rate": 0.3, "path": "/api/v1/*"},
        {"kind": "throttle", "rate": 0.1, "retry_after": 1, "burst": 3},
    )

    def fired(seed: int) -> list[str | None]:
        injector = FaultInjector(parse_plan({**rules, "seed": seed}))
        return [
            (rule.kind if (rule := injector.decide("POST", f"/api/v1/r{i}")) else None)
            for i in range(200)
        ]

    assert fired(7) == fired(7)
    assert fired(7) != fired(8)
    kinds = fired(7)
    assert 40 <= kinds.count("error") <= 90  # about 30 %, less what the throttle bursts took
    assert kinds.count("throttle") >= 3


def test_an_exact_schedule_fires_on_those_requests_only() -> None:
    injector = FaultInjector(parse_plan(plan({"kind": "error", "at": [2, 5], "burst": 2})))
    hits = [injector.decide("GET", "/x") is not None for _ in range(8)]
    assert hits == [False, True, True, False, True, True, False, False]
    assert injector.decide("GET", "/_sim/records") is None  # never the control API


def test_a_plan_file_is_json_or_toml(tmp_path: Path) -> None:
    (tmp_path / "f.json").write_text(json.dumps(plan({"kind": "error", "rate": 0.5})))
    (tmp_path / "f.toml").write_text('seed = 3\n[[rules]]\nkind = "error"\nat = [1]\n')
    assert load_plan(tmp_path / "f.json").rules[0].rate == 0.5
    assert load_plan(tmp_path / "f.toml") == FaultPlan(seed=3, rules=[{"kind": "error", "at": [1]}])  # type: ignore[list-item]
    (tmp_path / "bad.toml").write_text("seed = [")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_plan(tmp_path / "bad.toml")


@pytest.fixture
def police() -> Iterator[tuple[DepartmentSimulator, Desk]]:
    with DepartmentSimulator("police", auth="oauth2") as sim, Desk(sim.url) as desk:
        yield sim, desk


def install(url: str, *rules: dict[str, Any]) -> None:
    answer = requests.post(f"{url}/_sim/faults", json=plan(*rules), timeout=5)
    answer.raise_for_status()


def token(url: str) -> str:
    answer = requests.post(
        f"{url}/oauth/token",
        data={"grant_type": "client_credentials"},
        auth=("cpims-adapter", "sim-client-secret"),
        timeout=5,
    )
    answer.raise_for_status()
    return str(answer.json()["access_token"])


def post_referral(url: str, bearer: str, key: str, timeout: float = 5) -> requests.Response:
    return requests.post(
        url + REFERRALS,
        json={"referral_key": key, "referral": {"case_code": "cp1.police.x"}},
        headers={"Authorization": f"Bearer {bearer}", "Idempotency-Key": f"idem-{key}"},
        timeout=timeout,
    )


def test_each_kind_of_fault_as_a_client_sees_it(
    police: tuple[DepartmentSimulator, Desk],
) -> None:
    sim, desk = police
    bearer = token(sim.url)

    install(sim.url, {"kind": "throttle", "at": [1], "retry_after": 2})
    answer = post_referral(sim.url, bearer, "k1")
    assert (answer.status_code, answer.headers["Retry-After"]) == (503, "2")
    assert desk.records() == []  # a throttled request is not carried out

    install(sim.url, {"kind": "timeout", "at": [1], "delay_seconds": 1.0})
    started = time.monotonic()
    with pytest.raises(requests.exceptions.Timeout):
        post_referral(sim.url, bearer, "k1", timeout=0.3)
    assert time.monotonic() - started < 1.0

    install(sim.url, {"kind": "malformed", "at": [1], "methods": ["POST"]})
    answer = post_referral(sim.url, bearer, "k2")
    assert answer.status_code == 201
    with pytest.raises(ValueError):
        answer.json()
    # Carried out: the answer was lost, the record exists; a re-send is replayed.
    assert [r["referral_key"] for r in desk.records()] == ["k2"]
    assert post_referral(sim.url, bearer, "k2").headers.get("Idempotent-Replayed") == "true"

    install(sim.url, {"kind": "truncated", "at": [1]})
    with pytest.raises(requests.exceptions.ChunkedEncodingError):
        post_referral(sim.url, bearer, "k3")
    assert "k3" in {r["referral_key"] for r in desk.records()}

    install(sim.url, {"kind": "duplicate", "at": [1]})
    answer = post_referral(sim.url, bearer, "k4")
    assert answer.headers.get("Idempotent-Replayed") == "true"  # the second of two
    assert sum(r["referral_key"] == "k4" for r in desk.records()) == 1

    install(sim.url, {"kind": "session_expiry", "at": [1]})
    assert post_referral(sim.url, bearer, "k5").status_code == 401
    assert post_referral(sim.url, token(sim.url), "k5").status_code == 201

    install(sim.url, {"kind": "slow", "at": [1], "delay_seconds": 0.3})
    started = time.monotonic()
    assert post_referral(sim.url, token(sim.url), "k6").status_code == 201
    assert time.monotonic() - started >= 0.3

    report = requests.get(f"{sim.url}/_sim/faults", timeout=5).json()["plan"]
    assert report["fired"] == {"slow": 1}
    requests.delete(f"{sim.url}/_sim/faults", timeout=5).raise_for_status()
    assert requests.get(f"{sim.url}/_sim/faults", timeout=5).json() == {"plan": None}


def test_primero_takes_a_plan_and_expires_sessions() -> None:
    with PrimeroSimulator(cases=3) as sim:
        session = requests.Session()
        # The CSRF token Primero checks on sign-in comes from the session primer.
        session.get(f"{sim.url}/health/server", params={"session": "true"}, timeout=5)
        login = session.post(
            f"{sim.url}/api/v2/tokens",
            json={"user": {"user_name": "cpims-adapter", "password": "sim-password"}},
            headers={"X-CSRF-Token": session.cookies["CSRF-TOKEN"]},
            timeout=5,
        )
        login.raise_for_status()
        assert session.get(f"{sim.url}/api/v2/cases", timeout=5).status_code == 200
        answer = requests.post(
            f"{sim.url}/_sim/faults",
            json={**plan({"kind": "session_expiry", "at": [1]}), "mutate_on_list": 1},
            timeout=5,
        )
        answer.raise_for_status()
        assert session.get(f"{sim.url}/api/v2/cases", timeout=5).status_code == 401
        report = requests.get(f"{sim.url}/_sim/faults", timeout=5).json()
        assert report["plan"]["fired"] == {"session_expiry": 1}
        assert report["mutate_on_list"] == 1
        bad = requests.post(
            f"{sim.url}/_sim/faults", json=plan({"kind": "nap", "rate": 1}), timeout=5
        )
        assert bad.status_code == 422 and "rules.0.kind" in bad.text
        basic = requests.get(
            f"{sim.url}/api/v2/cases", auth=("cpims-adapter", "sim-password"), timeout=5
        )
        assert basic.status_code == 200  # Basic auth has no session to lose
