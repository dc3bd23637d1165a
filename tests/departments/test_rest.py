"""The REST connector's contract, against recorded answers (``responses``): idempotency keys on
every write, the four kinds of authentication, OAuth2 renewal, and the error taxonomy."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

import pytest
import requests
import responses
from pydantic import SecretStr
from responses import matchers

from adapter.app.departments import load_mapping
from adapter.config import DepartmentSettings
from adapter.departments import Rejected
from adapter.departments.rest import OAuth2ClientCredentials, RestConnector
from adapter.errors import ConfigError, Fatal, MappingError, RateLimited, Retryable
from adapter.mappings.mapped import MappedMapping

ROOT = Path(__file__).resolve().parents[2]
BASE = "https://police.example.test"
TOKEN_URL = "https://auth.example.test/oauth/token"
POLICE = load_mapping(ROOT / "config" / "mappings" / "police.toml", "police")
KEY = "ref-6b1f1c8e-0000-4000-8000-000000000001"


def document(route: str = "default", **json_body: Any) -> dict[str, Any]:
    return {"referral_key": KEY, "route": route, "json": json_body or {"referral_key": KEY}}


@pytest.fixture
def mocked() -> Iterator[responses.RequestsMock]:
    with responses.RequestsMock() as rsps:
        yield rsps


def connector(**settings: Any) -> RestConnector:
    config = DepartmentSettings(connector="rest", base_url=BASE, two_stage=False, **settings)
    return RestConnector.from_settings("police", config, POLICE)


def oauth2() -> RestConnector:
    return connector(
        auth="oauth2",
        token_url=TOKEN_URL,
        client_id="adapter",
        client_secret=SecretStr("s3cret"),
        scope="referrals",
    )


def token_answer(mocked: responses.RequestsMock, token: str, expires_in: int = 3600) -> None:
    mocked.post(
        TOKEN_URL, json={"access_token": token, "token_type": "Bearer", "expires_in": expires_in}
    )


# --- delivery ----------------------------------------------------------------------------------


def test_every_write_carries_the_idempotency_key(mocked: responses.RequestsMock) -> None:
    quoted = KEY  # a UUID-based key needs no escaping
    mocked.post(f"{BASE}/api/v1/referrals", json={"referral_id": "PR-000001"}, status=201)
    mocked.put(f"{BASE}/api/v1/referrals/{quoted}", json={"referral_id": "PR-000001"})
    mocked.post(f"{BASE}/api/v1/referrals/{quoted}/cancel", json={"status": "cancelled"})
    mocked.post(f"{BASE}/api/v1/referrals/{quoted}/erase", json={"status": "erased"})
    mocked.post(f"{BASE}/api/v1/juvenile-referrals", json={"referral_id": "JR-000001"})
    police = connector()
    delivered = [
        police.deliver("referral", document(child={"sex": "F"}), idempotency_key="k-1"),
        police.deliver("update", document(), idempotency_key="k-2"),
        police.deliver("cancel", document(reason="referral-revoked"), idempotency_key="k-3"),
        police.deliver("withdraw", document(), idempotency_key="k-4"),
        police.deliver("referral", document("juvenile_in_conflict"), idempotency_key="k-5"),
    ]
    assert [d.external_ref for d in delivered] == ["PR-000001", None, None, None, "JR-000001"]
    sent = [call.request for call in mocked.calls]
    assert [r.headers["Idempotency-Key"] for r in sent] == ["k-1", "k-2", "k-3", "k-4", "k-5"]
    assert [r.method for r in sent] == ["POST", "PUT", "POST", "POST", "POST"]
    assert json.loads(sent[0].body or b"") == {"child": {"sex": "F"}}
    assert all(r.headers["Content-Type"] == "application/json" for r in sent)


def test_the_idempotency_header_is_named_by_the_mapping(
    mocked: responses.RequestsMock, tmp_path: Path
) -> None:
    text = (ROOT / "config" / "mappings" / "police.toml").read_text(encoding="utf-8")
    path = tmp_path / "police.toml"
    path.write_text(text.replace('"Idempotency-Key"', '"X-Request-Id"'), encoding="utf-8")
    mapping = load_mapping(path, "police")
    mocked.post(
        f"{BASE}/api/v1/referrals",
        json={},
        match=[matchers.header_matcher({"X-Request-Id": "k-9"})],
    )
    RestConnector("police", BASE, mapping).deliver("referral", document(), idempotency_key="k-9")


def test_a_write_without_an_idempotency_key_is_refused_before_sending(
    mocked: responses.RequestsMock,
) -> None:
    with pytest.raises(Fatal, match="needs an idempotency key"):
        connector().deliver("referral", document(), idempotency_key="")
    assert not mocked.calls


def test_a_route_the_mapping_no_longer_has_is_a_mapping_error() -> None:
    with pytest.raises(MappingError):
        connector().deliver("referral", document("gone"), idempotency_key="k")


# --- authentication ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("settings", "header", "value"),
    [
        ({"auth": "api_key", "api_key": SecretStr("k3y")}, "X-API-Key", "k3y"),
        (
            {"auth": "api_key", "api_key": SecretStr("k3y"), "api_key_header": "Api-Key"},
            "Api-Key",
            "k3y",
        ),
        ({"auth": "bearer", "token": SecretStr("t0k")}, "Authorization", "Bearer t0k"),
        (
            {"auth": "basic", "username": "adapter", "password": SecretStr("pw")},
            "Authorization",
            "Basic YWRhcHRlcjpwdw==",
        ),
    ],
)
def test_static_credentials(
    mocked: responses.RequestsMock, settings: dict[str, Any], header: str, value: str
) -> None:
    mocked.post(
        f"{BASE}/api/v1/referrals", json={}, match=[matchers.header_matcher({header: value})]
    )
    connector(**settings).deliver("referral", document(), idempotency_key="k")


def test_missing_secrets_are_configuration_errors() -> None:
    with pytest.raises(ConfigError, match=r"departments.police.auth = 'api_key' needs"):
        connector(auth="api_key")
    with pytest.raises(ConfigError, match=r"needs departments.police.username"):
        connector(auth="basic", password=SecretStr("pw"))


def test_oauth2_fetches_one_token_and_reuses_it(mocked: responses.RequestsMock) -> None:
    token_answer(mocked, "tok-1")
    mocked.post(
        f"{BASE}/api/v1/referrals",
        json={},
        match=[matchers.header_matcher({"Authorization": "Bearer tok-1"})],
    )
    police = oauth2()
    for n in range(3):
        police.deliver("referral", document(), idempotency_key=f"k-{n}")
    token_calls = [c for c in mocked.calls if c.request.url == TOKEN_URL]
    assert len(token_calls) == 1
    request = token_calls[0].request
    assert request.headers["Authorization"] == "Basic YWRhcHRlcjpzM2NyZXQ="
    body = request.body if isinstance(request.body, bytes) else str(request.body).encode()
    assert parse_qs(body.decode()) == {
        "grant_type": ["client_credentials"],
        "scope": ["referrals"],
    }


def test_oauth2_renews_the_token_once_after_a_401(mocked: responses.RequestsMock) -> None:
    token_answer(mocked, "revoked")
    token_answer(mocked, "fresh")
    mocked.post(f"{BASE}/api/v1/referrals", status=401)
    mocked.post(f"{BASE}/api/v1/referrals", json={"referral_id": "PR-1"}, status=201)
    delivered = oauth2().deliver("referral", document(), idempotency_key="k")
    assert delivered.external_ref == "PR-1"
    auth = [c.request.headers.get("Authorization") for c in mocked.calls]
    assert auth[1] == "Bearer revoked" and auth[3] == "Bearer fresh"
    # The retry carried the same idempotency key: still one referral at the department.
    assert mocked.calls[1].request.headers["Idempotency-Key"] == "k"
    assert mocked.calls[3].request.headers["Idempotency-Key"] == "k"


def test_a_second_401_means_wrong_credentials(mocked: responses.RequestsMock) -> None:
    token_answer(mocked, "t1")
    token_answer(mocked, "t2")
    mocked.post(f"{BASE}/api/v1/referrals", status=401)
    mocked.post(f"{BASE}/api/v1/referrals", status=401)
    with pytest.raises(Rejected, match=r"401.*credentials") as caught:
        oauth2().deliver("referral", document(), idempotency_key="k")
    assert caught.value.status == 401
    assert sum(1 for c in mocked.calls if c.request.url == TOKEN_URL) == 2  # renewed once only


def test_a_refused_client_is_fatal(mocked: responses.RequestsMock) -> None:
    mocked.post(TOKEN_URL, json={"error": "invalid_client"}, status=401)
    with pytest.raises(Fatal, match="token endpoint answered 401"):
        oauth2().deliver("referral", document(), idempotency_key="k")


def test_an_expired_token_is_fetched_again() -> None:
    now = [1000.0]
    with responses.RequestsMock() as mocked, requests.Session() as session:
        token_answer(mocked, "t1", expires_in=60)
        token_answer(mocked, "t2", expires_in=60)
        auth = OAuth2ClientCredentials(
            TOKEN_URL, "adapter", "s", session=session, clock=lambda: now[0]
        )
        assert auth.headers() == {"Authorization": "Bearer t1"}
        now[0] += 29  # inside the lifetime less the safety margin
        assert auth.headers() == {"Authorization": "Bearer t1"}
        now[0] += 2
        assert auth.headers() == {"Authorization": "Bearer t2"}
        assert auth.fetches == 2 and "s3cret" not in repr(auth)


# --- the error taxonomy ------------------------------------------------------------------------


def test_429_with_retry_after_slows_down(mocked: responses.RequestsMock) -> None:
    mocked.post(f"{BASE}/api/v1/referrals", status=429, headers={"Retry-After": "7"})
    with pytest.raises(RateLimited) as caught:
        connector().deliver("referral", document(), idempotency_key="k")
    assert caught.value.retry_after == 7.0


def test_503_with_retry_after_slows_down_without_it_retries(
    mocked: responses.RequestsMock,
) -> None:
    mocked.post(f"{BASE}/api/v1/referrals", status=503, headers={"Retry-After": "30"})
    mocked.post(f"{BASE}/api/v1/referrals", status=503)
    police = connector()
    with pytest.raises(RateLimited) as caught:
        police.deliver("referral", document(), idempotency_key="k")
    assert caught.value.retry_after == 30.0
    with pytest.raises(Retryable) as again:
        police.deliver("referral", document(), idempotency_key="k")
    assert not isinstance(again.value, RateLimited)


@pytest.mark.parametrize("status", [500, 502, 504, 408])
def test_server_failures_are_retried(mocked: responses.RequestsMock, status: int) -> None:
    mocked.post(f"{BASE}/api/v1/referrals", status=status)
    with pytest.raises(Retryable, match=f"answered {status}"):
        connector().deliver("referral", document(), idempotency_key="k")


def test_no_answer_is_retried(mocked: responses.RequestsMock) -> None:
    mocked.post(f"{BASE}/api/v1/referrals", body=requests.exceptions.ConnectTimeout())
    with pytest.raises(Retryable, match="timeout"):
        connector().deliver("referral", document(), idempotency_key="k")


@pytest.mark.parametrize("status", [400, 404, 409, 422])
def test_a_refusal_is_fatal_and_its_message_holds_status_and_path_only(
    mocked: responses.RequestsMock, status: int
) -> None:
    mocked.put(
        f"{BASE}/api/v1/referrals/{KEY}",
        status=status,
        json={"error": "Synthetic Child 0 born 2014-03-02 is not valid"},
    )
    with pytest.raises(Fatal) as caught:
        connector().deliver("update", document(), idempotency_key="k")
    message = str(caught.value)
    assert f"PUT /api/v1/referrals/{{referral_key}} answered {status}" in message
    assert "Synthetic" not in message and "2014" not in message and KEY not in message


# --- status changes ----------------------------------------------------------------------------


def fir(serial: int, at: str, key: str = KEY, status: str = "registered") -> dict[str, Any]:
    return {
        "referral_key": key,
        "status": status,
        "station": "PS-Kalri",
        "year": 2026,
        "serial": serial,
        "sections": ["PPC 328-A"],
        "investigating_officer": {"rank": "SI", "name": "Synthetic Officer"},
        "medico_legal_required": False,
        "updated_at": at,
    }


def test_status_updates_page_through_the_changes_from_the_watermark(
    mocked: responses.RequestsMock, tmp_path: Path
) -> None:
    text = (ROOT / "config" / "mappings" / "police.toml").read_text(encoding="utf-8")
    path = tmp_path / "police.toml"
    path.write_text(text.replace("page_size = 200", "page_size = 2"), encoding="utf-8")
    police = RestConnector("police", BASE, load_mapping(path, "police"))
    url = f"{BASE}/api/v1/fir-links"
    mocked.get(
        url,
        json={"items": [fir(1, "2026-02-01T00:00:01Z"), fir(2, "2026-02-01T00:00:02Z", "x", "?")]},
        match=[
            matchers.query_param_matcher({"updated_since": "2026-01-31T00:00:00Z", "limit": "2"})
        ],
    )
    mocked.get(
        url,
        json={"items": [fir(3, "2026-02-01T00:00:03Z")]},
        match=[
            matchers.query_param_matcher({"updated_since": "2026-02-01T00:00:02Z", "limit": "2"})
        ],
    )
    found = list(police.status_updates("2026-01-31T00:00:00Z"))
    assert [(u.external_ref, w) for u, w in found] == [
        ("PS-Kalri/2026/1", "2026-02-01T00:00:01Z"),
        ("PS-Kalri/2026/3", "2026-02-01T00:00:03Z"),
    ]
    assert all(u.record_type == "fir" and u.status == "accepted" for u, _ in found)


def test_a_changes_answer_without_a_list_is_retried(mocked: responses.RequestsMock) -> None:
    mocked.get(f"{BASE}/api/v1/fir-links", json={"unexpected": True})
    with pytest.raises(Retryable, match="no list at 'items'"):
        list(connector().status_updates(None))


# --- wiring ------------------------------------------------------------------------------------


def department_settings(**department: Any) -> Any:
    from adapter.config import JobSettings, Settings
    from adapter.config.privacy import PrivacySettings

    return Settings(
        privacy=PrivacySettings(policy_dir=ROOT / "config" / "policy"),
        departments={
            "police": DepartmentSettings(
                connector="rest",
                base_url=BASE,
                mapping_file=ROOT / "config" / "mappings" / "police.toml",
                **department,
            )
        },
        jobs={"police": JobSettings(department="police", agencies=["agency-sindh-police"])},
    )


def test_open_department_builds_the_rest_connector_from_config() -> None:
    from adapter.app.departments import open_department

    settings = department_settings(two_stage=False, auth="api_key", api_key=SecretStr("k"))
    with open_department(settings, "police") as (rest, mapping):
        assert isinstance(rest, RestConnector) and isinstance(mapping, MappedMapping)
        assert rest.department == mapping.department == "police"


def test_two_stage_needs_a_probe_document() -> None:
    from adapter.app.departments import open_department

    with (
        pytest.raises(ConfigError, match=r"two_stage is true.*no \[documents.probe\]"),
        open_department(department_settings(two_stage=True), "police"),
    ):
        pass
