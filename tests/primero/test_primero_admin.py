"""Version, health, capability probe, webhooks, modules, lookups and construction."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest
import responses
from pydantic import SecretStr

from adapter.config import PrimeroSettings
from adapter.errors import ConfigError, PrimeroNoOp, PrimeroVersionError
from adapter.primero import PrimeroClient, parse_version

Make = Callable[..., PrimeroClient]
BASE = "https://primero.test"
SETTINGS_URL = f"{BASE}/api/v2/system_settings"


@pytest.mark.parametrize(
    ("older", "newer"),
    [
        ("2.11", "2.15.2.1"),
        ("2.15.2", "2.15.2.1"),
        ("2.16.0-rc2", "2.16.0"),
        ("2.16.0-rc2", "2.16"),
        ("2.15.2.1", "2.16.0-rc2"),
        ("v2.9.3", "2.10"),
    ],
)
def test_versions_sort_like_primeros_releases(older: str, newer: str) -> None:
    assert parse_version(older) < parse_version(newer)


def test_an_old_primero_is_refused_with_a_reason(
    mocked: responses.RequestsMock, make_client: Make
) -> None:
    mocked.get(SETTINGS_URL, json={"data": {"primero_version": "2.10.3"}})

    with pytest.raises(PrimeroVersionError, match=r"2\.10\.3 is older than 2\.11"):
        make_client().check_version()


def test_a_current_primero_passes(mocked: responses.RequestsMock, make_client: Make) -> None:
    mocked.get(SETTINGS_URL, json={"data": {"primero_version": "2.16.0-rc2"}})

    assert make_client().check_version("2.15") == "2.16.0-rc2"


def test_health_is_one_unauthenticated_call(
    mocked: responses.RequestsMock, make_client: Make, sleeps: list[float]
) -> None:
    mocked.get(f"{BASE}/health", status=503, headers={"Retry-After": "60"})

    status = make_client().health()

    assert (status.healthy, status.status, status.retry_after) == (False, 503, 60)
    assert len(mocked.calls) == 1 and sleeps == []
    assert "Authorization" not in mocked.calls[0].request.headers


def test_capabilities_use_reads_only_and_say_unknown_for_writes(
    mocked: responses.RequestsMock, make_client: Make
) -> None:
    mocked.get(SETTINGS_URL, json={"data": {"primero_version": "2.15.2.1"}})
    mocked.get(f"{BASE}/api/v2/cases", json={"data": [], "metadata": {"total": 0}})
    mocked.get(f"{BASE}/api/v2/users/refer-to", json={"data": []})
    mocked.get(f"{BASE}/api/v2/webhooks", status=403, json={"errors": [{"message": "Forbidden"}]})
    mocked.get(f"{BASE}/api/v2/forms", json={"data": []})
    mocked.get(f"{BASE}/api/v2/users", status=403, json={"errors": [{"message": "Forbidden"}]})

    found = make_client().capabilities()

    assert found.version == "2.15.2.1" and found.auth_mode == "basic"
    assert found.checks["cases.read"].permitted == "yes"
    assert found.checks["referrals.create"].permitted == "yes"
    assert found.checks["webhooks.manage"].permitted == "no"
    assert found.checks["cases.write"].permitted == "unknown"
    assert {call.request.method for call in mocked.calls} == {"GET"}


def test_capabilities_read_the_role_when_the_account_may(
    mocked: responses.RequestsMock, make_client: Make
) -> None:
    mocked.get(SETTINGS_URL, json={"data": {"primero_version": "2.15.2.1"}})
    for path in ("cases", "users/refer-to", "webhooks", "forms"):
        mocked.get(f"{BASE}/api/v2/{path}", json={"data": []})
    mocked.get(f"{BASE}/api/v2/users", json={"data": [{"id": 17, "user_name": "svc-adapter"}]})
    permissions = {
        "list": [
            {"resource": "cases", "actions": ["read", "write", "referral", "sync_external"]},
            {"resource": "webhooks", "actions": ["manage"]},
        ]
    }
    mocked.get(f"{BASE}/api/v2/users/17", json={"data": {"id": 17, "permissions": permissions}})

    checks = make_client().capabilities().checks

    assert checks["cases.write"].permitted == "yes"
    assert checks["cases.sync_external"].permitted == "yes"
    assert checks["cases.create"].permitted == "no"
    assert checks["forms.manage"].permitted == "no"
    assert checks["cases.referral_summary"].permitted == "no"  # no dashboard in the role


def test_a_webhook_has_exactly_one_event(mocked: responses.RequestsMock, make_client: Make) -> None:
    mocked.post(f"{BASE}/api/v2/webhooks", json={"data": {"id": 3, "events": "case.update"}})
    client = make_client()

    with pytest.raises(ValueError, match="one event"):
        client.create_webhook("case.create,case.update", "https://adapter.test/inbox")
    client.create_webhook(
        "case.update", "https://adapter.test/inbox", role_unique_id="role-webhook"
    )

    assert json.loads(mocked.calls[0].request.body) == {
        "data": {
            "events": "case.update",
            "url": "https://adapter.test/inbox",
            "role_unique_id": "role-webhook",
        }
    }


def test_missing_module_options_name_the_admin_step_and_never_patch(
    mocked: responses.RequestsMock, make_client: Make
) -> None:
    """A PATCH of a module without its form ids detaches every form (Primero's
    primero_modules_controller), so the client only reads and explains."""
    module = {"id": 1, "unique_id": "primeromodule-cp", "module_options": {"use_webhooks_for": []}}
    mocked.get(f"{BASE}/api/v2/primero_modules", json={"data": [module]})

    with pytest.raises(PrimeroNoOp, match="admin console"):
        make_client().require_module_options("primeromodule-cp", {"use_webhooks_for": ["case"]})
    assert all(call.request.method == "GET" for call in mocked.calls)


def test_present_module_options_pass(mocked: responses.RequestsMock, make_client: Make) -> None:
    module = {
        "id": 1,
        "unique_id": "primeromodule-cp",
        "module_options": {"use_webhooks_for": ["case"]},
    }
    mocked.get(f"{BASE}/api/v2/primero_modules", json={"data": [module]})
    client = make_client()
    assert (
        client.require_module_options("primeromodule-cp", {"use_webhooks_for": ["case"]})["id"] == 1
    )


def test_refer_to_users_sends_service_singular(
    mocked: responses.RequestsMock, make_client: Make
) -> None:
    mocked.get(f"{BASE}/api/v2/users/refer-to", json={"data": [{"user_name": "doc1"}]})

    make_client().refer_to_users(
        record_module_id="primeromodule-cp", service="health_medical_service"
    )

    query = parse_qs(urlsplit(mocked.calls[0].request.url).query)
    assert query == {
        "record_type": ["case"],
        "record_module_id": ["primeromodule-cp"],
        "service": ["health_medical_service"],
    }


def test_lookups_are_paged_and_found_by_unique_id(
    mocked: responses.RequestsMock, make_client: Make
) -> None:
    first = [{"id": n, "unique_id": f"lookup-{n}"} for n in range(2)]
    mocked.get(f"{BASE}/api/v2/lookups", json={"data": first, "metadata": {"total": 3, "per": 2}})
    mocked.get(
        f"{BASE}/api/v2/lookups",
        json={"data": [{"id": 9, "unique_id": "lookup-service-type"}], "metadata": {"total": 3}},
    )

    found = make_client().get_lookup("lookup-service-type")

    assert found["id"] == 9 and len(mocked.calls) == 2


def test_from_settings_maps_every_key(tmp_path: Path) -> None:
    token_file = tmp_path / "token"
    token_file.write_text("jwt-from-file\n")
    settings = PrimeroSettings(
        url="https://primero.example.org/",
        auth="bearer",
        token_file=token_file,
        page_size=250,
        min_version="2.14",
    )

    client = PrimeroClient.from_settings(settings, sleep=lambda _: None)

    assert client.base_url == "https://primero.example.org"
    assert client._page_size == 250 and client._min_version == "2.14"


def test_from_settings_explains_missing_credentials() -> None:
    with pytest.raises(ConfigError, match="CPIMS_ADAPTER_PRIMERO__USERNAME"):
        PrimeroClient.from_settings(PrimeroSettings(url="https://p.test", password=SecretStr("x")))
    with pytest.raises(ConfigError, match=r"primero\.url"):
        PrimeroClient.from_settings(PrimeroSettings())
