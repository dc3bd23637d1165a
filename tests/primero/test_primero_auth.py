"""Authentication modes, and the lock-out safety: a wrong password costs one attempt, ever."""

from __future__ import annotations

import base64
import json
from collections.abc import Callable
from typing import Any

import pytest
import responses
from requests import PreparedRequest

from adapter.errors import PrimeroAuthError, PrimeroLockedOut, PrimeroRateLimited
from adapter.primero import PrimeroClient

Make = Callable[..., PrimeroClient]
BASE = "https://primero.test"
CASE_ID = "6f1c2b9e-3a4d-4e5f-8a9b-0c1d2e3f4a5b"
CASE_URL = f"{BASE}/api/v2/cases/{CASE_ID}"
TOKENS = f"{BASE}/api/v2/tokens"
PRIMER = f"{BASE}/health/server"
DEVISE_401 = {"error": "Invalid User name or password."}
WWW = {"WWW-Authenticate": 'Bearer realm="Primero" charset="UTF8"'}
LOGIN_BODY = {"id": 17, "user_name": "svc-adapter", "group_permission": "all"}


def test_basic_auth_goes_on_every_request_and_never_signs_in(
    mocked: responses.RequestsMock, make_client: Make
) -> None:
    mocked.get(CASE_URL, json={"data": {"id": CASE_ID}})
    mocked.patch(CASE_URL, json={"data": {"id": CASE_ID, "age": 12}})

    client = make_client()
    client.get_case(CASE_ID)
    client.update_case(CASE_ID, {"age": 12})

    expected = "Basic " + base64.b64encode(b"svc-adapter:correct horse").decode()
    assert [call.request.headers["Authorization"] for call in mocked.calls] == [expected] * 2
    assert all("X-CSRF-Token" not in call.request.headers for call in mocked.calls)
    assert not any("/tokens" in str(call.request.url) for call in mocked.calls)


def test_a_wrong_password_costs_exactly_one_request_for_the_clients_lifetime(
    mocked: responses.RequestsMock, make_client: Make, sleeps: list[float]
) -> None:
    mocked.get(CASE_URL, status=401, json=DEVISE_401, headers=WWW)
    client = make_client(max_retries=5)

    with pytest.raises(PrimeroAuthError) as caught:
        client.get_case(CASE_ID)
    message = str(caught.value)
    assert "CPIMS_ADAPTER_PRIMERO__PASSWORD" in message
    assert "six failed attempts" in message and "30 minutes" in message
    assert "No further attempt" in message
    assert caught.value.status == 401

    for later in (
        lambda: client.get_case(CASE_ID),
        lambda: client.list_cases({"per": 1}),
        lambda: client.create_referral(CASE_ID, transitioned_to="u2"),
        lambda: client.system_settings(),
    ):
        with pytest.raises(PrimeroAuthError, match="not sent"):
            later()

    assert len(mocked.calls) == 1
    assert sleeps == []


def test_a_locked_account_is_reported_as_such(
    mocked: responses.RequestsMock, make_client: Make
) -> None:
    mocked.get(CASE_URL, status=401, json={"error": "Your account is locked."}, headers=WWW)
    client = make_client()

    with pytest.raises(PrimeroLockedOut, match="Wait 30 minutes"):
        client.get_case(CASE_ID)
    with pytest.raises(PrimeroLockedOut):
        client.get_case(CASE_ID)

    assert len(mocked.calls) == 1


# --- session mode ---------------------------------------------------------------------------


class FakeSessions:
    """Primero's cookie session: a primer sets CSRF-TOKEN, sign-in rotates it (Devise)."""

    def __init__(self, mocked: responses.RequestsMock, login_status: int = 200) -> None:
        self.tokens_issued = 0
        self.logins: list[dict[str, Any]] = []
        self.login_csrf: list[str | None] = []
        self.login_status = login_status
        mocked.add_callback(responses.GET, PRIMER, callback=self.primer)
        mocked.add_callback(responses.POST, TOKENS, callback=self.login)
        mocked.add_callback(responses.DELETE, TOKENS, callback=lambda _: (200, {}, "{}"))

    def primer(self, request: PreparedRequest) -> tuple[int, Any, str]:
        self.tokens_issued += 1
        # URL-encoded like Rails does; the client must decode it (get-csrf-token.js).
        cookie = f"CSRF-TOKEN=tok%2B{self.tokens_issued}%3D; path=/; secure"
        return 204, [("Set-Cookie", cookie)], ""

    def login(self, request: PreparedRequest) -> tuple[int, Any, str]:
        self.logins.append(json.loads(request.body or b"{}"))
        self.login_csrf.append(request.headers.get("X-CSRF-Token"))
        if self.login_status != 200:
            return self.login_status, {"Retry-After": "60"}, json.dumps(DEVISE_401)
        cookie = f"_app_session=s{len(self.logins)}; path=/; HttpOnly"
        return 200, [("Set-Cookie", cookie)], json.dumps(LOGIN_BODY)


def test_session_signs_in_with_csrf_and_sends_the_rotated_token_on_writes(
    mocked: responses.RequestsMock, make_client: Make
) -> None:
    sessions = FakeSessions(mocked)
    mocked.get(CASE_URL, json={"data": {"id": CASE_ID}})
    mocked.patch(CASE_URL, json={"data": {"id": CASE_ID, "age": 12}})

    client = make_client(auth="session")
    client.get_case(CASE_ID)
    client.update_case(CASE_ID, {"age": 12})

    assert sessions.logins == [{"user": {"user_name": "svc-adapter", "password": "correct horse"}}]
    assert sessions.login_csrf == ["tok+1="]
    get, patch = (call.request for call in mocked.calls if "/cases/" in str(call.request.url))
    assert "X-CSRF-Token" not in get.headers
    assert patch.headers["X-CSRF-Token"] == "tok+2="  # the token after Devise's rotation
    assert "_app_session=s1" in patch.headers["Cookie"]
    assert "Authorization" not in patch.headers


def test_an_expired_session_signs_in_again_once_and_resends(
    mocked: responses.RequestsMock, make_client: Make
) -> None:
    sessions = FakeSessions(mocked)
    mocked.get(CASE_URL, json={"data": {"id": CASE_ID}})
    expired = {"error": "Your session expired. Please sign in again to continue."}
    mocked.get(CASE_URL, status=401, json=expired, headers=WWW)
    mocked.get(CASE_URL, json={"data": {"id": CASE_ID}})

    client = make_client(auth="session")
    client.get_case(CASE_ID)
    client.get_case(CASE_ID)

    assert len(sessions.logins) == 2


def test_a_session_refused_right_after_signing_in_again_stops_everything(
    mocked: responses.RequestsMock, make_client: Make
) -> None:
    sessions = FakeSessions(mocked)
    mocked.get(CASE_URL, status=401, json=DEVISE_401, headers=WWW)

    client = make_client(auth="session")
    with pytest.raises(PrimeroAuthError):
        client.get_case(CASE_ID)
    calls = len(mocked.calls)
    with pytest.raises(PrimeroAuthError, match="not sent"):
        client.get_case(CASE_ID)

    assert len(sessions.logins) == 2  # the first sign-in, then ONE more after the 401
    assert len(mocked.calls) == calls


def test_a_wrong_password_in_session_mode_is_one_sign_in_attempt(
    mocked: responses.RequestsMock, make_client: Make
) -> None:
    sessions = FakeSessions(mocked, login_status=401)
    client = make_client(auth="session", max_retries=5)

    with pytest.raises(PrimeroAuthError, match="six failed attempts"):
        client.get_case(CASE_ID)
    with pytest.raises(PrimeroAuthError):
        client.get_case(CASE_ID)
    client.close()  # no sign-out for a session that never existed

    assert len(sessions.logins) == 1
    assert not any(call.request.method == "DELETE" for call in mocked.calls)


def test_throttled_sign_in_is_not_retried_nor_repeated(
    mocked: responses.RequestsMock, make_client: Make, sleeps: list[float]
) -> None:
    sessions = FakeSessions(mocked, login_status=429)
    client = make_client(auth="session", max_retries=5)

    with pytest.raises(PrimeroRateLimited) as caught:
        client.get_case(CASE_ID)
    assert caught.value.retry_after == 60
    with pytest.raises(PrimeroRateLimited, match="not sent"):
        client.get_case(CASE_ID)

    assert len(sessions.logins) == 1 and sleeps == []


def test_a_stale_csrf_token_signs_in_again_and_resends_the_write_once(
    mocked: responses.RequestsMock, make_client: Make
) -> None:
    sessions = FakeSessions(mocked)
    csrf = {"errors": [{"status": 403, "message": "Can't verify CSRF token authenticity."}]}
    mocked.post(f"{CASE_URL}/flags", status=403, json=csrf)
    mocked.post(f"{CASE_URL}/flags", json={"data": {"id": 1, "message": "m"}})

    flag = make_client(auth="session").add_flag(CASE_ID, "needs review")

    assert flag["id"] == 1
    assert len(sessions.logins) == 2


def test_close_signs_out_with_the_csrf_token(
    mocked: responses.RequestsMock, make_client: Make
) -> None:
    FakeSessions(mocked)
    mocked.get(CASE_URL, json={"data": {"id": CASE_ID}})

    with make_client(auth="session") as client:
        client.get_case(CASE_ID)

    delete = mocked.calls[-1].request
    assert (delete.method, delete.url) == ("DELETE", TOKENS)
    assert delete.headers["X-CSRF-Token"] == "tok+2="


# --- bearer (identity provider) ---------------------------------------------------------------


def test_bearer_token_is_sent_and_reread_once_on_401(
    mocked: responses.RequestsMock, make_client: Make
) -> None:
    tokens = iter(["jwt-1", "jwt-2"])
    current = {"value": next(tokens)}
    mocked.get(CASE_URL, status=401, json={"error": "expired"}, headers=WWW)
    mocked.get(CASE_URL, json={"data": {"id": CASE_ID}})

    client = make_client(
        auth="bearer", token=lambda: current["value"], username=None, password=None
    )
    current["value"] = next(tokens)  # the sidecar refreshed the token file
    client.get_case(CASE_ID)

    sent = [call.request.headers["Authorization"] for call in mocked.calls]
    assert sent == ["Bearer jwt-1", "Bearer jwt-2"]


def test_an_unchanged_bearer_token_is_not_retried(
    mocked: responses.RequestsMock, make_client: Make
) -> None:
    mocked.get(CASE_URL, status=401, json={"error": "expired"}, headers=WWW)
    client = make_client(auth="bearer", token="jwt-1", username=None, password=None)

    with pytest.raises(PrimeroAuthError, match="CPIMS_ADAPTER_PRIMERO__TOKEN"):
        client.get_case(CASE_ID)
    with pytest.raises(PrimeroAuthError):
        client.get_case(CASE_ID)

    assert len(mocked.calls) == 1
