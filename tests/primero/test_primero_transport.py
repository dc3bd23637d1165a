"""Retries, backoff, Retry-After, timeouts and what reaches logs and exceptions."""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import pytest
import requests
import responses
from urllib3.exceptions import MaxRetryError, NewConnectionError

from adapter.errors import (
    ConfigError,
    PrimeroError,
    PrimeroProtocolError,
    PrimeroRateLimited,
    PrimeroTimeout,
    PrimeroUnavailable,
)
from adapter.primero import PrimeroClient

Make = Callable[..., PrimeroClient]
BASE = "https://primero.test"
CASE_ID = "6f1c2b9e-3a4d-4e5f-8a9b-0c1d2e3f4a5b"
CASE_URL = f"{BASE}/api/v2/cases/{CASE_ID}"
REFERRALS_URL = f"{CASE_URL}/referrals"
OK = {"data": {"id": CASE_ID}}
REFERRAL = {"data": {"id": "749e9c6e-1111-4222-8333-944455556666", "status": "in_progress"}}


def refused() -> requests.exceptions.ConnectionError:
    """What requests raises when nothing listens on the port: the request never left."""
    reason = NewConnectionError(None, "Failed to establish a new connection: [Errno 111]")  # type: ignore[arg-type]
    return requests.exceptions.ConnectionError(MaxRetryError(None, "/", reason))  # type: ignore[arg-type]


def test_get_is_retried_on_5xx_with_full_jitter_backoff(
    mocked: responses.RequestsMock, make_client: Make, sleeps: list[float]
) -> None:
    mocked.get(CASE_URL, status=502)
    mocked.get(CASE_URL, status=500, json={"errors": [{"status": 500, "message": "boom"}]})
    mocked.get(CASE_URL, json=OK)

    assert make_client(backoff_seconds=1.0).get_case(CASE_ID) == {"id": CASE_ID}

    assert len(mocked.calls) == 3
    assert len(sleeps) == 2
    assert 0 <= sleeps[0] <= 1.0 and 0 <= sleeps[1] <= 2.0  # full jitter under 1 s, then 2 s


def test_5xx_after_the_retries_raises_unavailable_without_the_body(
    mocked: responses.RequestsMock, make_client: Make, sleeps: list[float]
) -> None:
    body = {"errors": [{"status": 500, "message": "PG::Error value 'Ayesha Khan' too long"}]}
    mocked.get(CASE_URL, status=500, json=body)

    with pytest.raises(PrimeroUnavailable) as caught:
        make_client(max_retries=2).get_case(CASE_ID)

    assert len(mocked.calls) == 3
    assert len(sleeps) == 2
    error = caught.value
    assert (error.status, error.method, error.resource) == (500, "GET", f"/api/v2/cases/{CASE_ID}")
    assert "Ayesha" not in str(error)


def test_retry_after_seconds_on_503_is_waited_exactly(
    mocked: responses.RequestsMock, make_client: Make, sleeps: list[float]
) -> None:
    mocked.get(CASE_URL, status=503, headers={"Retry-After": "7"})
    mocked.get(CASE_URL, json=OK)

    make_client().get_case(CASE_ID)

    assert sleeps == [7.0]


def test_retry_after_http_date_is_converted_to_seconds(
    mocked: responses.RequestsMock, make_client: Make, sleeps: list[float]
) -> None:
    when = datetime.now(UTC) + timedelta(seconds=30)
    mocked.get(CASE_URL, status=503, headers={"Retry-After": format_datetime(when, usegmt=True)})
    mocked.get(CASE_URL, json=OK)

    make_client().get_case(CASE_ID)

    assert len(sleeps) == 1 and 27 <= sleeps[0] <= 30


def test_retry_after_beyond_the_cap_is_not_waited_but_reported(
    mocked: responses.RequestsMock, make_client: Make, sleeps: list[float]
) -> None:
    mocked.get(CASE_URL, status=503, headers={"Retry-After": "3600"})

    with pytest.raises(PrimeroUnavailable) as caught:
        make_client(max_retry_after_seconds=60).get_case(CASE_ID)

    assert len(mocked.calls) == 1 and sleeps == []
    assert caught.value.retry_after == 3600


def test_429_on_a_read_is_retried_after_retry_after_then_raised(
    mocked: responses.RequestsMock, make_client: Make, sleeps: list[float]
) -> None:
    mocked.get(CASE_URL, status=429, headers={"Retry-After": "3"})

    with pytest.raises(PrimeroRateLimited) as caught:
        make_client(max_retries=1).get_case(CASE_ID)

    assert sleeps == [3.0] and len(mocked.calls) == 2
    assert caught.value.retry_after == 3


def test_read_timeouts_on_a_get_are_retried_then_raise_timeout(
    mocked: responses.RequestsMock, make_client: Make, sleeps: list[float]
) -> None:
    mocked.get(CASE_URL, body=requests.exceptions.ReadTimeout("read timed out"))

    with pytest.raises(PrimeroTimeout) as caught:
        make_client(max_retries=3).get_case(CASE_ID)

    assert len(mocked.calls) == 4 and len(sleeps) == 3
    assert caught.value.__cause__ is None and caught.value.__suppress_context__


def test_a_referral_is_not_resent_after_a_read_timeout(
    mocked: responses.RequestsMock, make_client: Make
) -> None:
    mocked.post(REFERRALS_URL, body=requests.exceptions.ReadTimeout("read timed out"))

    with pytest.raises(PrimeroTimeout, match="check in Primero"):
        make_client().create_referral(CASE_ID, transitioned_to="health_officer1")

    assert len(mocked.calls) == 1


def test_a_referral_is_resent_when_the_connection_was_refused(
    mocked: responses.RequestsMock, make_client: Make
) -> None:
    mocked.post(REFERRALS_URL, body=refused())
    mocked.post(REFERRALS_URL, json=REFERRAL)

    referral = make_client().create_referral(CASE_ID, transitioned_to="health_officer1")

    assert referral["status"] == "in_progress"
    assert len(mocked.calls) == 2


def test_a_referral_is_not_resent_after_a_500(
    mocked: responses.RequestsMock, make_client: Make
) -> None:
    mocked.post(REFERRALS_URL, status=500)

    with pytest.raises(PrimeroUnavailable):
        make_client().create_referral(CASE_ID, transitioned_to="health_officer1")

    assert len(mocked.calls) == 1


def test_a_referral_is_resent_after_primeros_configuration_lock(
    mocked: responses.RequestsMock, make_client: Make, sleeps: list[float]
) -> None:
    # 503 + Retry-After is raised in a before_action: the referral was not processed.
    mocked.post(REFERRALS_URL, status=503, headers={"Retry-After": "60"})
    mocked.post(REFERRALS_URL, json=REFERRAL)

    make_client().create_referral(CASE_ID, transitioned_to="health_officer1")

    assert sleeps == [60.0]


def test_malformed_json_is_a_protocol_error(
    mocked: responses.RequestsMock, make_client: Make
) -> None:
    mocked.get(CASE_URL, body="<html>Sign in</html>", content_type="text/html")

    with pytest.raises(PrimeroProtocolError, match="not valid JSON"):
        make_client().get_case(CASE_ID)


def test_a_body_without_data_is_a_protocol_error(
    mocked: responses.RequestsMock, make_client: Make
) -> None:
    mocked.get(CASE_URL, json={"id": CASE_ID})

    with pytest.raises(PrimeroProtocolError, match="no `data`"):
        make_client().get_case(CASE_ID)


def test_a_redirect_is_not_followed(mocked: responses.RequestsMock, make_client: Make) -> None:
    mocked.get(CASE_URL, status=302, headers={"Location": "https://elsewhere.test/login"})

    with pytest.raises(PrimeroProtocolError, match="redirected"):
        make_client().get_case(CASE_ID)

    assert len(mocked.calls) == 1


def test_tls_failure_is_not_retried_and_says_what_to_set(
    mocked: responses.RequestsMock, make_client: Make
) -> None:
    mocked.get(CASE_URL, body=requests.exceptions.SSLError("certificate verify failed"))

    with pytest.raises(PrimeroError, match="ca_bundle") as caught:
        make_client().get_case(CASE_ID)

    assert not isinstance(caught.value, PrimeroTimeout)
    assert len(mocked.calls) == 1


def test_query_strings_reach_neither_exceptions_nor_logs(
    mocked: responses.RequestsMock, make_client: Make, caplog: pytest.LogCaptureFixture
) -> None:
    mocked.get(f"{BASE}/api/v2/cases", status=500)
    caplog.set_level(logging.DEBUG, logger="adapter.primero")

    with pytest.raises(PrimeroUnavailable) as caught:
        make_client(max_retries=1).list_cases({"query": "Ayesha Khan", "id_search": True})

    assert caught.value.resource == "/api/v2/cases"
    for text in (str(caught.value), caplog.text):
        assert "Ayesha" not in text and "query" not in text and "?" not in text


def test_each_call_is_logged_with_method_path_status_duration_and_attempt(
    mocked: responses.RequestsMock, make_client: Make, caplog: pytest.LogCaptureFixture
) -> None:
    mocked.get(CASE_URL, status=502)
    mocked.get(CASE_URL, json={"data": {"id": CASE_ID, "name": "Ayesha Khan"}})
    caplog.set_level(logging.DEBUG, logger="adapter.primero")

    make_client().get_case(CASE_ID)

    messages = [record.getMessage() for record in caplog.records]
    assert len(messages) == 2
    # The route, not the record: a case id never reaches a log line.
    assert messages[0].startswith("primero GET /api/v2/cases/:id -> 502 in ")
    assert CASE_ID not in caplog.text
    assert "attempt 1, retrying" in messages[0]
    assert " -> 200 in " in messages[1] and messages[1].endswith("attempt 2")
    assert "Ayesha" not in caplog.text


def test_every_request_has_timeouts_tls_verification_and_user_agent(
    mocked: responses.RequestsMock, make_client: Make
) -> None:
    mocked.get(CASE_URL, json=OK)

    make_client(timeout_seconds=12, connect_timeout_seconds=3, ca_bundle="/etc/ca.pem").get_case(
        CASE_ID
    )

    call = mocked.calls[0]
    assert call.request.req_kwargs["timeout"] == (3, 12)
    assert call.request.req_kwargs["verify"] == "/etc/ca.pem"
    assert call.request.headers["User-Agent"].startswith("cpims-adapter/")


def test_plain_http_is_refused_except_on_loopback() -> None:
    with pytest.raises(ConfigError, match="https"):
        PrimeroClient("http://primero.example.org", username="u", password="p")
    assert PrimeroClient("http://127.0.0.1:3000/", username="u", password="p").base_url == (
        "http://127.0.0.1:3000"
    )
