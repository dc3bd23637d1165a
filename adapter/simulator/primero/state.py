"""In-memory store of the simulated Primero: configuration, cases, transitions, sessions.

Everything a request can touch lives on one `SimulatorState`, guarded by one re-entrant lock
(`state.lock`). Route handlers take the lock for the whole request, so a request sees and leaves
a consistent store; the webhook thread and the control API take the same lock.
"""

from __future__ import annotations

import bisect
import itertools
import queue
import threading
import uuid
from collections import Counter, deque
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from adapter.simulator.faults import FaultInjector
from adapter.simulator.primero.timestamps import iso_ms

Json = dict[str, Any]


@dataclass
class Options:
    """Tunable behaviour of one simulator instance (set via constructor or the control API)."""

    primero_version: str = "2.15.2.1"
    session_timeout_seconds: float = 3600.0
    # Devise `paranoid = true` in Primero (config/initializers/devise.rb) hides the locked state:
    # a locked account gets the same "Invalid User name or password." as a wrong password.
    paranoid: bool = True
    hostname: str = "primero.sim.local"
    webhook_timeout_seconds: float = 5.0


@dataclass
class Role:
    """A Primero role: resource permissions, form permissions (r / rw) and modules."""

    unique_id: str
    name: str
    group_permission: str  # all | self | agency | group (app/models/permission.rb)
    permissions: dict[str, set[str]]  # resource -> actions, e.g. {"case": {"read", "write"}}
    form_permissions: dict[str, str]  # form unique_id -> "r" | "rw"
    module_unique_ids: list[str]
    user_category: str | None = None  # "system" / "maintenance" users cannot receive transitions
    id: int = 0

    def can(self, resource: str, action: str) -> bool:
        """CanCan-style check: the action, or `manage`, on the resource."""
        actions = self.permissions.get(resource, set())
        return action in actions or "manage" in actions


@dataclass
class User:
    """A Primero user, with Devise `lockable` counters."""

    id: int
    user_name: str
    password: str
    role_unique_id: str
    agency_unique_id: str
    full_name: str
    position: str = ""
    location: str | None = None  # reporting_location_code
    services: list[str] = field(default_factory=list)
    user_group_unique_ids: list[str] = field(default_factory=list)
    disabled: bool = False
    email: str | None = None
    failed_attempts: int = 0
    locked_at: float | None = None
    login_failures_total: int = 0


@dataclass
class Session:
    """A native cookie session (`_app_session`) with its CSRF token."""

    session_id: str
    user_name: str
    csrf_token: str
    last_seen: float


@dataclass
class Case:
    """A case record: the `id` column plus the `data` jsonb blob and its associations."""

    id: str
    data: Json
    flags: list[Json] = field(default_factory=list)
    alerts: list[Json] = field(default_factory=list)
    # AuditLog rows with action "webhook": {resource_url, status, timestamp}
    sync_logs: list[Json] = field(default_factory=list)
    transition_ids: list[str] = field(default_factory=list)
    # RecordHistory rows, oldest first (historical.rb), and the data as last saved, to diff
    # the next save against (a shallow copy: changed values are deep-copied into the entry).
    history: list[Json] = field(default_factory=list)
    saved: Json | None = None


class SortIndex:
    """Cases ordered by one data field, kept sorted across writes (bisect insert/remove).

    Primero sorts `data->field` as jsonb when the field has no `srch_` column (primero-api.md §3);
    jsonb orders null < string < number < boolean < array < object, and a missing key (SQL NULL)
    sorts last ascending, first descending.
    """

    def __init__(self, field_name: str, cases: dict[str, Case]) -> None:
        self.field_name = field_name
        self.keys: dict[str, tuple[Any, ...]] = {
            cid: sort_key(c.data.get(field_name, _MISSING)) for cid, c in cases.items()
        }
        self.entries: list[tuple[tuple[Any, ...], str]] = sorted(
            (k, cid) for cid, k in self.keys.items()
        )

    def update(self, case: Case) -> None:
        """Re-position one case after its data changed (or insert it if new)."""
        new_key = sort_key(case.data.get(self.field_name, _MISSING))
        old_key = self.keys.get(case.id)
        if old_key == new_key:
            return
        if old_key is not None:
            pos = bisect.bisect_left(self.entries, (old_key, case.id))
            del self.entries[pos]
        bisect.insort(self.entries, (new_key, case.id))
        self.keys[case.id] = new_key

    def ids(self, ascending: bool) -> list[str]:
        """All case ids in order."""
        ordered = [cid for _, cid in self.entries]
        if not ascending:
            ordered.reverse()
        return ordered


_MISSING = object()


def sort_key(value: Any) -> tuple[Any, ...]:
    """Total order over JSON values following PostgreSQL's jsonb ordering (missing sorts last)."""
    if value is _MISSING:
        return (9, "")
    if value is None:
        return (0, "")
    if isinstance(value, str):
        return (1, value)
    if isinstance(value, bool):
        return (3, value)
    if isinstance(value, int | float):
        return (2, value)
    if isinstance(value, list):
        return (4, repr(value))
    return (5, repr(value))


@dataclass
class Fault:
    """A queued injected failure (control API `POST /_sim/faults`)."""

    status: int
    count: int
    retry_after: int | None
    path_prefix: str
    delay_seconds: float


class SimulatorState:
    """Everything the simulated Primero knows. Mutate only while holding `lock`."""

    def __init__(self, options: Options | None = None) -> None:
        self.lock = threading.RLock()
        self.options = options or Options()
        self.roles: dict[str, Role] = {}
        self.users: dict[str, User] = {}
        self.agencies: dict[str, Json] = {}
        self.locations: dict[str, Json] = {}
        self.lookups: dict[str, Json] = {}
        self.forms: dict[str, Json] = {}  # by unique_id
        self.modules: dict[str, Json] = {}
        self.cases: dict[str, Case] = {}
        self.transitions: dict[str, Json] = {}
        self.webhooks: dict[str, Json] = {}
        # Logs are bounded so a long rehearsal (Basic auth logs every request) cannot grow forever.
        self.webhook_deliveries: deque[Json] = deque(maxlen=10_000)
        # (record id, event action) for the webhook dispatcher (WebhookJob on the `api` queue)
        self.webhook_events: queue.Queue[tuple[str, str]] = queue.Queue()
        self.sessions: dict[str, Session] = {}
        self.idp_tokens: dict[str, str] = {}
        self.login_attempts: deque[Json] = deque(maxlen=10_000)
        self.rate_windows: dict[tuple[str, int], int] = {}
        self.faults: list[Fault] = []
        # A fault plan (adapter/simulator/faults.py), beside the simple queued faults above.
        self.fault_injector: FaultInjector | None = None
        self.mutate_on_list = 0
        self.config_locked = False
        self.config_lock_retry_after = 60
        self.stats: Counter[str] = Counter()
        self._sort_indexes: dict[str, SortIndex] = {}
        self._ids = itertools.count(1)
        self._last_stamp = ""

    # -- clock -----------------------------------------------------------------------------
    def now(self) -> datetime:
        """Current UTC time (naive-free, tz-aware)."""
        return datetime.now(UTC)

    def stamp(self) -> str:
        """A `last_updated_at`-style timestamp with millisecond precision, strictly increasing.

        Real Primero can hand out the same millisecond twice; we keep stamps distinct so that
        tests reason about order without ties.
        """
        value = iso_ms(self.now())
        if value <= self._last_stamp:
            last = datetime.strptime(self._last_stamp, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=UTC)
            value = iso_ms(last + timedelta(milliseconds=1))
        self._last_stamp = value
        return value

    def next_id(self) -> int:
        """Sequential integer ids (flags, users, forms ...)."""
        return next(self._ids)

    @staticmethod
    def new_uuid() -> str:
        """A random UUID string, as `gen_random_uuid()` / `SecureRandom.uuid`."""
        return str(uuid.uuid4())

    # -- cases -----------------------------------------------------------------------------
    def put_case(self, case: Case) -> None:
        """Insert or re-index a case after its data changed."""
        self.cases[case.id] = case
        for index in self._sort_indexes.values():
            index.update(case)

    def ordered_case_ids(self, field_name: str, ascending: bool) -> list[str]:
        """Case ids sorted by a data field; the index is built once and kept up to date."""
        index = self._sort_indexes.get(field_name)
        if index is None:
            index = SortIndex(field_name, self.cases)
            self._sort_indexes[field_name] = index
        return index.ids(ascending)

    def reset_indexes(self) -> None:
        """Drop the sort indexes (after bulk loads)."""
        self._sort_indexes.clear()

    def role_of(self, user: User) -> Role:
        """The user's role."""
        return self.roles[user.role_unique_id]

    def case_transitions(self, case: Case) -> list[Json]:
        """Transitions of a case, oldest first."""
        return [self.transitions[t] for t in case.transition_ids]
