"""The consent gate: may this case go to this department for this purpose, and on what basis?

A decision is ``(allowed, reason)`` in the style of responses' matchers: the reason explains
itself and is written to the audit log. Inputs (privacy.md §5, §6.3; primero-api.md §5.1, §6):

* Primero's flags. CP module: ``consent_for_services`` **and** ``disclosure_other_orgs``; GBV
  module: ``consent_for_services``. Only the boolean ``True`` counts; missing, null, a string or
  any other module means no consent (Primero's own ``consent_given?`` is fail-closed too).
* The adapter's recorded overrides: basis mandatory report, risk to life or court order, a
  legal reference, requester ≠ approver, expiry at most 72 hours after recording. An override
  covers one case and one department (and optionally one purpose), so an override for health
  never authorises police.
* The referral's ``consent_overridden``. Primero accepts it from anyone allowed to refer,
  without basis or second approver, so on its own it authorises nothing: the reason tells the
  caseworker to record an adapter override.

An ``s3_approval`` record is not an override: it is the second person's approval §6.5 requires
for an identified S3 disclosure made under consent.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from adapter.privacy._tables import consent_overrides
from adapter.privacy.errors import OverrideRejected

CP_MODULE = "primeromodule-cp"
GBV_MODULE = "primeromodule-gbv"
MAX_OVERRIDE_LIFETIME = timedelta(hours=72)


class OverrideBasis(StrEnum):
    MANDATORY_REPORT = "mandatory_report"
    RISK_TO_LIFE = "risk_to_life"
    COURT_ORDER = "court_order"
    # privacy.md §6.3: when the caregiver is the alleged perpetrator, consent comes from the
    # best-interests decision of caseworker plus supervisor, recorded as an override.
    BEST_INTERESTS = "best_interests"
    S3_APPROVAL = "s3_approval"


CONSENT_REPLACING = frozenset(
    {
        OverrideBasis.MANDATORY_REPORT,
        OverrideBasis.RISK_TO_LIFE,
        OverrideBasis.COURT_ORDER,
        OverrideBasis.BEST_INTERESTS,
    }
)


@dataclass(frozen=True)
class ConsentOverride:
    """An override (or S3 approval). ``reason`` is the caseworker's free text: it stays in the
    table and is never logged, audited or put in a message.

    ``source`` is "adapter" for one recorded with ``cpims-adapter decisions add`` (stored in
    the adapter's table, ``id`` set) or "primero" for a decision a supervisor recorded in the
    case's "Disclosure decisions" form whose author the record history proved
    (:mod:`adapter.privacy.decisions`; ``source_ref`` is the form row's id). A Primero decision
    names no requester: the gate compares its approver with each referral's requester."""

    case_id: str
    department: str
    basis: OverrideBasis
    legal_reference: str
    requested_by: str
    approved_by: str
    created_at: datetime
    expires_at: datetime
    purpose: str | None = None
    reason: str = field(default="", repr=False)
    id: int | None = None
    revoked_at: datetime | None = None
    source: str = "adapter"
    source_ref: str | None = None

    @property
    def label(self) -> str:
        """How reasons and the audit name this record: ``#12`` or ``Primero decision <row>``."""
        return f"#{self.id}" if self.source == "adapter" else f"Primero decision {self.source_ref}"

    def problems(self) -> list[str]:
        """Why this record cannot authorise anything (empty when it is well formed)."""
        out = []
        if self.basis in CONSENT_REPLACING and not self.legal_reference.strip():
            out.append(
                f"a {self.basis} override needs a legal reference (the Act and section, or the "
                "order number)"
            )
        if len(self.legal_reference) > 200:
            out.append("the legal reference is longer than 200 characters")
        requester = self.requested_by.strip().casefold()
        approver = self.approved_by.strip().casefold()
        if not approver or (not requester and self.source == "adapter"):
            out.append("both the requester and the approver must be named")
        elif requester == approver:
            out.append(
                "the requester approved their own override: a second person (supervisor) must "
                "approve it (privacy.md §6.3)"
            )
        lifetime = self.expires_at - self.created_at
        if lifetime <= timedelta(0):
            out.append("it expires before it was recorded")
        elif lifetime > MAX_OVERRIDE_LIFETIME:
            out.append("it runs longer than 72 hours; record a new one when it ends")
        return out

    def applies(self, case_id: str, department: str, purpose: str, now: datetime) -> bool:
        """Whether this record covers the disclosure at ``now`` (and is well formed)."""
        return (
            self.case_id == case_id
            and self.department == department
            and (self.purpose is None or self.purpose == purpose)
            and self.revoked_at is None
            and self.created_at <= now < self.expires_at
            and not self.problems()
        )


@dataclass(frozen=True)
class ConsentDecision:
    """The gate's answer. ``bases`` are every basis that holds: "consent" and/or the bases of
    applicable overrides (a court order may hold beside consent); ``basis`` is the first of them,
    or "none" when refused.

    ``withdrawn``: Primero explicitly records consent as refused (a ``False`` flag), which is
    what triggers a deletion request if the department already holds the case. ``approved``:
    a second person approved (an override or an S3 approval), as §6.5 needs for S3.
    """

    allowed: bool
    reason: str
    basis: str
    withdrawn: bool = False
    approved: bool = False
    override_id: int | None = None
    bases: tuple[str, ...] = ()
    # The overrides and approvals this decision rests on (for the audit: who approved).
    used: tuple[ConsentOverride, ...] = ()

    def __iter__(self) -> Iterator[Any]:
        # ``ok, reason = check_consent(...)``, as responses' matchers return.
        yield self.allowed
        yield self.reason


def check_consent(
    case: Mapping[str, Any],
    department: str,
    purpose: str,
    *,
    now: datetime,
    overrides: Iterable[ConsentOverride] = (),
    referral: Mapping[str, Any] | None = None,
) -> ConsentDecision:
    """Decide consent for one disclosure (pure; see the module docstring for the rules)."""
    case_id = str(case.get("id") or "")
    applicable = [o for o in overrides if o.applies(case_id, department, purpose, now)]
    requester = _requester(referral)
    # privacy.md §6.3: requester ≠ approver. The requester of a disclosure is whoever made the
    # referral in Primero (``transitioned_by``), whatever a record says it was.
    own = [o for o in applicable if requester and o.approved_by.strip().casefold() == requester]
    valid = [o for o in applicable if o not in own]
    replacing = [o for o in valid if o.basis in CONSENT_REPLACING]
    approved = bool(valid)
    given, why, withdrawn = _primero_consent(case)
    chosen = min(replacing, key=lambda o: o.expires_at) if replacing else None
    bases = (("consent",) if given else ()) + tuple(sorted({str(o.basis) for o in replacing}))
    if chosen is not None:
        why += (
            f"; {'also ' if given else ''}under {_named(chosen)} ({chosen.basis}, approved by "
            f"{chosen.approved_by}, expires {chosen.expires_at:%Y-%m-%dT%H:%MZ})"
        )
    if own:
        why += (
            f"; {_named(own[0])} is refused: {own[0].approved_by} made the referral and "
            "approved it themselves (a second person must approve, privacy.md §6.3)"
        )
    if bases:
        return ConsentDecision(
            True,
            why,
            bases[0],
            withdrawn=withdrawn and not given,
            approved=approved,
            override_id=chosen.id if chosen else None,
            bases=bases,
            used=tuple(valid),
        )
    if referral is not None and referral.get("consent_overridden") is True:
        why += (
            "; the Primero referral says consent_overridden, but Primero accepts that flag from "
            "any referring user without a basis or a second approver (primero-api.md §5.1): "
            "record an override in the adapter (basis, legal reference, approver)"
        )
    return ConsentDecision(False, why, "none", withdrawn=withdrawn, approved=approved, bases=())


def _requester(referral: Mapping[str, Any] | None) -> str:
    by = referral.get("transitioned_by") if referral is not None else None
    return by.strip().casefold() if isinstance(by, str) else ""


def _named(override: ConsentOverride) -> str:
    return f"adapter override {override.label}" if override.source == "adapter" else override.label


def _primero_consent(case: Mapping[str, Any]) -> tuple[bool, str, bool]:
    module = case.get("module_id")
    services = case.get("consent_for_services")
    other_orgs = case.get("disclosure_other_orgs")
    if module == GBV_MODULE:
        flags = {"consent_for_services": services}
    elif module == CP_MODULE:
        flags = {"consent_for_services": services, "disclosure_other_orgs": other_orgs}
    else:
        # Name the module only when it has Primero's shape: reasons go to the audit log.
        known = isinstance(module, str) and re.fullmatch(r"primeromodule-[a-z0-9_]{1,30}", module)
        shown = f"module '{module}'" if known else "a missing or unrecognised module"
        return (
            False,
            f"no consent rule for {shown} (only CP and GBV cases can be shared): default deny",
            False,
        )
    refused = [name for name, value in flags.items() if value is False or value == "false"]
    missing = [name for name, value in flags.items() if value is not True and name not in refused]
    if refused:
        return False, f"consent refused or withdrawn: {', '.join(refused)} is false", True
    if missing:
        return (
            False,
            f"no consent recorded: {', '.join(missing)} is not true (missing counts as no)",
            False,
        )
    return True, f"consent: Primero records {' and '.join(flags)} ({module})", False


# --- the overrides table -------------------------------------------------------------------


def insert_override(conn: Connection, override: ConsentOverride) -> ConsentOverride:
    """Validate and store an override; returns it with its id. Raises OverrideRejected."""
    problems = override.problems()
    if problems:
        raise OverrideRejected("override rejected: " + "; ".join(problems) + ".")
    result = conn.execute(
        consent_overrides.insert().values(
            case_id=override.case_id,
            department=override.department,
            purpose=override.purpose,
            basis=str(override.basis),
            legal_reference=override.legal_reference.strip(),
            reason=override.reason,
            requested_by=override.requested_by.strip(),
            approved_by=override.approved_by.strip(),
            created_at=override.created_at,
            expires_at=override.expires_at,
        )
    )
    key = result.inserted_primary_key
    assert key is not None
    return replace(override, id=int(key[0]))


def load_overrides(conn: Connection, case_id: str) -> list[ConsentOverride]:
    """Every override recorded for a case (the gate itself checks which apply)."""
    rows = conn.execute(
        sa.select(consent_overrides)
        .where(consent_overrides.c.case_id == case_id)
        .order_by(consent_overrides.c.id)
    )
    return [
        ConsentOverride(
            case_id=row.case_id,
            department=row.department,
            basis=OverrideBasis(row.basis),
            legal_reference=row.legal_reference,
            requested_by=row.requested_by,
            approved_by=row.approved_by,
            created_at=row.created_at,
            expires_at=row.expires_at,
            purpose=row.purpose,
            reason=row.reason,
            id=int(row.id),
            revoked_at=row.revoked_at,
        )
        for row in rows
    ]


def revoke_override(conn: Connection, override_id: int, now: datetime) -> bool:
    """End an override early; False when there was no such active override."""
    result = conn.execute(
        consent_overrides.update()
        .where(consent_overrides.c.id == override_id, consent_overrides.c.revoked_at.is_(None))
        .values(revoked_at=now)
    )
    return result.rowcount == 1


def list_overrides(
    conn: Connection, *, case_id: str | None = None, department: str | None = None
) -> list[ConsentOverride]:
    """Overrides recorded in the adapter, newest first, optionally for one case or department
    (``cpims-adapter decisions list``)."""
    query = sa.select(consent_overrides.c.case_id).distinct()
    if case_id is not None:
        query = query.where(consent_overrides.c.case_id == case_id)
    if department is not None:
        query = query.where(consent_overrides.c.department == department)
    found = [o for cid in conn.execute(query).scalars() for o in load_overrides(conn, cid)]
    if department is not None:
        found = [o for o in found if o.department == department]
    return sorted(found, key=lambda o: o.id or 0, reverse=True)
