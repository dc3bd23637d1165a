"""A sync job built from the settings: its Primero client, state store, key ring, disclosure
policy, and its department's connector and mapping (adapter/app/departments.py)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from adapter.app.departments import open_department
from adapter.config import Settings
from adapter.errors import ConfigError
from adapter.jobs.sync import SyncJob
from adapter.primero import PrimeroClient
from adapter.privacy import DisclosurePolicy, KeyRing
from adapter.retention import destroyed_cases
from adapter.state import StateStore


@contextmanager
def open_job(
    settings: Settings, name: str, *, emit: Callable[[dict[str, Any]], None] | None = None
) -> Iterator[SyncJob]:
    """Build a job and everything it needs from the configuration; close it all afterwards."""
    job = settings.job(name)
    policy = DisclosurePolicy.load(settings.privacy.policy_dir)
    if settings.primero.url is None:
        raise ConfigError(
            "primero.url is not set (config [primero] or CPIMS_ADAPTER_PRIMERO__URL)."
        )
    with (
        StateStore(settings.state.url) as store,
        PrimeroClient.from_settings(settings.primero) as client,
        open_department(settings, job.department) as (connector, mapping),
    ):
        keyring = KeyRing.open(store, settings.privacy.load_kek())
        yield SyncJob(
            settings,
            name,
            client=client,
            store=store,
            keyring=keyring,
            policy=policy,
            connector=connector,
            mapping=mapping,
            tombstones=destroyed_cases,
            emit=emit,
        )
