"""The client in `auth = "session"` mode against the Primero simulator on a real socket.

What Primero does, and the simulator copies (primero-api.md §2):
- `POST /api/v2/tokens` is CSRF-protected: TokensController's parent is ApplicationApiController
  (config/initializers/devise.rb `parent_controller`), whose `protect_from_forgery` applies
  before any Warden strategy has won (app/controllers/concerns/csrf_protection.rb).
- The token comes from `GET /health/server?session=true` (app/controllers/health_controller.rb
  `use_csrf_protection?`; the web client's connectivity/action-creators.js).
- Signing in drops the token (devise.rb `clean_up_csrf_token_on_authentication`), so writes
  need a fresh one from a second primer.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest
import requests

from adapter.errors import PrimeroAuthError
from adapter.primero import PrimeroClient
from adapter.simulator.primero import PrimeroSimulator

PASSWORD = "sim-password"
USER = "cpims-adapter"


@pytest.fixture(scope="module")
def sim() -> Iterator[PrimeroSimulator]:
    with PrimeroSimulator(cases=10) as simulator:
        yield simulator


def session_client(sim: PrimeroSimulator, **kw: Any) -> PrimeroClient:
    kw.setdefault("username", USER)
    kw.setdefault("password", PASSWORD)
    return PrimeroClient(sim.url, auth="session", sleep=lambda _: None, **kw)


def control(sim: PrimeroSimulator, method: str, path: str, **body: Any) -> Any:
    response = requests.request(method, f"{sim.url}/_sim{path}", json=body or None, timeout=10)
    response.raise_for_status()
    return response.json()


def counts(sim: PrimeroSimulator) -> dict[str, int]:
    stats: dict[str, int] = control(sim, "GET", "/stats")["requests"]
    return stats


def delta(before: dict[str, int], after: dict[str, int], key: str) -> int:
    return after.get(key, 0) - before.get(key, 0)


def away_from_minute_boundary() -> None:
    """Rack::Attack counts sign-ins per minute window; keep a test's sign-ins in one window."""
    if time.time() % 60 > 55:
        time.sleep(60 - time.time() % 60 + 0.1)


def a_case_id(client: PrimeroClient) -> str:
    records, _ = client.list_cases({"per": 1})
    return str(records[0]["id"])


def test_session_signs_in_through_the_csrf_primer_and_writes(sim: PrimeroSimulator) -> None:
    away_from_minute_boundary()
    before = counts(sim)
    with session_client(sim) as client:
        flag = client.add_flag(a_case_id(client), "session contract")
    after = counts(sim)

    assert flag["message"] == "session contract"
    assert delta(before, after, "POST /api/v2/tokens") == 1
    # Once before signing in (the token the sign-in is checked against), once after it (the
    # sign-in dropped that token).
    assert delta(before, after, "GET /health/{backend}") == 2
    assert delta(before, after, "DELETE /api/v2/tokens") == 1  # close() signs out
    assert control(sim, "GET", f"/users/{USER}")["sessions"] == 0


def test_an_expired_session_signs_in_again_and_the_request_goes_through(
    sim: PrimeroSimulator,
) -> None:
    away_from_minute_boundary()
    with session_client(sim) as client:
        case_id = a_case_id(client)
        before = counts(sim)
        # Every session ends just before the next flag request (a 60-minute timeout mid-run).
        rule = {"kind": "session_expiry", "path": "/api/v2/cases/*/flags", "at": [1]}
        control(sim, "POST", "/faults", seed=1, rules=[rule])
        try:
            flag = client.add_flag(case_id, "after expiry")  # 401, sign in again, resend
        finally:
            control(sim, "DELETE", "/faults")
        after = counts(sim)

    assert flag["message"] == "after expiry"
    assert delta(before, after, "POST /api/v2/tokens") == 1
    assert delta(before, after, "POST /api/v2/cases/{case_id}/flags") == 2


def test_a_stale_csrf_token_signs_in_again_once_and_resends(sim: PrimeroSimulator) -> None:
    away_from_minute_boundary()
    http = requests.Session()
    with session_client(sim, session=http) as client:
        case_id = a_case_id(client)
        (cookie,) = [c for c in http.cookies if c.name == "CSRF-TOKEN"]
        http.cookies.set("CSRF-TOKEN", "stale", domain=cookie.domain, path="/")
        before = counts(sim)
        flag = client.add_flag(case_id, "after a stale token")  # 403 CSRF, sign in, resend
        after = counts(sim)
    http.close()

    assert flag["message"] == "after a stale token"
    assert delta(before, after, "POST /api/v2/tokens") == 1
    assert delta(before, after, "POST /api/v2/cases/{case_id}/flags") == 2


def test_a_wrong_password_is_one_sign_in_attempt(sim: PrimeroSimulator) -> None:
    away_from_minute_boundary()
    user = "cp_viewer"
    requests.get(f"{sim.url}/api/v2/cases", auth=(user, PASSWORD), timeout=5)  # reset counter
    client = session_client(sim, username=user, password="wrong")
    with pytest.raises(PrimeroAuthError):
        client.list_cases({"per": 1})
    with pytest.raises(PrimeroAuthError):
        client.list_cases({"per": 1})  # refused locally: Primero is not asked again
    client.close()

    # The CSRF check passed (the primer worked), so Devise counted exactly one failure.
    assert control(sim, "GET", f"/users/{user}")["failed_attempts"] == 1
