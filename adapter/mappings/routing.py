"""Which of a case's referrals are addressed to a job's department (pure; no I/O).

Primero has three ways a CPO can point a child at a department (primero-api.md §5, §6):

- a **remote referral**: a Referral transition with ``remote: true`` and the department's
  agency in ``transitioned_to_agency`` (today Primero only prints a PDF for it);
- a referral to a **gateway user** who stands for the department inside Primero;
- a **services_section row** whose implementing agency is the department, with no referral.

Each becomes a ``RoutedReferral`` with a stable ``key`` the department sees (inside the
referral identifier) — built from Primero's transition or service-row UUID, which carry no
personal data and are not the case's identifiers.

Which cases need their referrals fetched (``may_have_referrals``): Primero keeps a summary of
a case's referrals on the case itself, recomputed by ``before_save`` on every save of the case
(app/models/concerns/transitionable.rb), and every referral change saves the case
(Transition ``after_save :save_record``):

- ``referred_users`` = ``transitioned_to`` of the referrals in progress or accepted, ``uniq``.
  A remote referral has no ``transitioned_to``, so it contributes ``nil``: ``[nil]`` is still
  ``present?``, and ``referred_users_present`` (and ``_pending_present`` /
  ``_accepted_present``) are true for an open remote referral as for a local one;
- ``last_referral_rejected_at`` / ``last_referral_done_at``: the latest ``responded_at`` of
  the rejected / done referrals (accept! and reject! set it; done! needs an accepted one);
- ``Referral#perform`` marks the services_section row it names ``service_status_referred``.

So a referral in progress, accepted, rejected or done always shows on the case; a **revoked**
one shows only through its service row — the sync engine therefore also fetches for every case
it already holds a link or a hold for (a revocation must reach the department). The fields are
in the case listing only for a role holding a dashboard that filters on them
(permitted_field_service.rb PERMITTED_DASHBOARD_FILTERS: "Shared with others" gives all we
read); where the listing lacks them the answer is "cannot tell", and the engine fetches.
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


# The open-referral summary, in the forms the dashboards permit (any one suffices).
_OPEN_FLAGS = ("referred_users_present",)
_OPEN_PARTS = ("referred_users_pending_present", "referred_users_accepted_present")
_OPEN_LIST = "referred_users"
# The closed-referral summary: both are needed (a rejected or a done referral).
_CLOSED_STAMPS = ("last_referral_rejected_at", "last_referral_done_at")


def may_have_referrals(case: Mapping[str, Any]) -> bool | None:
    """Whether ``case`` (as the listing showed it) may carry a referral that is not revoked:
    False only when Primero's summary fields prove it carries none in progress, accepted,
    rejected or done and no service row was ever referred; None when the listing lacks the
    fields (the role holds no dashboard that shows them): cannot tell. See the module
    docstring for why these fields and what they miss (revoked referrals)."""
    if any(field in case for field in _OPEN_FLAGS):
        open_referral = any(bool(case.get(field)) for field in _OPEN_FLAGS)
    elif all(field in case for field in _OPEN_PARTS):
        open_referral = any(bool(case.get(field)) for field in _OPEN_PARTS)
    elif _OPEN_LIST in case:
        open_referral = bool(case.get(_OPEN_LIST))  # [None] for a remote one: present
    else:
        return None
    if not all(field in case for field in _CLOSED_STAMPS):
        return None
    closed_referral = any(case.get(field) for field in _CLOSED_STAMPS)
    referred_row = any(
        isinstance(row, Mapping) and row.get("service_status_referred")
        for row in case.get("services_section") or []
    )
    return open_referral or closed_referral or referred_row


def _addressed(transition: Mapping[str, Any], job: JobSettings) -> bool:
    if transition.get("remote"):
        return transition.get("transitioned_to_agency") in job.agencies
    return transition.get("transitioned_to") in job.gateway_users
