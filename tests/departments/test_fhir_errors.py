"""The health connector's error taxonomy and HTTP manners, with ``responses`` standing in for
the answers a real server rarely gives on demand (429, 503 + Retry-After, timeouts)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from urllib.parse import parse_qs, urlsplit

import pytest
import requests
import responses

from adapter.departments import FhirClient, Rejected
from adapter.departments._http import parse_retry_after
from adapter.errors import ConfigError, Fatal, RateLimited, Retryable
from tests.support.servers import free_port

BASE = "https://fhir.example.org/fhir"
SECRET_DATA = "Ayesha Bibi, Peshawar"  # what a server's diagnostics might echo back
BUNDLE = {
    "resourceType": "Bundle",
    "type": "transaction",
    "entry": [
        {
            "fullUrl": "urn:uuid:6f0ba9c5-3c5a-4ffb-8a33-5b7a4fb0a0a1",
            "resource": {"resourceType": "Basic", "code": {"text": "x"}},
            "request": {"method": "POST", "url": "Basic"},
        }
    ],
}
ANSWER = {
    "resourceType": "Bundle",
    "type": "transaction-response",
    "entry": [{"response": {"status": "201 Created", "location": "Basic/b1/_history/1"}}],
}


@pytest.fixture
def mocked() -> Iterator[responses.RequestsMock]:
    with responses.RequestsMock() as mock:
        yield mock


@pytest.fixture
def client() -> Iterator[FhirClient]:
    with FhirClient(BASE, bearer_token="tok-123", timeout=(3.0, 7.0)) as fhir:
        yield fhir


def _outcome(*codes: str) -> dict[str, object]:
    return {
        "resourceType": "OperationOutcome",
        "issue": [
            {"severity": "error", "code": c, "diagnostics": f"bad value '{SECRET_DATA}'"}
            for c in codes
        ],
    }


def test_a_transaction_is_sent_with_explicit_fhir_headers(
    mocked: responses.RequestsMock, client: FhirClient
) -> None:
    mocked.post(BASE, json=ANSWER, status=200)
    result = client.send_transaction(BUNDLE)

    request = mocked.calls[0].request
    assert request.headers["Content-Type"] == "application/fhir+json"
    assert request.headers["Accept"] == "application/fhir+json"
    assert request.headers["Prefer"] == "return=representation"
    assert request.headers["Authorization"] == "Bearer tok-123"
    assert request.req_kwargs["timeout"] == (3.0, 7.0)
    assert request.req_kwargs["verify"] is not False
    assert result.entries[0].resource_type == "Basic"
    assert (result.entries[0].id, result.entries[0].version, result.created) == (
        "b1",
        "1",
        ("Basic",),
    )


@pytest.mark.parametrize("header", ["7", "in-http-date"])
def test_429_is_rate_limited_with_retry_after(
    mocked: responses.RequestsMock, client: FhirClient, header: str
) -> None:
    if header == "in-http-date":
        header = format_datetime(datetime.now(UTC) + timedelta(seconds=60), usegmt=True)
    mocked.post(BASE, status=429, headers={"Retry-After": header})
    with pytest.raises(RateLimited) as caught:
        client.send_transaction(BUNDLE)
    assert caught.value.retry_after is not None
    assert 0 < caught.value.retry_after <= 60


def test_429_without_retry_after_is_still_rate_limited(
    mocked: responses.RequestsMock, client: FhirClient
) -> None:
    mocked.get(f"{BASE}/Task", status=429)
    with pytest.raises(RateLimited) as caught:
        list(client.search_tasks_updated(None))
    assert caught.value.retry_after is None


def test_503_with_retry_after_is_rate_limited_and_without_it_retryable(
    mocked: responses.RequestsMock, client: FhirClient
) -> None:
    mocked.post(BASE, status=503, headers={"Retry-After": "120"})
    mocked.post(BASE, status=503)
    with pytest.raises(RateLimited) as limited:
        client.send_transaction(BUNDLE)
    assert limited.value.retry_after == 120.0
    with pytest.raises(Retryable) as plain:
        client.send_transaction(BUNDLE)
    assert not isinstance(plain.value, RateLimited)


@pytest.mark.parametrize("status", [408, 500, 502, 504])
def test_server_failures_are_retryable(
    mocked: responses.RequestsMock, client: FhirClient, status: int
) -> None:
    mocked.post(BASE, status=status, json=_outcome("exception"))
    with pytest.raises(Retryable) as caught:
        client.send_transaction(BUNDLE)
    assert SECRET_DATA not in str(caught.value)


@pytest.mark.parametrize("status", [400, 404, 409, 412, 422])
def test_refusals_are_fatal_with_issue_codes_only(
    mocked: responses.RequestsMock, client: FhirClient, status: int
) -> None:
    mocked.post(BASE, status=status, json=_outcome("invalid", "invalid", "multiple-matches"))
    with pytest.raises(Rejected) as caught:
        client.send_transaction(BUNDLE)
    error = caught.value
    assert isinstance(error, Fatal) and not isinstance(error, Retryable)
    assert (error.status, error.resource, error.reasons) == (
        status,
        "Bundle",
        ("invalid", "multiple-matches"),
    )
    assert SECRET_DATA not in str(error) and "Peshawar" not in repr(error.args)


def test_issue_codes_that_are_not_codes_are_dropped(
    mocked: responses.RequestsMock, client: FhirClient
) -> None:
    outcome = {
        "resourceType": "OperationOutcome",
        "issue": [
            {"severity": "error", "code": SECRET_DATA},
            {"severity": "error", "code": "value"},
        ],
    }
    mocked.post(BASE, status=400, json=outcome)
    with pytest.raises(Rejected) as caught:
        client.send_transaction(BUNDLE)
    assert caught.value.reasons == ("value",)
    assert SECRET_DATA not in str(caught.value)


def test_unauthorised_is_fatal_with_a_hint(
    mocked: responses.RequestsMock, client: FhirClient
) -> None:
    mocked.post(BASE, status=401, json=_outcome("login"))
    with pytest.raises(Rejected, match="credentials"):
        client.send_transaction(BUNDLE)


def test_redirects_are_not_followed(mocked: responses.RequestsMock, client: FhirClient) -> None:
    mocked.post(BASE, status=307, headers={"Location": "https://elsewhere.example.com/fhir"})
    with pytest.raises(Rejected, match="redirect"):
        client.send_transaction(BUNDLE)
    assert len(mocked.calls) == 1


@pytest.mark.parametrize(
    ("failure", "words"),
    [
        (
            requests.exceptions.ConnectTimeout("https://fhir.example.org/fhir?identifier=x"),
            "timeout",
        ),
        (requests.exceptions.ReadTimeout("https://fhir.example.org/fhir?identifier=x"), "timeout"),
        (
            requests.exceptions.ConnectionError("https://fhir.example.org/fhir?identifier=x"),
            "connection",
        ),
        (requests.exceptions.SSLError("certificate verify failed for fhir.example.org"), "TLS"),
    ],
)
def test_no_answer_is_retryable_without_the_query_string(
    mocked: responses.RequestsMock, client: FhirClient, failure: Exception, words: str
) -> None:
    mocked.post(BASE, body=failure)
    with pytest.raises(Retryable, match=words) as caught:
        client.send_transaction(BUNDLE)
    assert "identifier" not in str(caught.value) and "/fhir?" not in str(caught.value)


def test_a_refused_connection_names_the_server_tried() -> None:
    port = free_port()
    client = FhirClient(f"http://user:secret@127.0.0.1:{port}/fhir", timeout=(2.0, 2.0))
    with pytest.raises(Retryable) as caught:
        client.send_transaction(BUNDLE)
    message = str(caught.value)
    assert f"connection refused (nothing listens on that port) at http://127.0.0.1:{port}" in (
        message
    )
    assert "secret" not in message and "base_url" in message


def test_an_answer_that_is_not_a_transaction_response_is_fatal(
    mocked: responses.RequestsMock, client: FhirClient
) -> None:
    mocked.post(BASE, status=200, body="<html>login page</html>", content_type="text/html")
    with pytest.raises(Fatal, match="transaction-response"):
        client.send_transaction(BUNDLE)


def test_the_task_search_asks_for_our_tasks_since_the_watermark_minus_overlap(
    mocked: responses.RequestsMock, client: FhirClient
) -> None:
    mocked.get(f"{BASE}/Task", json={"resourceType": "Bundle", "type": "searchset", "entry": []})
    since = datetime(2026, 3, 1, 10, 0, 0, 250_000, tzinfo=UTC)
    assert list(client.search_tasks_updated(since, count=50, overlap=timedelta(seconds=5))) == []
    query = parse_qs(urlsplit(mocked.calls[0].request.url or "").query)
    assert query == {
        "identifier": ["urn:cpims-adapter:referral|"],
        "_lastUpdated": ["ge2026-03-01T09:59:55.250Z"],
        "_sort": ["_lastUpdated"],
        "_count": ["50"],
    }


def _task(key: str, stamp: str) -> dict[str, object]:
    return {
        "fullUrl": f"{BASE}/Task/{key}",
        "search": {"mode": "match"},
        "resource": {
            "resourceType": "Task",
            "id": key,
            "status": "requested",
            "intent": "order",
            "meta": {"versionId": "1", "lastUpdated": stamp},
            "identifier": [{"system": "urn:cpims-adapter:referral", "value": key}],
        },
    }


def test_a_next_link_to_another_origin_is_refused(
    mocked: responses.RequestsMock, client: FhirClient
) -> None:
    stamp = "2026-03-01T10:00:00.000Z"
    page = {
        "resourceType": "Bundle",
        "type": "searchset",
        "entry": [_task("a", stamp), _task("b", stamp)],
        "link": [{"relation": "next", "url": "https://evil.example.net/fhir/Task?page=2"}],
    }
    mocked.get(f"{BASE}/Task", json=page)
    since = datetime(2026, 3, 1, 10, 0, tzinfo=UTC)
    with pytest.raises(Fatal, match="link"):
        list(client.search_tasks_updated(since, count=2, overlap=timedelta(0)))
    assert all("evil" not in (c.request.url or "") for c in mocked.calls)


def test_a_full_page_of_one_timestamp_follows_the_next_link(
    mocked: responses.RequestsMock, client: FhirClient
) -> None:
    stamp = "2026-03-01T10:00:00.000Z"
    first = {
        "resourceType": "Bundle",
        "type": "searchset",
        "entry": [_task("a", stamp), _task("b", stamp)],
        "link": [{"relation": "next", "url": f"{BASE}/Task?_offset=2"}],
    }
    second = {"resourceType": "Bundle", "type": "searchset", "entry": [_task("c", stamp)]}
    mocked.get(f"{BASE}/Task?_offset=2", json=second)
    mocked.get(f"{BASE}/Task", json=first)
    since = datetime(2026, 3, 1, 10, 0, tzinfo=UTC)
    keys = [
        u.referral_key for u in client.search_tasks_updated(since, count=2, overlap=timedelta(0))
    ]
    assert keys == ["a", "b", "c"]


def test_two_tasks_for_one_referral_are_reported(
    mocked: responses.RequestsMock, client: FhirClient
) -> None:
    stamp = "2026-03-01T10:00:00.000Z"
    mocked.get(
        f"{BASE}/Task",
        json={
            "resourceType": "Bundle",
            "type": "searchset",
            "entry": [_task("a", stamp), _task("a2", stamp)],
        },
    )
    with pytest.raises(Fatal, match="more than one Task"):
        client.get_task_by_referral("a")


@pytest.mark.parametrize(
    ("base_url", "auth"),
    [
        ("fhir.example.org/fhir", {}),
        ("ftp://x/fhir", {}),
        (f"{BASE}?x=1", {}),
        (BASE, {"bearer_token": "t", "basic_auth": ("u", "p")}),
    ],
)
def test_bad_configuration_is_a_config_error(base_url: str, auth: dict[str, object]) -> None:
    with pytest.raises(ConfigError):
        FhirClient(base_url, **auth)  # type: ignore[arg-type]


def test_parse_retry_after() -> None:
    now = datetime(2026, 3, 1, 10, 0, tzinfo=UTC)
    assert parse_retry_after("30", now) == 30.0
    assert parse_retry_after("Sun, 01 Mar 2026 10:01:00 GMT", now) == 60.0
    assert parse_retry_after("Sun, 01 Mar 2026 09:00:00 GMT", now) == 0.0
    assert parse_retry_after("soon", now) is None
    assert parse_retry_after(None, now) is None
    assert parse_retry_after("-5", now) is None


def test_a_page_the_server_did_not_sort_follows_the_next_link(
    mocked: responses.RequestsMock, client: FhirClient
) -> None:
    first = {
        "resourceType": "Bundle",
        "type": "searchset",
        "entry": [_task("b", "2026-03-01T10:00:05.000Z"), _task("a", "2026-03-01T10:00:01.000Z")],
        "link": [{"relation": "next", "url": f"{BASE}/Task?_offset=2"}],
    }
    second = {
        "resourceType": "Bundle",
        "type": "searchset",
        "entry": [_task("c", "2026-03-01T10:00:03.000Z")],
    }
    mocked.get(f"{BASE}/Task?_offset=2", json=second)
    mocked.get(f"{BASE}/Task", json=first)
    keys = [u.referral_key for u in client.search_tasks_updated(None, count=2)]
    assert keys == ["b", "a", "c"]
