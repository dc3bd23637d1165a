"""The running instances of ``cpims-adapter run``: who is up, since when, last heartbeat; and
wake-up requests that bring a job's next run forward.

``status`` shows them; with several instances on one PostgreSQL store an IT officer sees at a
glance that a standby is alive. An instance is *live* while its heartbeat is recent; a killed
one simply stops beating (its leases are freed by the advisory lock it lost, not by this table).
"""

from __future__ import annotations

import socket
from dataclasses import dataclass
from datetime import datetime, timedelta

import sqlalchemy as sa

from adapter.clock import utcnow
from adapter.state import schema
from adapter.state.store import StateStore

# Three missed heartbeats (every 15 s) and an instance counts as gone.
STALE_AFTER = timedelta(seconds=45)


@dataclass(frozen=True)
class Instance:
    owner: str
    host: str
    version: str
    jobs: list[str]
    started_at: datetime
    last_seen: datetime
    stopped_at: datetime | None

    def live(self, now: datetime) -> bool:
        return self.stopped_at is None and now - self.last_seen <= STALE_AFTER


class Instances:
    """Registration and heartbeats of service instances in the state store."""

    def __init__(self, store: StateStore) -> None:
        self.store = store

    def register(self, owner: str, *, version: str, jobs: list[str]) -> None:
        now = utcnow()
        table = schema.service_instances
        with self.store.transaction() as conn:
            conn.execute(table.delete().where(table.c.owner == owner))
            conn.execute(
                table.insert().values(
                    owner=owner,
                    host=socket.gethostname(),
                    version=version,
                    jobs=jobs,
                    started_at=now,
                    last_seen=now,
                )
            )
            # Keep the table short: instances gone for a week are history.
            conn.execute(table.delete().where(table.c.last_seen < now - timedelta(days=7)))

    def beat(self, owner: str) -> None:
        table = schema.service_instances
        with self.store.transaction() as conn:
            conn.execute(table.update().where(table.c.owner == owner).values(last_seen=utcnow()))

    def stopped(self, owner: str) -> None:
        table = schema.service_instances
        now = utcnow()
        with self.store.transaction() as conn:
            conn.execute(
                table.update().where(table.c.owner == owner).values(last_seen=now, stopped_at=now)
            )

    def all(self) -> list[Instance]:
        table = schema.service_instances
        with self.store.transaction() as conn:
            rows = conn.execute(sa.select(table).order_by(table.c.started_at))
            return [Instance(**row._mapping) for row in rows]

    # -- wake-ups -------------------------------------------------------------------------

    def wake(self, jobs: list[str], reason: str) -> None:
        """Ask every instance to run ``jobs`` soon. Repeated requests collapse into one row
        per job, so a burst of Primero webhooks is one early run, not many."""
        table = schema.job_wakeups
        now = utcnow()
        with self.store.transaction() as conn:
            for job in jobs:
                updated = conn.execute(
                    table.update()
                    .where(table.c.job == job)
                    .values(requested_at=now, reason=reason[:40])
                )
                if updated.rowcount == 0:
                    try:
                        with conn.begin_nested():
                            conn.execute(
                                table.insert().values(job=job, requested_at=now, reason=reason[:40])
                            )
                    except sa.exc.IntegrityError:
                        pass  # a concurrent request inserted it: same effect

    def wakeups(self) -> dict[str, datetime]:
        """The latest wake-up request per job."""
        table = schema.job_wakeups
        with self.store.transaction() as conn:
            return {row.job: row.requested_at for row in conn.execute(sa.select(table))}
