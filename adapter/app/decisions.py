"""Decisions by people, recorded on the server, and ``explain`` for one case: the rules the
CLI (``cpims-adapter decisions add``, ``explain``) and the web console's DPO page share.

A decision recorded here gets the checks a Primero decision gets: the department is
configured, an override of consent has a reason, the approver is one of ``[decisions]``'s
approvers and not the adapter's own account, a second person (not who made the referral)
approves, and it lasts at most ``lifetime_hours``. Errors name the option the CLI takes.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from adapter.clock import utcnow
from adapter.config import Settings
from adapter.errors import ConfigError
from adapter.jobs.decisions import DecisionReader
from adapter.mappings.routing import RoutedReferral, route_referrals
from adapter.primero import PrimeroClient
from adapter.privacy import (
    ConsentOverride,
    DisclosureGate,
    DisclosurePolicy,
    KeyRing,
    OverrideBasis,
    OverrideRejected,
    Stage,
)
from adapter.privacy.consent import CONSENT_REPLACING
from adapter.privacy.decisions import RecordedDecision, for_referral, release_hint
from adapter.state import StateStore


@dataclass(frozen=True)
class DecisionRequest:
    """A decision taken outside Primero, as the DPO enters it."""

    case: str  # Primero's id, short_id or case_id_display
    department: str
    basis: OverrideBasis
    approved_by: str
    legal_reference: str = ""
    reason: str = ""
    requested_by: str | None = None
    purpose: str | None = None
    hours: float | None = None


def record_decision(
    settings: Settings,
    store: StateStore,
    keyring: KeyRing,
    client: PrimeroClient,
    request: DecisionRequest,
    *,
    now: datetime | None = None,
) -> ConsentOverride:
    """Check ``request`` as a Primero decision is checked, then store it (audited)."""
    department = request.department
    if department not in settings.departments:
        known = ", ".join(sorted(settings.departments)) or "none"
        raise ConfigError(f"--department '{department}' is not configured (known: {known}).")
    if request.basis in CONSENT_REPLACING and not request.reason:
        raise ConfigError(
            f"--reason (or --reason-file): a {request.basis} decision needs a reason."
        )
    limit = settings.decisions.lifetime_hours
    hours = request.hours
    if hours is not None and not 0 < hours <= limit:
        raise ConfigError(f"--hours must be more than 0 and at most {limit:g} (decisions).")
    jobs = [j for j in settings.jobs.values() if j.department == department]
    reader = DecisionReader(
        client, settings.decisions, department, service_user=settings.primero.username
    )
    record = client.get_case(client.resolve_case_id(request.case))
    case_id = str(record["id"])
    problem = reader.approver_problem(request.approved_by)
    if problem:
        raise OverrideRejected(f"--approved-by: {problem}.")
    requesters = reader.requesters(record, jobs)
    if request.requested_by:
        requesters.add(request.requested_by)
    if request.approved_by.strip().casefold() in {r.casefold() for r in requesters}:
        raise OverrideRejected(
            f"--approved-by: {request.approved_by} made the referral; a second person must approve."
        )
    now = now or utcnow()
    override = ConsentOverride(
        case_id=case_id,
        department=department,
        basis=request.basis,
        legal_reference=request.legal_reference,
        requested_by=request.requested_by or ", ".join(sorted(requesters)) or "unknown",
        approved_by=request.approved_by,
        created_at=now,
        expires_at=now + timedelta(hours=hours if hours is not None else limit),
        purpose=request.purpose,
        reason=request.reason,
    )
    gate = DisclosureGate(store, DisclosurePolicy.load(settings.privacy.policy_dir), keyring)
    return gate.record_override(override, now=now)


def revoke_decision(
    settings: Settings, store: StateStore, keyring: KeyRing, decision_id: int
) -> bool:
    """End a decision recorded on the server before it expires (audited); False if no
    active decision has that id."""
    gate = DisclosureGate(store, DisclosurePolicy.load(settings.privacy.policy_dir), keyring)
    return gate.revoke_override(decision_id)


def explain_case(
    settings: Settings,
    store: StateStore,
    keyring: KeyRing,
    client: PrimeroClient,
    record: Mapping[str, Any],
    department: str,
    purpose: str = "referral",
) -> dict[str, Any]:
    """For one case as Primero gives it (``client.get_case``): what would be sent to
    ``department`` and why each field is in or out (excluded fields named, never shown), and
    for each of its referrals that is held, which decision would release it and who may give
    it. Nothing is sent or recorded."""
    jobs = [job for job in settings.jobs.values() if job.department == department]
    case_id = str(record["id"])
    transitions = client.list_referrals(case_id)
    routed = [ref for job in jobs for ref in route_referrals(record, transitions, job)]
    reader = DecisionReader(
        client, settings.decisions, department, service_user=settings.primero.username
    )
    recorded = reader.for_cases([record]).get(case_id, [])
    gate = DisclosureGate(store, DisclosurePolicy.load(settings.privacy.policy_dir), keyring)
    overrides = [
        *gate.overrides(case_id),
        *(d.override(case_id) for d in recorded if d.valid),
    ]
    first = routed[0].transition if routed else None
    doc = gate.explain(record, department, purpose, overrides=overrides, referral=first).to_dict()
    doc["referrals"] = [
        _referral_view(gate, record, department, purpose, ref, overrides, recorded, reader)
        for ref in routed
    ]
    doc["decisions"] = [d.summary() for d in recorded]
    return doc


def _referral_view(
    gate: DisclosureGate,
    case: Mapping[str, Any],
    department: str,
    purpose: str,
    ref: RoutedReferral,
    overrides: list[ConsentOverride],
    recorded: list[RecordedDecision],
    reader: DecisionReader,
) -> dict[str, Any]:
    """One referral's verdict and, when a person's decision would release it, which and by
    whom (DEVELOPERS: a held referral is never silent)."""
    requester = ref.transition.get("transitioned_by") if ref.transition else None
    requester = requester if isinstance(requester, str) else None
    decision = gate.policy.decide(
        case,
        department,
        purpose,
        Stage.IDENTIFIED,
        codes=gate.keyring,
        overrides=overrides,
        referral=ref.transition,
    )
    view: dict[str, Any] = {
        "referral_id": ref.referral_id,
        "requested_by": requester,
        "allowed": decision.allowed,
        "reason": decision.reason,
        "decisions": [d.summary() for d in for_referral(recorded, requester)],
    }
    if decision.awaiting:
        view["release"] = release_hint(decision.awaiting, department, reader.approvers, requester)
    return view
