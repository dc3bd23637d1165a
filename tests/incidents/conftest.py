"""Fixtures for breach handling: a state store on each backend (``store`` from tests/conftest.py),
a key ring for health and police, a real SMTP sink on 127.0.0.1, and settings that mail the
sink."""

from __future__ import annotations

import secrets
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from typing import Any

import pytest

from adapter.config import Settings, StateSettings
from adapter.incidents import IncidentSettings
from adapter.privacy import KeyRing
from adapter.state import StateStore
from tests.support.smtp_sink import SmtpSink, start_smtp_sink

NOW = datetime(2026, 3, 1, 9, 0, tzinfo=UTC)
DPO = "dpo@scpa.example"
POLICE_IT = "it-security@police.example"


@pytest.fixture
def sink() -> Iterator[SmtpSink]:
    running = start_smtp_sink()
    try:
        yield running
    finally:
        running.stop()


@pytest.fixture
def kek() -> bytes:
    return secrets.token_bytes(32)


@pytest.fixture
def ring(store: StateStore, kek: bytes) -> KeyRing:
    return KeyRing.init(store, kek, ["health", "police"], now=NOW)


def incident_settings(store: StateStore, port: int, **incidents: Any) -> Settings:
    """Settings that mail notices to ``port`` on loopback (no TLS: a test relay)."""
    values: dict[str, Any] = {
        "dpo_emails": [DPO],
        "department_contacts": {"police": [POLICE_IT]},
        "smtp_port": port,
        "smtp_starttls": False,
        "sender": "cpims-adapter@scpa.example",
    }
    values.update(incidents)
    return Settings(state=StateSettings(url=store.url), incidents=IncidentSettings(**values))


@pytest.fixture
def settings_for(store: StateStore, sink: SmtpSink) -> Callable[..., Settings]:
    def make(**incidents: Any) -> Settings:
        return incident_settings(store, sink.port, **incidents)

    return make
