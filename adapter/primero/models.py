"""Small result types of the Primero client. Records themselves stay plain dicts: their fields are
configured per Primero instance (primero-api.md §6)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

Record = dict[str, Any]


@dataclass(frozen=True)
class CasePage:
    """One page fetched while listing cases incrementally.

    ``records`` holds only records not yielded before in this listing (de-duplicated by
    ``(id, last_updated_at)``); it may be empty. ``checkpoint`` is a safe lower bound to resume
    from: every record whose ``last_updated_at`` second is earlier has been yielded already
    (None until the first record is seen). Persist it per page; resuming from it re-reads at
    most the checkpoint's second, and the de-duplication downstream makes that harmless.
    """

    records: list[Record]
    total: int
    lower_bound: datetime | None
    page: int
    checkpoint: datetime | None


@dataclass(frozen=True)
class CreateResult:
    """The outcome of creating a case.

    With a client-supplied id Primero answers 204 without a body, so ``data`` is None.
    ``created`` is False when Primero answered 409: a case with this id already existed (for
    example because an earlier attempt whose answer was lost did create it).
    """

    id: str
    created: bool
    data: Record | None


@dataclass(frozen=True)
class UpdateResult:
    """The outcome of a PATCH: Primero's answer (changed fields plus id, enabled,
    last_updated_at) and the top-level field *names* Primero silently did not store."""

    data: Record
    dropped_fields: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class ReferralOutcome:
    """The result of referring one case in :meth:`PrimeroClient.refer_each`: exactly one of
    ``referral`` and ``error`` is set."""

    case_id: str
    referral: Record | None = None
    error: Exception | None = None


@dataclass(frozen=True)
class HealthStatus:
    """`GET /health`: 204 means healthy, 503 (with Retry-After on /health/:id) otherwise."""

    healthy: bool
    status: int
    retry_after: float | None = None


Permitted = Literal["yes", "no", "unknown"]


@dataclass(frozen=True)
class Capability:
    """Whether the integration account may do one thing, and how that was established."""

    permitted: Permitted
    how: str


@dataclass(frozen=True)
class Capabilities:
    """What the `check` command reports, found with read-only calls only."""

    version: str
    auth_mode: str
    user_name: str | None
    checks: dict[str, Capability]
