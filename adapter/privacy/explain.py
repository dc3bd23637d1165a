"""``cpims-adapter explain CASE_ID --department D``: why each field would or would not leave.

The lead's CLI fetches the case from Primero and prints :meth:`Explanation.to_dict` (or a rich
table). Withheld fields are listed by name and reason only; sent fields show the value exactly
as it would be sent (pseudonymised: the case code, reduced dates, districts). Nothing is
recorded: an explanation is a preview, not a disclosure.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any

from adapter.privacy.consent import ConsentOverride
from adapter.privacy.disclosure import CaseCoder, Disclosure, DisclosurePolicy, Stage
from adapter.privacy.policy import CASE_CODE_KEY
from adapter.privacy.probe import Population


@dataclass(frozen=True)
class FieldExplanation:
    """One field: sent or not, why, and (only if sent) the value exactly as it leaves."""

    field: str
    sent: bool
    reason: str
    value: Any = None  # only for sent fields, as sent


@dataclass(frozen=True)
class Explanation:
    """The whole answer of ``explain``; ``to_dict`` is what the CLI prints as JSON."""

    department: str
    purpose: str
    stage: str
    allowed: bool
    reason: str
    sensitivity: str
    sensitivity_reason: str
    consent_basis: str
    case_code: str | None
    fields: tuple[FieldExplanation, ...]

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def explain(
    policy: DisclosurePolicy,
    case: Mapping[str, Any],
    department: str,
    purpose: str,
    *,
    codes: CaseCoder,
    stage: Stage = Stage.IDENTIFIED,
    overrides: Iterable[ConsentOverride] = (),
    referral: Mapping[str, Any] | None = None,
    now: datetime | None = None,
    population: Population | None = None,
) -> Explanation:
    """Run the real decision and explain it field by field (sent fields first)."""
    decision = policy.decide(
        case,
        department,
        purpose,
        stage,
        codes=codes,
        overrides=overrides,
        referral=referral,
        now=now,
        population=population,
    )
    return from_disclosure(decision)


def from_disclosure(decision: Disclosure) -> Explanation:
    """The explanation of a decision already made."""
    rows: list[FieldExplanation] = []
    if decision.case_code is not None:
        rows.append(
            FieldExplanation(
                CASE_CODE_KEY, True, decision.field_reasons[CASE_CODE_KEY], decision.case_code
            )
        )
    if decision.stage is Stage.PROBE and decision.allowed:
        rows.append(FieldExplanation("probe", True, decision.reason, decision.payload))
    for name in decision.fields_out:
        rows.append(
            FieldExplanation(
                name,
                True,
                decision.field_reasons.get(name, "sent"),
                _value_at(decision.payload, name) if decision.stage is Stage.IDENTIFIED else None,
            )
        )
    for name in decision.fields_withheld:
        rows.append(FieldExplanation(name, False, decision.field_reasons.get(name, "withheld")))
    return Explanation(
        department=decision.department,
        purpose=decision.purpose,
        stage=str(decision.stage),
        allowed=decision.allowed,
        reason=decision.reason,
        sensitivity=decision.sensitivity,
        sensitivity_reason=decision.sensitivity_reason,
        consent_basis=decision.consent_basis,
        case_code=decision.case_code,
        fields=tuple(rows),
    )


def _value_at(payload: Mapping[str, Any], path: str) -> Any:
    if "." not in path:
        return payload.get(path)
    form, sub = path.split(".", 1)
    rows = payload.get(form)
    if isinstance(rows, Mapping):
        return rows.get(sub)
    if isinstance(rows, list):
        return [row[sub] for row in rows if isinstance(row, Mapping) and sub in row]
    return None
