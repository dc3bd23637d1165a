"""Fixtures shared by the whole suite: real servers on 127.0.0.1, stopped by PID."""

from __future__ import annotations

import itertools
import logging
import os
from collections.abc import Iterator

import pytest

from adapter.logs import THIRD_PARTY_LOGGERS
from adapter.state import StateStore
from tests.support.oidc_provider import oidc_provider  # noqa: F401 - shared fixture
from tests.support.servers import PostgresServer, start_postgres
from tests.support.sftp_server import sftp, sftp_server  # noqa: F401 - shared fixtures

_db_counter = itertools.count(1)


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--long",
        action="store_true",
        default=False,
        help="heavy trials: many more crash kills, fuzz examples and fault rounds (not in CI)",
    )


@pytest.fixture(autouse=True)
def _isolated_logging() -> Iterator[None]:
    """A CLI test configures the "adapter" logger (handlers on the runner's stream, no
    propagation); put it back so later tests' log captures see what they expect."""
    names = ("adapter", "uvicorn", "urllib3", *THIRD_PARTY_LOGGERS)
    loggers = [logging.getLogger(name) for name in names]
    saved = [(lg, list(lg.handlers), lg.level, lg.propagate) for lg in loggers]
    try:
        yield
    finally:
        for logger, handlers, level, propagate in saved:
            logger.handlers[:] = handlers
            logger.setLevel(level)
            logger.propagate = propagate


@pytest.fixture(scope="session")
def long_mode(request: pytest.FixtureRequest) -> bool:
    """True under ``pytest --long``: tests scale their trial counts up."""
    return bool(request.config.getoption("--long"))


def _skip_postgres() -> bool:
    return os.environ.get("CPIMS_ADAPTER_SKIP_POSTGRES") == "1"


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    if _skip_postgres():
        pytest.skip("CPIMS_ADAPTER_SKIP_POSTGRES=1")
    server = start_postgres()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def state_url(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> str:
    """A fresh, empty state database: SQLite in a temp dir, or a new PostgreSQL database."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path_factory.mktemp('state')}/state.sqlite3"
    server: PostgresServer = request.getfixturevalue("postgres_server")
    return server.create_database(f"test_{os.getpid()}_{next(_db_counter)}")


@pytest.fixture
def store(state_url: str) -> Iterator[StateStore]:
    """A migrated state store on each backend, closed after the test."""
    opened = StateStore(state_url)
    try:
        yield opened
    finally:
        opened.close()
