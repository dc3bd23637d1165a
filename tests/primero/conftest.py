"""Fixtures for the Primero client tests: a mocked HTTP layer (`responses`) and a client whose
sleeps are recorded instead of slept."""

from __future__ import annotations

import random
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import responses

from adapter.primero import PrimeroClient

BASE = "https://primero.test"
CASE_ID = "6f1c2b9e-3a4d-4e5f-8a9b-0c1d2e3f4a5b"
REFERRAL_ID = "749e9c6e-1111-4222-8333-944455556666"


@pytest.fixture
def mocked() -> Iterator[responses.RequestsMock]:
    """Every HTTP call goes to `responses`; an unregistered URL raises ConnectionError."""
    with responses.RequestsMock(assert_all_requests_are_fired=False) as rsps:
        yield rsps


@pytest.fixture
def sleeps() -> list[float]:
    """The delays the client asked for, in order."""
    return []


@pytest.fixture
def make_client(sleeps: list[float]) -> Callable[..., PrimeroClient]:
    """Build a client against BASE (Basic auth unless told otherwise)."""

    def make(**kw: Any) -> PrimeroClient:
        kw.setdefault("username", "svc-adapter")
        kw.setdefault("password", "correct horse")
        kw.setdefault("sleep", sleeps.append)
        kw.setdefault("rng", random.Random(7))
        return PrimeroClient(BASE, **kw)

    return make
