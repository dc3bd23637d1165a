"""The inbound API serves the console only when ``[console] enabled``."""

from __future__ import annotations

from fastapi import FastAPI
from fastapi.testclient import TestClient

from adapter.config import Settings
from adapter.config.console import ConsoleSettings
from adapter.console.app import mount_console
from adapter.privacy import KeyRing
from adapter.registry import Registry
from adapter.state import StateStore


def test_the_console_is_mounted_only_when_enabled(store: StateStore, ring: KeyRing) -> None:
    registry = Registry.open(store, ring)
    off, on = FastAPI(), FastAPI()
    mount_console(off, Settings(), store, ring, lambda: registry)
    enabled = Settings(console=ConsoleSettings(enabled=True, cookie_secure=False))
    mount_console(on, enabled, store, ring, lambda: registry)
    assert TestClient(off).get("/console/sign-in").status_code == 404
    assert TestClient(on).get("/console/sign-in").status_code == 200
