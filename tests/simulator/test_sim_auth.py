"""Authentication, sessions, CSRF, lockout, throttling, config lock and injected faults (§2)."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest
import requests

from adapter.simulator.primero import PrimeroSimulator
from tests.simulator.sim_helpers import ADAPTER, PASSWORD, url

UNAUTHENTICATED = {"error": "You need to sign in or sign up before continuing."}
INVALID = {"error": "Invalid User name or password."}
WWW = 'Bearer realm="Primero" charset="UTF8"'


@pytest.fixture()
def sessions() -> Iterator[list[requests.Session]]:
    """Sessions opened by a test, closed afterwards."""
    opened: list[requests.Session] = []
    yield opened
    for session in opened:
        session.close()


def prime(sim: PrimeroSimulator, session: requests.Session) -> str:
    """What the web client does before signing in: `/health/server?session=true` writes a CSRF
    token into the (possibly new) session and the CSRF-TOKEN cookie (health_controller.rb)."""
    response = session.get(url(sim, "/health/server"), params={"session": "true"}, timeout=5)
    assert response.status_code == 204
    return session.cookies["CSRF-TOKEN"]


def sign_in(
    sim: PrimeroSimulator, session: requests.Session, user: str, password: str = PASSWORD
) -> requests.Response:
    return session.post(
        url(sim, "/api/v2/tokens"),
        json={"user": {"user_name": user, "password": password}},
        headers={"X-CSRF-Token": prime(sim, session)},
        timeout=5,
    )


def login(
    sim: PrimeroSimulator, user: str, opened: list[requests.Session], password: str = PASSWORD
) -> requests.Session:
    session = requests.Session()
    opened.append(session)
    response = sign_in(sim, session, user, password)
    assert response.status_code == 200, response.text
    prime(sim, session)  # sign-in dropped the token (clean_up_csrf_token_on_authentication)
    return session


def away_from_minute_boundary() -> None:
    """Rack::Attack windows are aligned to the minute; keep 7 calls inside one window."""
    if time.time() % 60 > 55:
        time.sleep(60 - time.time() % 60 + 0.1)


def test_basic_auth_on_every_request(sim: PrimeroSimulator) -> None:
    response = requests.get(url(sim, "/api/v2/cases"), auth=ADAPTER, timeout=5)
    assert response.status_code == 200
    assert "_app_session" not in response.cookies


def test_unauthenticated_request_gets_devise_401_with_header(sim: PrimeroSimulator) -> None:
    response = requests.get(url(sim, "/api/v2/cases"), timeout=5)
    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"] == WWW
    assert response.json() == UNAUTHENTICATED


def test_wrong_password_by_basic_is_401_invalid(sim: PrimeroSimulator) -> None:
    response = requests.get(url(sim, "/api/v2/cases"), auth=("cp_viewer", "nope"), timeout=5)
    assert response.status_code == 401
    assert response.json() == INVALID
    assert response.headers["WWW-Authenticate"] == WWW


def test_token_login_returns_user_and_sets_cookies(
    sim: PrimeroSimulator, sessions: list[requests.Session]
) -> None:
    away_from_minute_boundary()
    session = requests.Session()
    sessions.append(session)
    response = sign_in(sim, session, "cp_worker1")
    assert response.status_code == 200
    body = response.json()
    assert set(body) == {"id", "user_name", "group_permission"}
    assert body["user_name"] == "cp_worker1" and body["group_permission"] == "self"
    assert response.cookies.get("_app_session") and response.cookies.get("CSRF-TOKEN")


def test_token_login_wrong_password_is_401(
    sim: PrimeroSimulator, sessions: list[requests.Session]
) -> None:
    away_from_minute_boundary()
    session = requests.Session()
    sessions.append(session)
    response = sign_in(sim, session, "cp_worker3", "bad")
    assert response.status_code == 401
    assert response.json() == INVALID


def test_health_answers_204_and_primes_a_session_only_when_asked(sim: PrimeroSimulator) -> None:
    # health_controller.rb, health_check_service.rb: BACKENDS = database solr server api.
    plain = requests.get(url(sim, "/health"), timeout=5)
    assert plain.status_code == 204 and not plain.cookies
    assert requests.get(url(sim, "/health/server"), timeout=5).status_code == 204
    unknown = requests.get(url(sim, "/health/nope"), timeout=5)
    assert unknown.status_code == 503 and unknown.headers["Retry-After"] == "60"
    primed = requests.get(url(sim, "/health/server"), params={"session": "true"}, timeout=5)
    assert primed.status_code == 204
    assert primed.cookies.get("CSRF-TOKEN") and primed.cookies.get("_app_session")


def test_health_api_is_unavailable_during_a_configuration_update(sim: PrimeroSimulator) -> None:
    # health_check_service.rb api_accessible?: !SystemSettings.locked_for_configuration_update?
    requests.post(url(sim, "/_sim/config_lock"), json={"locked": True}, timeout=5)
    try:
        locked = requests.get(url(sim, "/health/api"), timeout=5)
        assert locked.status_code == 503 and locked.headers["Retry-After"] == "60"
        assert requests.get(url(sim, "/health/server"), timeout=5).status_code == 204
    finally:
        requests.post(url(sim, "/_sim/config_lock"), json={"locked": False}, timeout=5)
    assert requests.get(url(sim, "/health/api"), timeout=5).status_code == 204


def test_sign_in_without_a_csrf_token_is_403_and_costs_no_attempt(
    sim: PrimeroSimulator, sessions: list[requests.Session]
) -> None:
    # TokensController < Devise::SessionsController < ApplicationApiController (devise.rb
    # parent_controller): protect_from_forgery runs before Devise looks at the password.
    away_from_minute_boundary()
    user = "cp_worker2"
    before = requests.get(url(sim, f"/_sim/users/{user}"), timeout=5).json()["failed_attempts"]
    session = requests.Session()
    sessions.append(session)
    body = {"user": {"user_name": user, "password": "wrong"}}
    refused = session.post(url(sim, "/api/v2/tokens"), json=body, timeout=5)
    assert refused.status_code == 403
    assert refused.json()["errors"][0]["message"] == "Can't verify CSRF token authenticity."
    after = requests.get(url(sim, f"/_sim/users/{user}"), timeout=5).json()["failed_attempts"]
    assert after == before
    # set_csrf_cookie ran before the check: the refusal hands out a session and a token.
    token = session.cookies["CSRF-TOKEN"]
    body["user"]["password"] = PASSWORD
    forged = session.post(
        url(sim, "/api/v2/tokens"), json=body, headers={"X-CSRF-Token": "forged"}, timeout=5
    )
    assert forged.status_code == 403
    accepted = session.post(
        url(sim, "/api/v2/tokens"), json=body, headers={"X-CSRF-Token": token}, timeout=5
    )
    assert accepted.status_code == 200


def test_sign_in_drops_the_csrf_token_until_the_next_primer(
    sim: PrimeroSimulator, sessions: list[requests.Session]
) -> None:
    # devise.rb clean_up_csrf_token_on_authentication; Warden renews the session id.
    away_from_minute_boundary()
    session = requests.Session()
    sessions.append(session)
    before_id = (prime(sim, session), session.cookies["_app_session"])[1]
    assert sign_in(sim, session, "cp_worker1").status_code == 200
    assert session.cookies["_app_session"] != before_id
    stale = session.cookies["CSRF-TOKEN"]
    body = {"data": {"name": "Stale Token", "age": 5, "sex": "male"}}
    refused = session.post(
        url(sim, "/api/v2/cases"), json=body, headers={"X-CSRF-Token": stale}, timeout=5
    )
    assert refused.status_code == 403
    fresh = prime(sim, session)
    assert fresh != stale
    accepted = session.post(
        url(sim, "/api/v2/cases"), json=body, headers={"X-CSRF-Token": fresh}, timeout=5
    )
    assert accepted.status_code == 200


def test_sign_in_checks_the_configuration_lock_before_csrf_and_password(
    sim: PrimeroSimulator,
) -> None:
    # application_api_controller.rb: check_config_update_lock! is a before_action of the
    # TokensController's parent, declared before protect_from_forgery; the password is checked
    # in the action (Devise sessions#create), after every before_action.
    user = "cp_worker2"
    before = requests.get(url(sim, f"/_sim/users/{user}"), timeout=5).json()["failed_attempts"]
    requests.post(url(sim, "/_sim/config_lock"), json={"locked": True, "retry_after": 9}, timeout=5)
    try:
        away_from_minute_boundary()
        locked = requests.post(
            url(sim, "/api/v2/tokens"),
            json={"user": {"user_name": user, "password": "wrong"}},
            timeout=5,
        )
    finally:
        requests.post(url(sim, "/_sim/config_lock"), json={"locked": False}, timeout=5)
    assert locked.status_code == 503 and locked.headers["Retry-After"] == "9"
    after = requests.get(url(sim, f"/_sim/users/{user}"), timeout=5).json()["failed_attempts"]
    assert after == before  # a locked Primero never reached Devise: no failed attempt counted


def test_session_writes_need_the_csrf_header(
    sim: PrimeroSimulator, sessions: list[requests.Session]
) -> None:
    away_from_minute_boundary()
    session = login(sim, "cp_worker1", sessions)
    assert session.get(url(sim, "/api/v2/cases"), timeout=5).status_code == 200
    body = {"data": {"name": "Csrf Test", "age": 5, "sex": "male"}}
    refused = session.post(url(sim, "/api/v2/cases"), json=body, timeout=5)
    assert refused.status_code == 403
    assert refused.json() == {
        "errors": [
            {
                "status": 403,
                "resource": "/api/v2/cases",
                "message": "Can't verify CSRF token authenticity.",
            }
        ]
    }
    token = session.cookies["CSRF-TOKEN"]
    accepted = session.post(
        url(sim, "/api/v2/cases"), json=body, headers={"X-CSRF-Token": token}, timeout=5
    )
    assert accepted.status_code == 200


def test_basic_auth_needs_no_csrf(api: requests.Session, sim: PrimeroSimulator) -> None:
    response = api.post(url(sim, "/api/v2/cases"), json={"data": {"name": "No Csrf"}}, timeout=5)
    assert response.status_code == 200


def test_session_expires_after_timeout(
    sim: PrimeroSimulator, sessions: list[requests.Session]
) -> None:
    away_from_minute_boundary()
    session = login(sim, "cp_worker2", sessions)
    requests.post(url(sim, "/_sim/session_timeout"), json={"seconds": 0.6}, timeout=5)
    try:
        assert session.get(url(sim, "/api/v2/cases"), timeout=5).status_code == 200
        time.sleep(0.9)
        expired = session.get(url(sim, "/api/v2/cases"), timeout=5)
        assert expired.status_code == 401
        assert expired.json() == UNAUTHENTICATED
    finally:
        requests.post(url(sim, "/_sim/session_timeout"), json={"seconds": 3600}, timeout=5)


def test_login_and_logout_expire_other_sessions(
    sim: PrimeroSimulator, sessions: list[requests.Session]
) -> None:
    away_from_minute_boundary()
    first = login(sim, "health_gateway", sessions)
    second = login(sim, "health_gateway", sessions)
    assert first.get(url(sim, "/api/v2/cases"), timeout=5).status_code == 401
    assert second.get(url(sim, "/api/v2/cases"), timeout=5).status_code == 200
    token = second.cookies["CSRF-TOKEN"]
    logout = second.delete(url(sim, "/api/v2/tokens"), headers={"X-CSRF-Token": token}, timeout=5)
    assert logout.status_code == 200 and logout.json() == {}
    again = requests.get(url(sim, "/api/v2/cases"), cookies={"_app_session": "whatever"}, timeout=5)
    assert again.status_code == 401
    status = requests.get(url(sim, "/_sim/users/health_gateway"), timeout=5).json()
    assert status["sessions"] == 0


def test_lockout_after_six_failures_even_for_the_right_password(sim: PrimeroSimulator) -> None:
    user = "cp_worker3"
    requests.get(url(sim, "/api/v2/cases"), auth=(user, PASSWORD), timeout=5)  # reset counter
    for attempt in range(1, 7):
        response = requests.get(url(sim, "/api/v2/cases"), auth=(user, "wrong"), timeout=5)
        assert response.status_code == 401
        state = requests.get(url(sim, f"/_sim/users/{user}"), timeout=5).json()
        assert state["failed_attempts"] == attempt
        assert state["locked"] is (attempt == 6)
    right = requests.get(url(sim, "/api/v2/cases"), auth=(user, PASSWORD), timeout=5)
    assert right.status_code == 401
    # Primero runs Devise with `paranoid = true`: the lock is not revealed.
    assert right.json() == INVALID
    requests.patch(url(sim, "/_sim/options"), json={"paranoid": False}, timeout=5)
    try:
        revealed = requests.get(url(sim, "/api/v2/cases"), auth=(user, PASSWORD), timeout=5)
        assert revealed.json() == {"error": "Your account is locked."}
    finally:
        requests.patch(url(sim, "/_sim/options"), json={"paranoid": True}, timeout=5)
    state = requests.get(url(sim, f"/_sim/users/{user}"), timeout=5).json()
    assert state["locked"] is True and state["login_failures_total"] >= 8


def test_success_resets_the_failure_counter(sim: PrimeroSimulator) -> None:
    user = "cp_viewer"
    for _ in range(3):
        requests.get(url(sim, "/api/v2/cases"), auth=(user, "wrong"), timeout=5)
    assert requests.get(url(sim, f"/_sim/users/{user}"), timeout=5).json()["failed_attempts"] >= 3
    assert (
        requests.get(url(sim, "/api/v2/cases"), auth=(user, PASSWORD), timeout=5).status_code == 200
    )
    assert requests.get(url(sim, f"/_sim/users/{user}"), timeout=5).json()["failed_attempts"] == 0


def test_seventh_token_request_in_a_minute_is_429(
    sim: PrimeroSimulator, sessions: list[requests.Session]
) -> None:
    away_from_minute_boundary()
    session = requests.Session()
    sessions.append(session)
    statuses = [sign_in(sim, session, "System_Monitor ", "wrong").status_code for _ in range(7)]
    assert statuses == [401] * 6 + [429]


def test_idp_bearer_token(sim: PrimeroSimulator) -> None:
    token = requests.post(
        url(sim, "/_sim/idp_tokens"),
        json={"user_name": "cp_worker1", "token": "idp-token-1"},
        timeout=5,
    ).json()["token"]
    headers = {"Authorization": f"Bearer {token}"}
    assert requests.get(url(sim, "/api/v2/cases"), headers=headers, timeout=5).status_code == 200
    body = requests.post(url(sim, "/api/v2/tokens"), headers=headers, timeout=5).json()
    assert body["token"] == token and body["user_name"] == "cp_worker1" and "id" in body
    bad = requests.get(
        url(sim, "/api/v2/cases"), headers={"Authorization": "Bearer nope"}, timeout=5
    )
    assert bad.status_code == 401 and bad.headers["WWW-Authenticate"] == WWW


def test_config_lock_is_503_with_retry_after(sim: PrimeroSimulator) -> None:
    requests.post(url(sim, "/_sim/config_lock"), json={"locked": True, "retry_after": 7}, timeout=5)
    locked = requests.get(url(sim, "/api/v2/cases"), auth=ADAPTER, timeout=5)
    assert locked.status_code == 503
    assert locked.headers["Retry-After"] == "7"
    assert locked.json()["errors"][0]["message"] == "Service Unavailable"
    # Authentication runs first: no credentials is still a 401.
    assert requests.get(url(sim, "/api/v2/cases"), timeout=5).status_code == 401
    requests.post(url(sim, "/_sim/config_lock"), json={"locked": False}, timeout=5)
    assert requests.get(url(sim, "/api/v2/cases"), auth=ADAPTER, timeout=5).status_code == 200


@pytest.mark.parametrize("status", [500, 502, 503, 429])
def test_injected_faults_hit_the_next_matching_requests(sim: PrimeroSimulator, status: int) -> None:
    requests.post(
        url(sim, "/_sim/faults"),
        json={"status": status, "count": 2, "retry_after": 1, "path_prefix": "/api/v2/cases"},
        timeout=5,
    )
    assert (
        requests.get(url(sim, "/api/v2/system_settings"), auth=ADAPTER, timeout=5).status_code
        == 200
    )
    first = requests.get(url(sim, "/api/v2/cases"), auth=ADAPTER, timeout=5)
    second = requests.get(url(sim, "/api/v2/cases"), auth=ADAPTER, timeout=5)
    third = requests.get(url(sim, "/api/v2/cases"), auth=ADAPTER, timeout=5)
    assert (first.status_code, second.status_code, third.status_code) == (status, status, 200)
    assert first.headers["Retry-After"] == "1"


def test_delay_fault_makes_a_client_time_out(sim: PrimeroSimulator) -> None:
    requests.post(
        url(sim, "/_sim/faults"),
        json={"delay_seconds": 0.6, "count": 1, "path_prefix": "/api/v2/cases"},
        timeout=5,
    )
    with pytest.raises(requests.Timeout):
        requests.get(url(sim, "/api/v2/cases"), auth=ADAPTER, timeout=0.2)
    assert requests.get(url(sim, "/api/v2/cases"), auth=ADAPTER, timeout=5).status_code == 200


def test_unknown_route_is_a_primero_404(sim: PrimeroSimulator) -> None:
    response = requests.get(url(sim, "/api/v2/nothing-here"), auth=ADAPTER, timeout=5)
    assert response.status_code == 404
    assert response.json()["errors"][0]["resource"] == "/api/v2/nothing-here"


def test_stats_count_requests_by_route(sim: PrimeroSimulator) -> None:
    requests.get(url(sim, "/api/v2/lookups"), auth=ADAPTER, timeout=5)
    stats = requests.get(url(sim, "/_sim/stats"), timeout=5).json()["requests"]
    assert stats["GET /api/v2/lookups"] >= 1
    assert stats["GET /api/v2/cases"] >= 1
