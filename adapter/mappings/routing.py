"""Which of a case's referrals are addressed to a job's department (pure; no I/O).

Primero has three ways a CPO can point a child at a department (primero-api.md §5, §6):

- a **remote referral**: a Referral transition with ``remote: true`` and the department's
  agency in ``transitioned_to_agency`` (today Primero only prints a PDF for it);
- a referral to a **gateway user** who stands for the department inside Primero;
- a **services_section row** whose implementing agency is the department, with no referral.

Each becomes a ``RoutedReferral`` with a stable ``key`` the department sees (inside the
referral identifier) — built from Primero's transition or service-row UUID, which carry no
personal data and are not the case's identifiers.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from adapter.config import JobSettings

# Referral statuses after which nothing more is sent (primero-api.md §5.3).
CLOSED_STATUSES = frozenset({"revoked", "rejected", "done"})


@dataclass(frozen=True)
class RoutedReferral:
    """One referral of one case to the job's department."""

    key: str
    source: str  # "referral" | "service"
    referral_id: str | None
    service_row_id: str | None
    service_type: str | None
    urgency: str | None
    primero_status: str | None
    transition: Mapping[str, Any] | None

    @property
    def revoked(self) -> bool:
        return self.primero_status == "revoked"


def route_referrals(
    case: Mapping[str, Any], transitions: Iterable[Mapping[str, Any]], job: JobSettings
) -> list[RoutedReferral]:
    """The referrals of ``case`` addressed to ``job``'s department, in a stable order."""
    rows = {
        str(row["unique_id"]): row
        for row in case.get("services_section") or []
        if isinstance(row, Mapping) and row.get("unique_id")
    }
    routed: list[RoutedReferral] = []
    claimed_rows: set[str] = set()
    for transition in transitions:
        if transition.get("type", "Referral") != "Referral" or not transition.get("id"):
            continue
        row_id = transition.get("service_record_id")
        row = rows.get(str(row_id)) if row_id else None
        if row_id:
            claimed_rows.add(str(row_id))
        if not _addressed(transition, job):
            continue
        service = transition.get("service") or (row or {}).get("service_type")
        if job.services and service and service not in job.services:
            continue
        routed.append(
            RoutedReferral(
                key=f"ref-{transition['id']}",
                source="referral",
                referral_id=str(transition["id"]),
                service_row_id=str(row_id) if row_id else None,
                service_type=service,
                urgency=(row or {}).get("service_response_timeframe"),
                primero_status=transition.get("status"),
                transition=transition,
            )
        )
    for row_id, row in rows.items():
        if row_id in claimed_rows or row.get("service_status_referred"):
            continue  # a referral carries it (possibly to another department)
        if row.get("service_implementing_agency") not in job.agencies:
            continue
        service = row.get("service_type")
        if job.services and service not in job.services:
            continue
        routed.append(
            RoutedReferral(
                key=f"svc-{row_id}",
                source="service",
                referral_id=None,
                service_row_id=row_id,
                service_type=service,
                urgency=row.get("service_response_timeframe"),
                primero_status=None,
                transition=None,
            )
        )
    return sorted(routed, key=lambda r: r.key)


def _addressed(transition: Mapping[str, Any], job: JobSettings) -> bool:
    if transition.get("remote"):
        return transition.get("transitioned_to_agency") in job.agencies
    return transition.get("transitioned_to") in job.gateway_users
