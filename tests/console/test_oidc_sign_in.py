"""The console's sign-in with the identity provider, end to end: the console app with
``[console.oidc]`` set, a real OpenID Connect provider (oidc-provider-mock) on 127.0.0.1 whose
authorisation form is submitted as a person would, and the console's own sessions, TOTP,
audit log and sign-out (SQLite and PostgreSQL through the ``store`` fixture)."""

from __future__ import annotations

import re
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pyotp
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from adapter.config.console_oidc import ConsoleOidcSettings
from adapter.console.app import Console, Role, build_console
from adapter.console.sessions import OidcLogins
from adapter.privacy import KeyRing
from adapter.privacy.audit import AuditLog
from adapter.state import StateStore
from tests.console.conftest import World, console_settings, csrf_of
from tests.support.oidc_provider import OidcProviderMock

CALLBACK = "http://127.0.0.1/console/oidc/callback"
REFRESH = re.compile(r'<meta http-equiv="refresh" content="0;url=([^"]+)">')


@dataclass
class OidcWorld:
    console: Console
    app: FastAPI
    provider: OidcProviderMock

    def client(self) -> TestClient:
        return TestClient(self.app, base_url="http://127.0.0.1", follow_redirects=False)

    def audit(self) -> list[dict[str, Any]]:
        return [r.entry for r in AuditLog(self.console.store, self.console.keyring).entries()]

    def sign_in(self, client: TestClient, sub: str) -> Any:
        """Leave for the provider, sign in there as ``sub``, come back: the callback's answer."""
        leave = client.get("/console/oidc/login")
        assert leave.status_code == 303, leave.text
        back = urlsplit(self.provider.authorize(leave.headers["location"], sub))
        return client.get(f"{back.path}?{back.query}")


def _target(answer: Any) -> str:
    """Where the callback's page goes on to (a meta refresh, not a redirect: see signin.py)."""
    assert answer.status_code == 200, answer.text
    match = REFRESH.search(answer.text)
    assert match, answer.text
    return match.group(1).replace("&amp;", "&")


@pytest.fixture
def oidc_world(
    world: World, store: StateStore, ring: KeyRing, oidc_provider: OidcProviderMock, tmp_path: Path
) -> Iterator[OidcWorld]:
    client = oidc_provider.register_client(CALLBACK)
    secret = tmp_path / "oidc-secret"
    secret.write_text(client.client_secret, encoding="utf-8")
    oidc = ConsoleOidcSettings(
        issuer=oidc_provider.issuer,
        client_id=client.client_id,
        client_secret_file=secret,
        redirect_uri=CALLBACK,
        post_logout_redirect_uri="http://127.0.0.1/console/sign-in",
        mfa_acr_values=["urn:example:mfa"],
    )
    console = Console.build(console_settings(oidc=oidc), store, ring, world.console.registry)
    accounts = console.accounts
    accounts.add(
        "officer3",
        display_name="Officer Three",
        role=Role.establishment_officer,
        password=None,
        created_by="test",
        establishment="SCH-001",
        oidc_issuer=oidc_provider.issuer,
        oidc_subject="officer-3",
    )
    accounts.add(
        "dpo.oidc",
        display_name="DPO by OIDC",
        role=Role.dpo,
        password=None,
        created_by="test",
        email="dpo@punjab.example",
    )
    app = FastAPI()
    app.mount("/console", build_console(console))
    yield OidcWorld(console, app, oidc_provider)


def test_an_officer_lands_on_the_establishment_page_with_a_new_audited_session(
    oidc_world: OidcWorld,
) -> None:
    oidc_world.provider.add_user("officer-3", name="Officer Three")
    client = oidc_world.client()
    assert 'id="oidc-sign-in"' in client.get("/console/sign-in").text
    anonymous = client.cookies["console"]
    answer = oidc_world.sign_in(client, "officer-3")
    assert _target(answer) == "/console/establishment"
    assert client.cookies["console"] != anonymous  # a new session id, as at any sign-in
    page = client.get("/console/establishment")
    assert page.status_code == 200 and "Officer Three" in page.text
    signed_in = [e for e in oidc_world.audit() if e["event"] == "console_sign_in"]
    assert signed_in[-1]["recorded_by"] == "officer3"
    assert signed_in[-1]["reason"] == "method=oidc"


def test_a_dpo_found_by_verified_email_is_linked_and_asked_for_the_consoles_totp(
    oidc_world: OidcWorld,
) -> None:
    provider = oidc_world.provider
    provider.add_user("dpo-77", email="dpo@punjab.example", email_verified=True)
    client = oidc_world.client()
    assert _target(oidc_world.sign_in(client, "dpo-77")) == "/console/totp"
    assert client.get("/console/dpo").status_code == 303  # not signed in before the code
    accounts = oidc_world.console.accounts
    account = accounts.by_identity(provider.issuer, "dpo-77")
    assert account is not None and account.username == "dpo.oidc"  # linked on first sign-in
    page = client.get("/console/totp")
    secret = re.search(r'id="totp-secret"[^>]*>([A-Z2-7]+)<', page.text)
    assert secret, page.text
    answer = client.post(
        "/console/totp",
        data={"code": pyotp.TOTP(secret.group(1)).now(), "csrf_token": csrf_of(page.text)},
    )
    assert answer.status_code == 303 and answer.headers["location"] == "/console/dpo"
    assert client.get("/console/dpo").status_code == 200
    signed_in = [e for e in oidc_world.audit() if e["event"] == "console_sign_in"]
    assert signed_in[-1]["reason"] == "method=oidc+totp"


@pytest.mark.parametrize(
    "claims", [{"amr": ["pwd", "mfa"]}, {"acr": "urn:example:mfa"}], ids=["amr", "acr"]
)
def test_a_dpo_whose_provider_did_mfa_needs_no_second_code(
    oidc_world: OidcWorld, claims: dict[str, object]
) -> None:
    oidc_world.provider.add_user(
        "dpo-78", email="dpo@punjab.example", email_verified=True, **claims
    )
    client = oidc_world.client()
    assert _target(oidc_world.sign_in(client, "dpo-78")) == "/console/dpo"
    assert client.get("/console/dpo").status_code == 200
    signed_in = [e for e in oidc_world.audit() if e["event"] == "console_sign_in"]
    assert signed_in[-1]["reason"] == "method=oidc+provider_mfa"


def test_an_unverified_email_or_an_unknown_identity_is_refused_on_a_page(
    oidc_world: OidcWorld,
) -> None:
    # The address is the DPO's, but the provider does not vouch for it: nobody is matched.
    oidc_world.provider.add_user("stranger", email="dpo@punjab.example", email_verified=False)
    client = oidc_world.client()
    answer = oidc_world.sign_in(client, "stranger")
    assert answer.status_code == 403
    assert "has no console account" in answer.text and 'id="problem"' in answer.text
    assert "Traceback" not in answer.text and 'name="username"' in answer.text
    assert client.get("/console/dpo").status_code == 303
    refused = [e for e in oidc_world.audit() if e["event"] == "console_sign_in_failed"]
    assert refused[-1]["reason"] == "method=oidc;problem=unmapped"
    # Pressing "Deny" at the provider is refused the same way, with the provider's code.
    leave = client.get("/console/oidc/login")
    back = urlsplit(oidc_world.provider.deny(leave.headers["location"]))
    denied = client.get(f"{back.path}?{back.query}")
    assert denied.status_code == 403 and "access_denied" in denied.text


def test_a_callback_is_good_once(oidc_world: OidcWorld) -> None:
    oidc_world.provider.add_user("officer-3")
    client = oidc_world.client()
    leave = client.get("/console/oidc/login")
    back = urlsplit(oidc_world.provider.authorize(leave.headers["location"], "officer-3"))
    assert client.get(f"{back.path}?{back.query}").status_code == 200
    again = client.get(f"{back.path}?{back.query}")
    assert again.status_code == 403 and "unknown, expired or already used" in again.text


def test_sign_out_ends_the_session_and_goes_to_the_providers_end_session(
    oidc_world: OidcWorld,
) -> None:
    oidc_world.provider.add_user("officer-3")
    client = oidc_world.client()
    oidc_world.sign_in(client, "officer-3")
    page = client.get("/console/establishment")
    answer = client.post("/console/sign-out", data={"csrf_token": csrf_of(page.text)})
    # A page that goes on to the provider (a redirect would break the form's CSP form-action).
    location = urlsplit(_target(answer))
    assert f"{location.scheme}://{location.netloc}" == oidc_world.provider.issuer
    query = parse_qs(location.query)
    assert query["post_logout_redirect_uri"] == ["http://127.0.0.1/console/sign-in"]
    assert query["id_token_hint"][0].count(".") == 2  # the sign-in's ID token
    assert client.get("/console/establishment").status_code == 303  # signed out here first


def test_a_password_sign_in_signs_out_locally(oidc_world: OidcWorld, world: World) -> None:
    client = oidc_world.client()
    page = client.get("/console/sign-in")
    client.post(
        "/console/sign-in",
        data={
            "username": "officer1",
            "password": "correct horse battery staple",
            "csrf_token": csrf_of(page.text),
        },
    )
    page = client.get("/console/establishment")
    answer = client.post("/console/sign-out", data={"csrf_token": csrf_of(page.text)})
    assert answer.headers["location"] == "/console/sign-in"


def test_a_login_state_is_taken_once_even_by_two_callbacks_at_once(store: StateStore) -> None:
    now = datetime.now(UTC)
    logins = OidcLogins(store, lambda: now)
    for n in range(5):
        logins.put(f"state-{n}", f"entry-{n}", 600)
    taken: list[str | None] = []
    barrier = threading.Barrier(2)

    def take(key: str) -> None:
        barrier.wait()
        taken.append(logins.pop(key))

    for n in range(5):
        taken.clear()
        threads = [threading.Thread(target=take, args=(f"state-{n}",)) for _ in range(2)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert sorted(taken, key=lambda value: value is None) == [f"entry-{n}", None]
    later = OidcLogins(store, lambda: now + timedelta(seconds=601))
    logins.put("old", "entry", 600)
    assert later.pop("old") is None  # expired: never returned
