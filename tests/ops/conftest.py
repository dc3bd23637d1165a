"""A police world for the operations tests: Primero and police simulators on 127.0.0.1."""

from __future__ import annotations

import logging
import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa

from adapter.config import Settings
from adapter.privacy import KeyRing
from adapter.privacy._tables import keys as keys_table
from adapter.simulator.departments import DepartmentSimulator, Desk
from adapter.simulator.departments.scenario import (
    POLICE_AGENCY,
    POLICE_SERVICE,
    refer_children,
    rest_settings,
)
from adapter.simulator.primero import PrimeroSimulator
from adapter.simulator.scenario import install_linked_records_form
from adapter.state import StateStore, schema

CHILDREN = 2


@dataclass
class PoliceWorld:
    sim: PrimeroSimulator
    desk: Desk
    settings: Settings
    state_url: str
    referred: list[tuple[str, str]]


def write_config(path: Path, settings: Settings) -> Path:
    """The smallest config file `cpims-adapter status` needs for ``settings``' police job."""
    job = settings.jobs["police"]
    path.write_text(
        f"""
[state]
url = "{settings.state.url}"

[departments.police]
connector = "rest"
base_url = "http://127.0.0.1:9"

[jobs.police]
department = "police"
agencies = {list(job.agencies)!r}
every_seconds = {job.every_seconds}
""".replace("'", '"'),
        encoding="utf-8",
    )
    return path


@contextmanager
def adapter_logging_kept() -> Iterator[None]:
    """A command run under CliRunner points the adapter's log handler at a stream that
    closes when the command returns; put the logger back as it was."""
    logger = logging.getLogger("adapter")
    handlers, level, propagate = list(logger.handlers), logger.level, logger.propagate
    try:
        yield
    finally:
        logger.handlers[:] = handlers
        logger.setLevel(level)
        logger.propagate = propagate


def worked_in(store: StateStore, *jobs: str, keys: bool = True) -> None:
    """Make ``store`` one the adapter has worked in: keys (unless ``keys`` is False or it has
    them) and an ok run of each of ``jobs`` an hour ago. `status` calls a store without them
    not ready (adapter/ops/status/_readiness.py)."""
    if keys:
        with store.transaction() as conn:
            has_keys = conn.execute(sa.select(keys_table.c.role).limit(1)).first() is not None
        if not has_keys:
            KeyRing.init(store, secrets.token_bytes(32), ["police"])
    started = datetime.now(UTC) - timedelta(hours=1)
    with store.transaction() as conn:
        for job in jobs:
            conn.execute(
                schema.runs.insert().values(
                    job=job,
                    owner="host-a:4242:1:abcd",
                    started_at=started,
                    finished_at=started + timedelta(seconds=30),
                    status="ok",
                    stats={},
                )
            )


@pytest.fixture(autouse=True)
def _restore_adapter_logging() -> Iterator[None]:
    with adapter_logging_kept():
        yield


@pytest.fixture
def police_world(state_url: str) -> Iterator[PoliceWorld]:
    """Two consented referrals to the police; one attempt per message before a dead letter."""
    with (
        PrimeroSimulator(cases=0) as sim,
        DepartmentSimulator("police", auth="api_key") as police,
        Desk(police.url) as desk,
    ):
        install_linked_records_form(sim.url)
        kek = secrets.token_bytes(32)
        with StateStore(state_url) as store:
            KeyRing.init(store, kek, ["health", "police", "birth_registration", "courts"])
        settings = rest_settings(
            primero_url=sim.url,
            state_url=state_url,
            kek=kek,
            department="police",
            base_url=police.url,
            agencies=[POLICE_AGENCY],
            services=[POLICE_SERVICE],
            auth="api_key",
            max_attempts=1,
        )
        yield PoliceWorld(sim, desk, settings, state_url, refer_children(sim.url, CHILDREN))
