"""Fixtures for the console tests: a real state store (SQLite, and PostgreSQL through the
``store`` fixture of tests/conftest.py), a key ring, a registry with two establishments, one
account of each role, and the console's app behind FastAPI's TestClient."""

from __future__ import annotations

import re
import secrets
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import pyotp
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from adapter.config import Settings
from adapter.config.console import ConsoleSettings
from adapter.console.app import Console, Role, build_console
from adapter.privacy import KeyRing
from adapter.registry import Registry, RegistrySettings
from adapter.state import StateStore

PASSWORD = "correct horse battery staple"
CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')


@dataclass
class World:
    console: Console
    registry: Registry
    app: FastAPI
    totp: dict[str, str]

    def client(self, source: str = "192.0.2.10") -> TestClient:
        return TestClient(
            self.app, base_url="http://127.0.0.1", follow_redirects=False, client=(source, 50000)
        )


def console_settings(**overrides: object) -> Settings:
    values: dict[str, object] = {"enabled": True, "cookie_secure": False, **overrides}
    console = ConsoleSettings(**values)  # type: ignore[arg-type]
    return Settings(console=console)


@pytest.fixture
def ring(store: StateStore) -> KeyRing:
    return KeyRing.init(store, secrets.token_bytes(32), ["health"])


@pytest.fixture
def world(store: StateStore, ring: KeyRing) -> Iterator[World]:
    settings = console_settings(lockout_after=3, lockout_base_seconds=60)
    registry = Registry.open(store, ring, RegistrySettings(answer_min_ms=0))
    for number in ("SCH-001", "SCH-002"):
        registry.add_establishment(
            number,
            f"School {number}",
            (("Amina Khan", "amina@school.example"), ("Bilal Shah", "bilal@school.example")),
            registered_by="r.officer",
        )
    console = Console.build(settings, store, ring, lambda: registry)
    accounts = console.accounts
    accounts.add(
        "officer1",
        display_name="Officer One",
        role=Role.establishment_officer,
        password=PASSWORD,
        created_by="test",
        establishment="SCH-001",
    )
    accounts.add(
        "officer2",
        display_name="Officer Two",
        role=Role.establishment_officer,
        password=PASSWORD,
        created_by="test",
        establishment="SCH-002",
    )
    totp = {}
    for name, role in (
        ("dpo1", Role.dpo),
        ("operator1", Role.operator),
        ("reviewer1", Role.reviewer),
    ):
        account = accounts.add(
            name, display_name=name, role=role, password=PASSWORD, created_by="test"
        )
        totp[name] = accounts.totp_secret(account)
    app = FastAPI()
    app.mount("/console", build_console(console))
    yield World(console, registry, app, totp)


def csrf_of(html: str) -> str:
    match = CSRF.search(html)
    assert match, "the page has no CSRF token"
    return match.group(1)


def sign_in(world: World, client: TestClient, username: str) -> TestClient:
    """Sign ``username`` in through the forms (password, then TOTP for the roles that need it)."""
    page = client.get("/console/sign-in")
    answer = client.post(
        "/console/sign-in",
        data={"username": username, "password": PASSWORD, "csrf_token": csrf_of(page.text)},
    )
    assert answer.status_code == 303, answer.text
    if answer.headers["location"].startswith("/console/totp"):
        page = client.get("/console/totp")
        totp = pyotp.TOTP(world.totp[username])
        answer = client.post(
            "/console/totp", data={"code": totp.now(), "csrf_token": csrf_of(page.text)}
        )
        if answer.status_code == 401:
            # This account already used the current code (a code is good once): the next
            # step's code is within the allowed drift.
            later = totp.at(datetime.now(UTC) + timedelta(seconds=30))
            answer = client.post(
                "/console/totp", data={"code": later, "csrf_token": csrf_of(page.text)}
            )
        assert answer.status_code == 303, answer.text
    return client
