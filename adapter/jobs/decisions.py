"""Reading supervisors' decisions for a sync run: the record-history calls and the user
directory, around the pure proof in :mod:`adapter.privacy.decisions`.

Only cases whose "Disclosure decisions" rows name the job's department cost anything: one
``record_history`` GET (filtered to the decisions field, newest first, usually one page), and
one ``GET /api/v2/users`` per approver looked up by role or group, cached for the run.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from datetime import datetime, timedelta
from typing import Any

from adapter.clock import utcnow
from adapter.config import JobSettings
from adapter.config.privacy import DecisionSettings
from adapter.errors import PrimeroAuthError, PrimeroError, PrimeroForbidden
from adapter.mappings.routing import route_referrals
from adapter.primero import PrimeroClient
from adapter.privacy.decisions import (
    DECISIONS_FIELD,
    DEPARTMENT,
    Approvers,
    PrimeroUser,
    RecordedDecision,
    approver_problem,
    prove_decisions,
    rows_of,
)

log = logging.getLogger("adapter.jobs.decisions")

_HISTORY_FORBIDDEN = (
    "Primero refused the record history (403): grant the integration role the case "
    "permission change_log, which proves who recorded a decision"
)


def approvers_of(settings: DecisionSettings) -> Approvers:
    return Approvers(
        user_names=frozenset(settings.approver_user_names),
        roles=frozenset(settings.approver_roles),
        user_groups=frozenset(settings.approver_user_groups),
    )


class DecisionReader:
    """Proves the decisions recorded on cases for one department (one per run)."""

    def __init__(
        self,
        client: PrimeroClient,
        settings: DecisionSettings,
        department: str,
        *,
        service_user: str | None,
    ) -> None:
        self.client = client
        self.department = department
        self.approvers = approvers_of(settings)
        self.lifetime = timedelta(hours=settings.lifetime_hours)
        self.service_user = service_user
        self._users: dict[str, PrimeroUser | None] = {}

    def for_cases(
        self, cases: Sequence[Mapping[str, Any]], now: datetime | None = None
    ) -> dict[str, list[RecordedDecision]]:
        """``case id → decisions for the department`` for the cases that carry any."""
        now = now or utcnow()
        wanted = [
            case
            for case in cases
            if any(
                row[DEPARTMENT] == self.department
                for row in rows_of(case.get(DECISIONS_FIELD)).values()
            )
        ]
        if not wanted:
            return {}
        if len(wanted) == 1:
            return {str(wanted[0]["id"]): self.for_case(wanted[0], now)}
        with ThreadPoolExecutor(max_workers=4) as pool:
            found = pool.map(lambda case: self.for_case(case, now), wanted)
            return {
                str(case["id"]): decisions for case, decisions in zip(wanted, found, strict=True)
            }

    def for_case(self, case: Mapping[str, Any], now: datetime) -> list[RecordedDecision]:
        """The case's decisions for the department, each proven or refused with its reason."""
        case_id = str(case["id"])
        value = case.get(DECISIONS_FIELD)
        try:
            history = list(self.client.iter_record_history(case_id, [DECISIONS_FIELD]))
            problem = ""
        except PrimeroAuthError:
            raise
        except PrimeroForbidden:
            history, problem = [], _HISTORY_FORBIDDEN
        except PrimeroError as exc:
            # Held, never released, while the proof cannot be read; retried at the next sync.
            log.warning("record history of a case could not be read: %s", type(exc).__name__)
            history = []
            problem = (
                f"the record history could not be read ({type(exc).__name__}); checked again "
                "at the next sync"
            )
        decisions = prove_decisions(
            value,
            history,
            department=self.department,
            approvers=self.approvers,
            now=now,
            directory=self.user if self.approvers.needs_directory else None,
            service_user=self.service_user,
            lifetime=self.lifetime,
        )
        if problem:
            decisions = [replace(d, problem=problem, author=None) for d in decisions]
        return decisions

    def approver_problem(self, user_name: str) -> str:
        """Why ``user_name`` may not approve for this department ("" when they may): the
        same rule as for a decision recorded in Primero."""
        return approver_problem(
            user_name,
            self.approvers,
            self.user if self.approvers.needs_directory else None,
            self.service_user,
        )

    def requesters(self, case: Mapping[str, Any], jobs: Sequence[JobSettings]) -> set[str]:
        """Who made the case's referrals to this department (``transitioned_by``): they may
        not approve them. Without a job for the department, every referral of the case."""
        transitions = self.client.list_referrals(str(case["id"]))
        if jobs:
            found = [r.transition for job in jobs for r in route_referrals(case, transitions, job)]
        else:
            found = list(transitions)
        return {
            str(t["transitioned_by"])
            for t in found
            if t is not None and isinstance(t.get("transitioned_by"), str)
        }

    def user(self, user_name: str) -> PrimeroUser | None:
        """A Primero user's role and groups (cached for the run)."""
        if user_name not in self._users:
            try:
                found = self.client.find_user(user_name)
            except PrimeroAuthError:
                raise
            except PrimeroError as exc:
                log.warning("Primero user could not be read: %s", type(exc).__name__)
                found = None
            self._users[user_name] = _user(found) if found else None
        return self._users[user_name]


def _user(raw: Mapping[str, Any]) -> PrimeroUser:
    groups = raw.get("user_group_unique_ids")
    role = raw.get("role_unique_id")
    return PrimeroUser(
        user_name=str(raw.get("user_name")),
        role=role if isinstance(role, str) else None,
        user_groups=frozenset(g for g in groups or () if isinstance(g, str)),
        disabled=raw.get("disabled") is True,
    )
