"""Fixtures: a real simulator per test module, and a tiny webhook receiver."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import requests

from adapter.simulator.primero import PrimeroSimulator
from tests.simulator.sim_helpers import ADAPTER, ADMIN, Receiver


@pytest.fixture(scope="module")
def sim() -> Iterator[PrimeroSimulator]:
    """A simulator with 60 seeded cases on a free loopback port, stopped after the module."""
    simulator = PrimeroSimulator(cases=60, seed=7)
    simulator.start()
    yield simulator
    simulator.stop()


@pytest.fixture()
def api(sim: PrimeroSimulator) -> Iterator[requests.Session]:
    """A requests session authenticated as the integration account (HTTP Basic)."""
    with requests.Session() as session:
        session.auth = ADAPTER
        yield session


@pytest.fixture()
def admin(sim: PrimeroSimulator) -> Iterator[requests.Session]:
    """A requests session authenticated as `primero_admin`."""
    with requests.Session() as session:
        session.auth = ADMIN
        yield session


@pytest.fixture(autouse=True)
def _clean_faults(request: pytest.FixtureRequest) -> Iterator[None]:
    yield
    if "sim" in request.fixturenames:
        simulator: PrimeroSimulator = request.getfixturevalue("sim")
        requests.delete(simulator.url + "/_sim/faults", timeout=5)
        requests.post(simulator.url + "/_sim/config_lock", json={"locked": False}, timeout=5)


@pytest.fixture()
def receiver() -> Iterator[Receiver]:
    """A local HTTP endpoint that records webhook deliveries."""
    with Receiver() as r:
        yield r
