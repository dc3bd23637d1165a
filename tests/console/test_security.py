"""The console's security battery: nothing below may be accepted (issue 16, "Done when")."""

from __future__ import annotations

import json
from datetime import timedelta

import pyotp
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from adapter.clock import utcnow
from adapter.config import Settings
from adapter.config.api import ApiSettings
from adapter.config.console import ConsoleSettings
from adapter.console.app import Console, build_console
from adapter.console.sessions import Sessions
from adapter.console.web import safe_next
from adapter.errors import ConfigError
from adapter.privacy.audit import AuditLog
from tests.console.conftest import PASSWORD, World, console_settings, csrf_of, sign_in

CNIC = "35202-1234567-1"


def check_form(csrf: str, **fields: str) -> dict[str, str]:
    data = {
        "cnic": CNIC,
        "full_name": "Muhammad Ali",
        "father_name": "Muhammad Aslam",
        "date_of_birth": "1990-05-01",
        "consent_ref": "CF-2026-000001",
        "position": "Teacher",
        "purpose": "education",
        "csrf_token": csrf,
    }
    data.update(fields)
    return data


def audit_events(world: World) -> list[dict[str, object]]:
    return [r.entry for r in AuditLog(world.console.store, world.console.keyring).entries()]


# --- headers and cookies ---------------------------------------------------------------------


@pytest.mark.parametrize(
    "path", ["/console/sign-in", "/console/nowhere", "/console/static/console.css"]
)
def test_every_answer_carries_the_security_headers(world: World, path: str) -> None:
    answer = world.client().get(path)
    csp = answer.headers["content-security-policy"]
    assert "default-src 'self'" in csp and "frame-ancestors 'none'" in csp
    assert "unsafe-inline" not in csp and "unsafe-eval" not in csp
    assert answer.headers["x-content-type-options"] == "nosniff"
    assert answer.headers["referrer-policy"] == "no-referrer"
    assert answer.headers["x-frame-options"] == "DENY"
    if path != "/console/static/console.css":
        assert answer.headers["cache-control"] == "no-store"


def test_pages_have_no_inline_script_or_style(world: World) -> None:
    client = sign_in(world, world.client(), "officer1")
    html = client.get("/console/establishment").text
    assert "<script" not in html and "<style" not in html and " style=" not in html


def test_session_cookie_is_httponly_strict_and_secure_by_default(world: World) -> None:
    dev = world.client().get("/console/sign-in").headers["set-cookie"].lower()
    assert "httponly" in dev and "samesite=strict" in dev
    secure = Console.build(
        console_settings(cookie_secure=True),
        world.console.store,
        world.console.keyring,
        world.console.registry,
    )
    app = FastAPI()
    app.mount("/console", build_console(secure))
    cookie = TestClient(app).get("/console/sign-in").headers["set-cookie"]
    assert cookie.startswith("__Host-console=")
    assert "secure" in cookie.lower() and "httponly" in cookie.lower()


def test_insecure_cookies_are_refused_off_loopback(world: World) -> None:
    exposed = Settings(
        console=ConsoleSettings(enabled=True, cookie_secure=False), api=ApiSettings(host="0.0.0.0")
    )
    console = Console.build(
        exposed, world.console.store, world.console.keyring, world.console.registry
    )
    with pytest.raises(ConfigError, match="cookie_secure"):
        build_console(console)


# --- CSRF --------------------------------------------------------------------------------------


def test_a_post_without_the_sessions_csrf_token_is_refused(world: World) -> None:
    client = world.client()
    client.get("/console/sign-in")
    refused = client.post("/console/sign-in", data={"username": "officer1", "password": PASSWORD})
    assert refused.status_code == 403
    assert client.get("/console/establishment").status_code == 303  # still signed out

    sign_in(world, client, "officer1")
    other = world.client()
    foreign = csrf_of(other.get("/console/sign-in").text)  # a real token, of another session
    for token in ("", "forged", foreign):
        answer = client.post("/console/establishment/check", data=check_form(token))
        assert answer.status_code == 403
    school = world.registry.establishment("SCH-001")
    assert world.registry.check_history(school) == []
    assert any(e["event"] == "console_csrf_refused" for e in audit_events(world))


# --- roles and establishments ----------------------------------------------------------------


def test_a_role_cannot_open_or_post_to_another_roles_pages(world: World) -> None:
    officer = sign_in(world, world.client(), "officer1")
    csrf = csrf_of(officer.get("/console/establishment").text)
    assert officer.get("/console/operator").status_code == 403
    assert officer.get("/console/operator/runs").status_code == 403
    assert (
        officer.post("/console/operator/outbox/1/retry", data={"csrf_token": csrf}).status_code
        == 403
    )
    operator = sign_in(world, world.client("192.0.2.11"), "operator1")
    csrf = csrf_of(operator.get("/console/operator").text)
    assert operator.get("/console/establishment").status_code == 403
    assert operator.post("/console/establishment/check", data=check_form(csrf)).status_code == 403
    assert [e for e in audit_events(world) if e["event"] == "console_forbidden"]


def test_an_officer_never_sees_another_establishments_checks(world: World) -> None:
    two = sign_in(world, world.client(), "officer2")
    page = two.post(
        "/console/establishment/check",
        data=check_form(csrf_of(two.get("/console/establishment").text)),
    )
    ref = page.text.split('id="check-ref">')[1].split("<")[0]
    assert ref.startswith("RC")
    assert ref in two.get("/console/establishment").text

    one = sign_in(world, world.client("192.0.2.11"), "officer1")
    assert ref not in one.get("/console/establishment").text
    lookup = one.get(f"/console/establishment/checks/{ref}")
    assert ref not in lookup.text
    assert "no check with that reference" in lookup.text
    # The query string cannot pick an establishment either.
    assert ref not in one.get("/console/establishment?establishment=SCH-002").text


# --- sessions ----------------------------------------------------------------------------------


def test_sign_in_replaces_the_session_id(world: World) -> None:
    client = world.client()
    client.get("/console/sign-in")
    planted = client.cookies["console"]
    sign_in(world, client, "dpo1")
    assert client.cookies["console"] != planted
    attacker = world.client("192.0.2.99")
    attacker.cookies.set("console", planted)
    assert attacker.get("/console/establishment").status_code == 303  # the planted id is dead


def test_password_alone_does_not_open_a_totp_role(world: World) -> None:
    client = world.client()
    page = client.get("/console/sign-in")
    half = client.post(
        "/console/sign-in",
        data={"username": "dpo1", "password": PASSWORD, "csrf_token": csrf_of(page.text)},
    )
    assert half.headers["location"] == "/console/totp"
    assert client.get("/console/operator").status_code == 303
    totp = client.get("/console/totp")
    wrong = client.post("/console/totp", data={"code": "000000", "csrf_token": csrf_of(totp.text)})
    assert wrong.status_code == 401
    assert client.get("/console/operator").status_code == 303


def test_a_totp_code_is_good_once(world: World) -> None:
    accounts = world.console.accounts
    account = accounts.by_username("dpo1")
    assert account is not None
    now = utcnow()
    code = pyotp.TOTP(world.totp["dpo1"]).at(now)
    assert accounts.verify_totp(account, code, now=now)
    assert not accounts.verify_totp(account, code, now=now)  # replayed
    earlier = pyotp.TOTP(world.totp["dpo1"]).at(now - timedelta(seconds=30))
    assert not accounts.verify_totp(account, earlier, now=now)  # older than the last one
    assert not accounts.verify_totp(account, "12345", now=now)


def test_first_sign_in_enrols_totp_by_showing_the_secret(world: World) -> None:
    client = world.client()
    page = client.get("/console/sign-in")
    client.post(
        "/console/sign-in",
        data={"username": "operator1", "password": PASSWORD, "csrf_token": csrf_of(page.text)},
    )
    enrolment = client.get("/console/totp").text
    assert world.totp["operator1"] in enrolment and "otpauth://totp/" in enrolment
    sign_in(world, world.client("192.0.2.12"), "operator1")
    again = world.client("192.0.2.13")
    page = again.get("/console/sign-in")
    again.post(
        "/console/sign-in",
        data={"username": "operator1", "password": PASSWORD, "csrf_token": csrf_of(page.text)},
    )
    assert world.totp["operator1"] not in again.get("/console/totp").text  # shown once only


def test_sessions_end_after_the_idle_and_absolute_timeouts(world: World) -> None:
    sessions = Sessions(
        world.console.store, ConsoleSettings(session_idle_minutes=15, session_absolute_hours=1)
    )
    start = utcnow()
    session = sessions.start("signed_in", 1, start)
    assert sessions.load(session.id, start + timedelta(minutes=14)) is not None
    assert sessions.load(session.id, start + timedelta(minutes=30)) is None  # idle
    session = sessions.start("signed_in", 1, start)
    for minutes in range(10, 60, 10):
        assert sessions.load(session.id, start + timedelta(minutes=minutes)) is not None
    assert sessions.load(session.id, start + timedelta(minutes=61)) is None  # absolute


def test_sign_out_ends_the_session(world: World) -> None:
    client = sign_in(world, world.client(), "officer1")
    before = client.cookies["console"]
    csrf = csrf_of(client.get("/console/establishment").text)
    assert client.post("/console/sign-out", data={"csrf_token": csrf}).status_code == 303
    stale = world.client("192.0.2.50")
    stale.cookies.set("console", before)
    assert stale.get("/console/establishment").status_code == 303
    assert any(e["event"] == "console_sign_out" for e in audit_events(world))


def test_a_disabled_account_cannot_sign_in_and_loses_its_session(world: World) -> None:
    client = sign_in(world, world.client(), "officer1")
    world.console.accounts.disable("officer1")
    assert client.get("/console/establishment").status_code == 303
    page = client.get("/console/sign-in")
    answer = client.post(
        "/console/sign-in",
        data={"username": "officer1", "password": PASSWORD, "csrf_token": csrf_of(page.text)},
    )
    assert answer.status_code == 401


# --- brute force -------------------------------------------------------------------------------


def test_repeated_failures_throttle_that_account_from_that_address_only(world: World) -> None:
    attacker = world.client("203.0.113.7")
    for _ in range(3):
        page = attacker.get("/console/sign-in")
        failed = attacker.post(
            "/console/sign-in",
            data={
                "username": "officer1",
                "password": "wrong password!",
                "csrf_token": csrf_of(page.text),
            },
        )
        assert failed.status_code == 401
    page = attacker.get("/console/sign-in")
    throttled = attacker.post(
        "/console/sign-in",
        data={"username": "officer1", "password": PASSWORD, "csrf_token": csrf_of(page.text)},
    )
    assert throttled.status_code == 429  # even the right password waits
    # The owner, from their own address, is not locked out by the stranger.
    sign_in(world, world.client("192.0.2.10"), "officer1")
    events = audit_events(world)
    failures = [e for e in events if e["event"] == "console_sign_in_failed"]
    assert len(failures) == 4
    assert not any("wrong password" in json.dumps(e) or PASSWORD in json.dumps(e) for e in events)


def test_the_lockout_is_short_and_grows(world: World) -> None:
    throttle = world.console.throttle
    now = utcnow()
    waits = []
    for _ in range(6):
        throttle.failed("officer1", "203.0.113.8", now)
        until = throttle.locked_until("officer1", "203.0.113.8", now)
        waits.append((until - now).total_seconds() if until else 0)
    assert waits[:2] == [0, 0]
    assert waits[2] == 60 and waits[3] == 120 and waits[4] == 240
    assert max(waits) <= world.console.settings.lockout_max_seconds


def test_an_unknown_username_fails_like_a_wrong_password(world: World) -> None:
    client = world.client()
    page = client.get("/console/sign-in")
    unknown = client.post(
        "/console/sign-in",
        data={"username": "nobody", "password": PASSWORD, "csrf_token": csrf_of(page.text)},
    )
    page = client.get("/console/sign-in")
    wrong = client.post(
        "/console/sign-in",
        data={
            "username": "officer1",
            "password": "not the password",
            "csrf_token": csrf_of(page.text),
        },
    )
    assert unknown.status_code == wrong.status_code == 401
    assert "The username or password is wrong." in unknown.text and "nobody" not in unknown.text


# --- redirects ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "target",
    [
        "https://evil.example/",
        "//evil.example/console/",
        "/\\evil.example",
        "javascript:alert(1)",
        "/console/../metrics",
        "http:/console/establishment",
        "/v1/registry/checks",
        "/console\t/x",
    ],
)
def test_next_never_leaves_the_console(world: World, target: str) -> None:
    assert safe_next(target) == "/console/"
    client = world.client()
    page = client.get("/console/sign-in", params={"next": target})
    answer = client.post(
        "/console/sign-in",
        data={
            "username": "officer1",
            "password": PASSWORD,
            "csrf_token": csrf_of(page.text),
            "next": target,
        },
    )
    assert answer.headers["location"] == "/console/establishment"


def test_next_within_the_console_is_followed(world: World) -> None:
    client = world.client()
    first = client.get("/console/establishment/checks/RC123")
    assert first.headers["location"] == "/console/sign-in?next=/console/establishment/checks/RC123"
    page = client.get(first.headers["location"])
    answer = client.post(
        "/console/sign-in",
        data={
            "username": "officer1",
            "password": PASSWORD,
            "csrf_token": csrf_of(page.text),
            "next": "/console/establishment/checks/RC123",
        },
    )
    assert answer.headers["location"] == "/console/establishment/checks/RC123"


# --- reflected input ---------------------------------------------------------------------------

XSS = '"><script>alert(1)</script><img src=x onerror=alert(2)>'


def test_reflected_input_is_escaped_in_every_form(world: World) -> None:
    client = world.client()
    sign_in_page = client.get("/console/sign-in", params={"next": "/console/" + XSS}).text
    assert "<script>alert(1)" not in sign_in_page and "onerror=alert" not in sign_in_page.replace(
        "onerror=alert(2)&gt;", ""
    )
    sign_in(world, client, "officer1")
    csrf = csrf_of(client.get("/console/establishment").text)
    page = client.post(
        "/console/establishment/check",
        data=check_form(
            csrf, cnic="not a cnic", full_name=XSS, father_name=XSS, position=XSS, consent_ref=XSS
        ),
    ).text
    assert "<script>alert(1)" not in page and "<img src=x" not in page
    assert "&lt;script&gt;" in page  # the name came back, escaped
    assert "not a cnic" not in page  # the CNIC is never sent back
    lookup = client.get("/console/establishment/checks/" + XSS[:30]).text
    assert "<script>" not in lookup
    operator = sign_in(world, world.client("192.0.2.20"), "operator1")
    runs = operator.get("/console/operator/runs", params={"job": XSS}).text
    assert "<script>alert(1)" not in runs
    totp_client = world.client("192.0.2.21")
    page = totp_client.get("/console/sign-in")
    totp_client.post(
        "/console/sign-in",
        data={
            "username": "dpo1",
            "password": PASSWORD,
            "csrf_token": csrf_of(page.text),
            "next": "/console/" + XSS,
        },
    )
    totp_page = totp_client.get("/console/totp", params={"next": "/console/" + XSS}).text
    assert "<script>alert(1)" not in totp_page
