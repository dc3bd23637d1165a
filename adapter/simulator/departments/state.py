"""What a simulated department system remembers: received documents, their outcomes, replays.

One ``DepartmentState`` per simulator. Every record is keyed by the adapter's referral key, so
the department holds at most one record per referral however often the adapter re-sends; every
write's first answer is kept under its ``Idempotency-Key`` and replayed for a repeat.
"""

from __future__ import annotations

import threading
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

from adapter.simulator.faults import FaultInjector

Json = dict[str, Any]
AuthMode = Literal["none", "api_key", "basic", "oauth2"]

# The simulator's synthetic credentials; none of them exists anywhere else.
API_KEY = "sim-department-api-key"
API_KEY_HEADER = "X-API-Key"
BASIC_USER = "cpims-adapter"
BASIC_PASSWORD = "sim-password"  # noqa: S105
CLIENT_ID = "cpims-adapter"
CLIENT_SECRET = "sim-client-secret"  # noqa: S105
IDEMPOTENCY_HEADER = "Idempotency-Key"
_TIME_FORMAT = "%Y-%m-%dT%H:%M:%S.%fZ"


@dataclass
class Record:
    """One referral as the department holds it."""

    referral_key: str
    record_id: str
    collection: str
    body: Json | None
    status: str
    updated_at: str
    versions: int = 1
    # What the department recorded about it: the FIR, the court order, the registration.
    outcome: Json = field(default_factory=dict)
    note: str | None = None
    reason: str | None = None
    # Listed on the changes endpoint once the department has said something about it.
    reported: bool = False

    def to_json(self) -> Json:
        return {
            "referral_key": self.referral_key,
            "record_id": self.record_id,
            "collection": self.collection,
            "body": self.body,
            "status": self.status,
            "versions": self.versions,
            "outcome": self.outcome,
            "note": self.note,
            "reason": self.reason,
            "updated_at": self.updated_at,
        }


@dataclass
class Fault:
    """The next ``count`` requests whose path starts with ``path_prefix`` fail with ``status``;
    with ``after`` the request is carried out first and only its answer is lost (a proxy
    timing out after the department committed: the adapter must re-send, and the re-send must
    not create a second record)."""

    status: int
    count: int = 1
    path_prefix: str = "/"
    retry_after: int | None = None
    after: bool = False


@dataclass
class DepartmentState:
    """Everything one simulated department system knows; guard every access with ``lock``."""

    department: str
    auth: AuthMode = "none"
    token_lifetime: int = 3600
    records: dict[str, Record] = field(default_factory=dict)
    replays: dict[str, tuple[int, Json]] = field(default_factory=dict)
    requests: list[Json] = field(default_factory=list)
    faults: list[Fault] = field(default_factory=list)
    # A fault plan (adapter/simulator/faults.py), beside the simple queued faults above.
    fault_injector: FaultInjector | None = None
    tokens: dict[str, datetime] = field(default_factory=dict)
    token_fetches: int = 0
    registry: list[Json] = field(default_factory=list)
    counters: Counter[str] = field(default_factory=Counter)
    lock: threading.RLock = field(default_factory=threading.RLock)
    _last: datetime = field(default_factory=lambda: datetime(2000, 1, 1, tzinfo=UTC))

    def now(self) -> str:
        """A timestamp strictly after every earlier one, so changes sort and page reliably."""
        moment = max(datetime.now(UTC), self._last + timedelta(microseconds=1))
        self._last = moment
        return moment.strftime(_TIME_FORMAT)

    def next_id(self, prefix: str) -> str:
        self.counters[prefix] += 1
        return f"{prefix}-{self.counters[prefix]:06d}"

    def receive(self, collection: str, referral_key: str, body: Json, prefix: str) -> Record:
        """Take a document: a new record, or a new version of the referral's one."""
        record = self.records.get(referral_key)
        if record is None:
            record = Record(
                referral_key, self.next_id(prefix), collection, body, "received", self.now()
            )
            self.records[referral_key] = record
        else:
            # A probe's record becomes the referral's: still one record per referral.
            record.body, record.versions = body, record.versions + 1
            record.collection = collection or record.collection
            record.updated_at = self.now()
        return record

    def report(self, record: Record, status: str, **changes: Any) -> Record:
        """The department's own change to a record; it appears on the changes endpoint."""
        record.status = status
        for name in ("note", "reason"):
            if name in changes:
                setattr(record, name, changes.pop(name))
        record.outcome.update(changes)
        record.updated_at = self.now()
        record.reported = True
        return record

    def changes(self, since: str | None, limit: int) -> list[Record]:
        """Reported records changed at or after ``since``, oldest first."""
        found = [
            r
            for r in self.records.values()
            if r.reported and (since is None or r.updated_at >= since)
        ]
        return sorted(found, key=lambda r: r.updated_at)[:limit]
