"""Whether the state store is one the adapter has worked in (issue 13 item 10).

An emptied, new or freshly restored store holds nothing that the other checks would call a
problem, so without these ``status`` said "healthy" about a store in which nothing has ever
run. Each finding is one line, names only configuration and commands, and makes ``status``
exit 1 until the cause is gone (a job has run, the schema is upgraded, the keys are there).
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import sqlalchemy as sa

from adapter.config import DEFAULT_CONFIG_PATH, Settings
from adapter.ops.status._report import IncidentCounts, Status
from adapter.state import StateStore
from adapter.state.migrations import MIGRATIONS
from adapter.state.store import normalise_url


def missing_store_file(url: str) -> str | None:
    """A SQLite state store whose file does not exist: say so rather than create it (opening
    a SQLite URL creates an empty database, and ``status`` must change nothing)."""
    try:
        parsed = sa.engine.make_url(normalise_url(url))
    except sa.exc.ArgumentError:
        return None  # StateStore explains a malformed URL
    database = parsed.database or ""
    if parsed.get_backend_name() != "sqlite" or database in ("", ":memory:"):
        return None
    if database.startswith("file:") or Path(database).expanduser().exists():
        return None
    return (
        f"the state store {database} does not exist (state.url): a new installation runs "
        "`cpims-adapter db upgrade`; otherwise point state.url at the store or restore it "
        "(`cpims-adapter db restore`)"
    )


def schema_problem(store: StateStore) -> str | None:
    """The store's schema is missing or behind this adapter's: nothing else can be read."""
    current, latest = store.schema_version(), MIGRATIONS[-1].version
    if current == 0:
        return (
            "the state store is empty (no schema, no runs): a new or wrongly restored store. "
            "A new installation runs `cpims-adapter db upgrade`; otherwise restore the backup "
            "(`cpims-adapter db restore`)"
        )
    if current < latest:
        return (
            f"the state store's schema is at version {current}, this adapter needs {latest}: "
            "stop the service and run `cpims-adapter db upgrade`"
        )
    return None


def unready_status(settings: Settings, problem: str, now: datetime) -> Status:
    """The status of a store that cannot be read: only the reason."""
    return Status(
        generated_at=now,
        jobs=[],
        housekeeping=[],
        outbox=[],
        dead_letters=0,
        pending_reviews=0,
        overdue_reviews=0,
        keys=[],
        last_audit_verification=None,
        incidents=IncidentCounts(0, 0),
        config_file=_config_file(settings),
        store_read=False,
        problems=[problem],
    )


def judge_readiness(status: Status, settings: Settings) -> None:
    """Problems of a store nothing has run in, or of a configuration that runs nothing."""
    if not status.jobs:
        where = (
            f"in {settings.config_file}"
            if settings.config_file
            else f"(no config file was found at {DEFAULT_CONFIG_PATH}: pass --config PATH "
            "or set CPIMS_ADAPTER_CONFIG)"
        )
        status.problems.append(f"no jobs are configured {where}: nothing is synchronised")
    elif all(job.last_run is None for job in status.jobs):
        names = ", ".join(job.name for job in status.jobs)
        status.problems.append(
            f"no runs recorded for any configured job ({names}): a new, emptied or freshly "
            "restored state store; this clears once a job has run (`cpims-adapter run`)"
        )
    if not status.keys:
        status.problems.append(
            "the state store holds no keys: a new store runs `cpims-adapter keys init`; a "
            "restored one needs the backup that has its keys (new keys give every case a new "
            "case code)"
        )


def _config_file(settings: Settings) -> str | None:
    return str(settings.config_file) if settings.config_file else None
