"""Sensitivity levels S0-S3 from Primero's protection concerns (privacy.md §6.5).

S0 general · S1 protection (neglect, child labour) · S2 high (physical abuse, child marriage,
CAAFAG) · S3 restricted (sexual violence, GBV, trafficking; FHIR labels SDV/SEX/HIV). The map is
``sensitivity.toml`` ``[concerns]``; a concern code nobody has mapped yet counts as
``unknown_concern`` (S3 by default: a new code is restricted until reviewed, the same
default-deny rule as for fields).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from adapter.privacy.policy import Level, PolicySet, level_index


@dataclass(frozen=True)
class Sensitivity:
    """A case's level and the reason, naming concern *codes* (lookup ids), never free text."""

    level: Level
    reason: str

    def at_least(self, level: str) -> bool:
        return level_index(self.level) >= level_index(level)


def protection_concerns(case: Mapping[str, Any]) -> list[str]:
    """Concern codes from ``protection_concerns`` and the detail subform's
    ``protection_concern_type`` (Primero unions the two, primero-api.md §6)."""
    found: list[str] = []
    top = case.get("protection_concerns")
    if isinstance(top, str):
        found.append(top)
    elif isinstance(top, Iterable):
        found.extend(str(c) for c in top if isinstance(c, str))
    rows = case.get("protection_concern_detail_subform_section")
    if isinstance(rows, list):
        for row in rows:
            if isinstance(row, Mapping) and isinstance(row.get("protection_concern_type"), str):
                found.append(row["protection_concern_type"])
    return sorted({c for c in found if c})


def classify(case: Mapping[str, Any], policy: PolicySet) -> Sensitivity:
    """The case's level: the highest of its concerns' levels and its module's floor.

    The reason never names a concern: it goes to the audit log, which holds no field values.
    """
    sens = policy.sensitivity
    concerns = protection_concerns(case)
    level: Level = sens.no_concern
    why = "no protection concern recorded"
    for i, concern in enumerate(concerns):
        mapped = policy.concern_levels.get(concern)
        candidate = mapped or sens.unknown_concern
        if i == 0 or level_index(candidate) > level_index(level):
            level = candidate
            why = (
                f"highest protection concern is {candidate}"
                if mapped
                else f"a concern code missing from sensitivity.toml counts as {candidate}"
            )
    module = case.get("module_id")
    floor = sens.modules.get(module) if isinstance(module, str) else None
    if floor is not None and level_index(floor) > level_index(level):
        level, why = floor, f"module '{module}' is at least {floor}"
    return Sensitivity(level, why)
