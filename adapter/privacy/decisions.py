"""Decisions recorded by people inside Primero, and the proof of who recorded them.

A supervisor records, on the case itself, "disclose to DEPARTMENT on basis B, legal reference,
reason" as a row of the adapter's "Disclosure decisions" subform (installed by
``cpims-adapter primero install-forms``). Anyone who may edit the case can type into that row,
so a row's *values* prove nothing about who decided. The adapter proves authorship from
Primero's own record history instead (``GET /api/v2/cases/:id/record_history``):

* Primero writes one history entry per save, with ``user_name`` = the record's
  ``last_updated_by``, which ``Record#update_properties`` sets from the signed-in user *after*
  merging the request's data (app/models/concerns/record.rb), so a request cannot choose it;
* the entry's ``record_changes`` hold ``{field: {from, to}}`` for every top-level field whose
  value changed (app/models/concerns/historical.rb ``saved_changes_to_record``): for a subform,
  the whole list of rows before and after;
* entries come newest first (``ordered_histories``: ``datetime desc``).

The author of a row is the user of the newest entry that changed the row's decision values,
and that entry's "after" must equal the row as the adapter read it. Anything else (no entry,
an entry that disagrees, an unreadable entry) proves nothing, and the decision authorises
nothing. A proven author must then be an approver (``[decisions]`` in the config: user names,
roles or user groups), not the adapter's own account, and — checked per referral by the
consent gate — not the person who made the referral.

Pure: the Primero calls are the caller's; this module reads their answers.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import Any

from adapter.privacy.consent import (
    CONSENT_REPLACING,
    MAX_OVERRIDE_LIFETIME,
    ConsentOverride,
    OverrideBasis,
)

# The subform's field (the key of its rows in the case's data) and the row's fields. Row
# fields carry a `decision_` prefix, as Primero's nested fields carry theirs (`service_`).
DECISIONS_FIELD = "disclosure_decisions_section"
DEPARTMENT = "decision_department"
BASIS = "decision_basis"
LEGAL_REFERENCE = "decision_legal_reference"
REASON = "decision_reason"
# The values a row's author decides; a change to any of them is a new decision.
DECISION_VALUES = (DEPARTMENT, BASIS, LEGAL_REFERENCE, REASON)
LEGAL_REFERENCE_MAX = 200
# A history entry dated this far after the adapter's clock is not believed.
_CLOCK_SKEW = timedelta(minutes=5)

#: What each basis means, for the form's options and the README.
BASIS_LABELS: Mapping[str, str] = {
    OverrideBasis.S3_APPROVAL: "Second-person approval of a restricted (S3) disclosure",
    OverrideBasis.MANDATORY_REPORT: "Mandatory report (without consent)",
    OverrideBasis.RISK_TO_LIFE: "Risk to life (without consent)",
    OverrideBasis.COURT_ORDER: "Court order (without consent)",
    OverrideBasis.BEST_INTERESTS: (
        "Best interests: the caregiver is the alleged perpetrator (without the caregiver's consent)"
    ),
}


@dataclass(frozen=True)
class Approvers:
    """Who may approve: any listed user name, or any user holding a listed role or group."""

    user_names: frozenset[str] = frozenset()
    roles: frozenset[str] = frozenset()
    user_groups: frozenset[str] = frozenset()

    @property
    def needs_directory(self) -> bool:
        """Whether a user's roles and groups must be read from Primero (``GET /api/v2/users``)."""
        return bool(self.roles or self.user_groups)

    def describe(self) -> str:
        """Who may approve, in words (for reasons and ``explain``)."""
        parts = []
        if self.user_names:
            parts.append("users " + ", ".join(sorted(self.user_names)))
        if self.roles:
            parts.append("holders of the role " + " or ".join(sorted(self.roles)))
        if self.user_groups:
            parts.append("members of the user group " + " or ".join(sorted(self.user_groups)))
        return "; ".join(parts) or "nobody (decisions.approver_* is empty in the config)"


@dataclass(frozen=True)
class PrimeroUser:
    """What the approver check needs of a Primero user (``GET /api/v2/users``)."""

    user_name: str
    role: str | None
    user_groups: frozenset[str]
    disabled: bool = False


# Looks a user up in Primero; None when Primero knows no such user (or the adapter may not see
# them). The caller caches it for a run.
Directory = Callable[[str], PrimeroUser | None]


def approver_problem(
    user_name: str, approvers: Approvers, directory: Directory | None, service_user: str | None
) -> str:
    """Why ``user_name`` may not approve ("" when they may)."""
    name = user_name.strip().casefold()
    if service_user and name == service_user.strip().casefold():
        return "recorded by the adapter's own Primero account, which never approves anything"
    if name in {n.casefold() for n in approvers.user_names}:
        return ""
    if approvers.needs_directory and directory is not None:
        user = directory(user_name)
        if user is None:
            return f"{user_name} is not a Primero user the adapter can see (GET /api/v2/users)"
        if user.disabled:
            return f"{user_name}'s Primero account is disabled"
        if (user.role and user.role in approvers.roles) or (
            user.user_groups & approvers.user_groups
        ):
            return ""
    return f"{user_name} is not an approver (approvers: {approvers.describe()})"


@dataclass(frozen=True)
class RecordedDecision:
    """One row of the case's "Disclosure decisions", with what the record history proves.

    ``author`` and ``recorded_at`` are None when authorship could not be proven; ``problem``
    says why the decision authorises nothing ("" when it is valid at ``now``)."""

    row_id: str
    department: str
    basis: str
    legal_reference: str
    author: str | None
    recorded_at: datetime | None
    expires_at: datetime | None
    problem: str

    @property
    def valid(self) -> bool:
        return not self.problem

    def override(self, case_id: str) -> ConsentOverride:
        """The decision as the consent gate's override (only for a valid decision)."""
        assert self.valid and self.author and self.recorded_at and self.expires_at
        return ConsentOverride(
            case_id=case_id,
            department=self.department,
            basis=OverrideBasis(self.basis),
            legal_reference=self.legal_reference,
            requested_by="",  # the referral's own requester, checked by the gate per referral
            approved_by=self.author,
            created_at=self.recorded_at,
            expires_at=self.expires_at,
            source="primero",
            source_ref=self.row_id,
        )

    def audit_entry(self) -> dict[str, Any]:
        """What the audit log keeps of a decision: who, basis, legal reference, never the
        reason's free text (it may name the child or the alleged perpetrator)."""
        return {
            "decision_refs": [f"Primero decision {self.row_id}"],
            "department": self.department,
            "consent_basis": self.basis,
            "legal_reference": self.legal_reference,
            "recorded_by": self.author,
            "recorded_at": self.recorded_at.isoformat() if self.recorded_at else None,
            "expires_at": self.expires_at.isoformat() if self.expires_at else None,
            "problem": self.problem or None,
        }

    def headline(self) -> str:
        """What the decision is: basis, department, author and time (no verdict)."""
        who = f"by {self.author}" if self.author else "author not proven"
        when = f" at {self.recorded_at:%Y-%m-%d %H:%MZ}" if self.recorded_at else ""
        return f"{self.basis or '?'} for {self.department or '?'} {who}{when}"

    def summary(self) -> str:
        """One line for a CPO or an operator: what this decision is and whether it counts."""
        head = self.headline()
        if self.problem:
            return f"{head}: refused: {self.problem}"
        assert self.expires_at is not None
        return f"{head}, expires {self.expires_at:%Y-%m-%d %H:%MZ}"


def rows_of(value: Any) -> dict[str, dict[str, str]]:
    """The decision rows of a case's ``DECISIONS_FIELD`` value: ``row id → decision values``.
    Rows without a ``unique_id`` or that are not objects are skipped (Primero gives every row
    an id when it saves, record.rb ``populate_subform_ids``)."""
    rows: dict[str, dict[str, str]] = {}
    if not isinstance(value, list):
        return rows
    for row in value:
        if isinstance(row, Mapping) and isinstance(row.get("unique_id"), str):
            rows[row["unique_id"]] = {
                name: row[name].strip() if isinstance(row.get(name), str) else ""
                for name in DECISION_VALUES
            }
    return rows


def _history_change(entry: Mapping[str, Any]) -> tuple[bool, Any, Any]:
    """``(touched, before, after)`` of the decisions field in one history entry."""
    changes = entry.get("record_changes")
    items = changes if isinstance(changes, list) else [changes]
    for item in items:
        if isinstance(item, Mapping) and DECISIONS_FIELD in item:
            change = item[DECISIONS_FIELD]
            if isinstance(change, Mapping):
                return True, change.get("from"), change.get("to")
            return True, None, _UNREADABLE
    return False, None, None


_UNREADABLE = object()


def _parse_time(value: Any) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed.astimezone(UTC) if parsed.tzinfo else None


def attribute(
    rows: Mapping[str, Mapping[str, str]], history: Iterable[Mapping[str, Any]]
) -> dict[str, tuple[str, datetime] | str]:
    """Who last set each row's decision values, and when, from history entries newest first:
    ``row id → (user_name, datetime)``, or why it cannot be said.

    Reads ``history`` only as far as needed: it may be a lazy pager."""
    found: dict[str, tuple[str, datetime] | str] = {}
    for entry in history:
        if len(found) == len(rows):
            break
        if not isinstance(entry, Mapping):
            continue
        touched, before, after = _history_change(entry)
        if not touched:
            continue
        if after is _UNREADABLE:
            for row_id in rows:
                found.setdefault(row_id, "the record history entry of this change is unreadable")
            continue
        old, new = rows_of(before), rows_of(after)
        for row_id, values in rows.items():
            if row_id in found or old.get(row_id) == new.get(row_id):
                continue
            # The newest change of this row: it must have left the row as it stands now.
            user, when = entry.get("user_name"), _parse_time(entry.get("datetime"))
            if new.get(row_id) != dict(values):
                found[row_id] = (
                    "the record history's last change of this decision does not match it as "
                    "read (edited since, or history incomplete); checked again at the next sync"
                )
            elif not isinstance(user, str) or not user.strip() or when is None:
                found[row_id] = "the record history does not name who changed it, or when"
            else:
                found[row_id] = (user.strip(), when)
    for row_id in rows:
        found.setdefault(
            row_id,
            "no record history entry shows who wrote it (the adapter's Primero role needs the "
            "case permission change_log)",
        )
    return found


def prove_decisions(
    value: Any,
    history: Iterable[Mapping[str, Any]],
    *,
    department: str,
    approvers: Approvers,
    now: datetime,
    directory: Directory | None = None,
    service_user: str | None = None,
    lifetime: timedelta = MAX_OVERRIDE_LIFETIME,
) -> list[RecordedDecision]:
    """Every decision row of ``value`` (a case's ``DECISIONS_FIELD``) addressed to
    ``department``, proven or refused. ``history`` is the case's record history, newest first
    (filtered to ``DECISIONS_FIELD`` or not)."""
    rows = {
        row_id: values
        for row_id, values in rows_of(value).items()
        if values[DEPARTMENT] == department
    }
    if not rows:
        return []
    authors = attribute(rows, history)
    return [
        _judge(row_id, values, authors[row_id], approvers, directory, service_user, now, lifetime)
        for row_id, values in rows.items()
    ]


def for_referral(
    decisions: Iterable[RecordedDecision], requester: str | None
) -> list[RecordedDecision]:
    """The decisions as they stand for one referral: a valid decision whose author made the
    referral is refused (requester ≠ approver, privacy.md §6.3; the consent gate applies the
    same rule, adapter/privacy/consent.py)."""
    who = (requester or "").strip().casefold()
    return [
        replace(
            d,
            problem=(
                f"{d.author} made the referral and approved it themselves (a second person "
                "must approve)"
            ),
        )
        if who and d.valid and (d.author or "").casefold() == who
        else d
        for d in decisions
    ]


def _judge(
    row_id: str,
    values: Mapping[str, str],
    authorship: tuple[str, datetime] | str,
    approvers: Approvers,
    directory: Directory | None,
    service_user: str | None,
    now: datetime,
    lifetime: timedelta,
) -> RecordedDecision:
    basis, reference = values[BASIS], values[LEGAL_REFERENCE]
    author, recorded_at, expires_at = None, None, None
    problems = list(_form_problems(values))
    if isinstance(authorship, str):
        problems.insert(0, authorship)
    else:
        author, recorded_at = authorship
        expires_at = recorded_at + min(lifetime, MAX_OVERRIDE_LIFETIME)
        problem = approver_problem(author, approvers, directory, service_user)
        if problem:
            problems.insert(0, problem)
        elif recorded_at > now + _CLOCK_SKEW:
            problems.append("its record history is dated in the future")
        elif now >= expires_at:
            problems.append(f"it expired at {expires_at:%Y-%m-%d %H:%MZ}; record a new one")
    return RecordedDecision(
        row_id=row_id,
        department=values[DEPARTMENT],
        basis=basis,
        legal_reference=reference[:LEGAL_REFERENCE_MAX],
        author=author,
        recorded_at=recorded_at,
        expires_at=expires_at,
        problem="; ".join(problems),
    )


def _form_problems(values: Mapping[str, str]) -> Iterator[str]:
    basis = values[BASIS]
    if basis not in set(OverrideBasis):
        yield f"the basis must be one of {', '.join(OverrideBasis)}"
        return
    if OverrideBasis(basis) in CONSENT_REPLACING:
        if not values[LEGAL_REFERENCE]:
            yield (
                f"a {basis} decision needs a legal reference (the Act and section, or the order "
                "number)"
            )
        if not values[REASON]:
            yield f"a {basis} decision needs a reason"
    if len(values[LEGAL_REFERENCE]) > LEGAL_REFERENCE_MAX:
        yield f"the legal reference is longer than {LEGAL_REFERENCE_MAX} characters"


# -- what releases a held referral, in words -------------------------------------------------

AWAITING_APPROVAL = "s3_approval"  # adapter/privacy/disclosure.py AWAITING_APPROVAL
CONSENT_REPLACING_NAMES = tuple(b for b in OverrideBasis if b in CONSENT_REPLACING)


def release_hint(
    awaiting: str, department: str, approvers: Approvers, requester: str | None
) -> dict[str, Any]:
    """Which decision would release a held referral and who may give it (``explain``)."""
    bases = (
        [str(OverrideBasis.S3_APPROVAL), *map(str, CONSENT_REPLACING_NAMES)]
        if awaiting == AWAITING_APPROVAL
        else [str(b) for b in CONSENT_REPLACING_NAMES]
    )
    hint: dict[str, Any] = {
        "awaiting": awaiting,
        "decision": {DEPARTMENT: department, BASIS: bases},
        "recorded_in": (
            f"Primero: the case's 'Disclosure decisions' form ({DECISIONS_FIELD}): "
            f"{DEPARTMENT}, {BASIS}, {LEGAL_REFERENCE} (needed unless s3_approval), {REASON}"
        ),
        "approvers": approvers.describe(),
        "not_by": requester,
        "fallback": (
            "cpims-adapter decisions add CASE --department DEPARTMENT --basis BASIS "
            "--approved-by USER (the DPO, on the server)"
        ),
    }
    if awaiting != AWAITING_APPROVAL:
        hint["or"] = "record the consent in Primero (consent_for_services, disclosure_other_orgs)"
    return hint


def held_note(
    awaiting: str,
    approvers: Approvers,
    requester: str | None,
    refused: Iterable[RecordedDecision] = (),
) -> tuple[str, str]:
    """``(status, note)`` of the "Linked department records" row that tells the CPO why a
    referral is held and what releases it. Short (the row's note holds 280 characters), no
    free text from the case, no reason a supervisor typed."""
    who = approvers.describe()
    not_by = f" Not {requester}, who made the referral." if requester else ""
    if awaiting == AWAITING_APPROVAL:
        status = "held: waiting for a second person's approval"
        note = (
            f"Restricted (S3) case. An approver ({who}) records basis s3_approval in "
            f"'Disclosure decisions'.{not_by}"
        )
    else:
        status = "held: no consent and no decision"
        note = (
            "Record consent, or an approver records mandatory_report, risk_to_life, "
            f"court_order or best_interests in 'Disclosure decisions' ({who}).{not_by}"
        )
    refusals = [d for d in refused if d.problem]
    if refusals:
        status = "held: decision refused"
        note = f"Refused {refusals[0].headline()}: {refusals[0].problem}. {note}"
    return status, note


def released_note(approvals: Iterable[Mapping[str, Any]]) -> tuple[str, str] | None:
    """``(status, note)`` once a held referral left on a person's decision; None when it left
    on consent alone."""
    used = list(approvals)
    if not used:
        return None
    parts = [
        f"{a.get('consent_basis')} approved by {a.get('approved_by')}, expires "
        f"{str(a.get('expires_at', ''))[:16]}Z"
        for a in used
    ]
    return "released: decision approved", "; ".join(parts)


__all__ = [
    "AWAITING_APPROVAL",
    "BASIS",
    "BASIS_LABELS",
    "DECISIONS_FIELD",
    "DECISION_VALUES",
    "DEPARTMENT",
    "LEGAL_REFERENCE",
    "REASON",
    "Approvers",
    "Directory",
    "PrimeroUser",
    "RecordedDecision",
    "approver_problem",
    "attribute",
    "for_referral",
    "held_note",
    "prove_decisions",
    "release_hint",
    "released_note",
    "rows_of",
]
