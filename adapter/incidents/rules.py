"""Which security events make an incident: a table, not code (privacy.md §6.7 "breach
detection"; policy §3.4).

Each rule names an event kind, the severity of the incident it opens, how many events of that
kind (per grouping key) within ``window`` open one, and how events are grouped. While an
incident of a group is open, further events of the group join it instead of opening another
(no incident storm). A kind missing from the table opens an incident at once at ``medium``:
an event nobody classified is treated as suspicious rather than ignored (default deny).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from enum import StrEnum
from typing import Literal

from adapter.privacy.events import SecurityEventKind


class Severity(StrEnum):
    CRITICAL = "critical"
    HIGH = "high"
    MEDIUM = "medium"
    LOW = "low"


@dataclass(frozen=True)
class Rule:
    """``threshold`` events of ``kind`` within ``window`` (per group) open an incident."""

    kind: str
    severity: Severity
    threshold: int = 1
    window: timedelta = timedelta(hours=1)
    # "department": one incident per kind and department; "kind": one per kind.
    group_by: Literal["department", "kind"] = "department"
    # Whether the notice lists the department's issued case codes (its key may be exposed).
    lists_codes: bool = False
    # What the event means, for the notice.
    meaning: str = ""
    # False for conditions that persist once they happen: an event repeating, word for word,
    # one of the last closed incident of its group is that known condition seen again, and
    # opens nothing (an edited audit entry fails every later `audit verify` the same way).
    reopen_on_same_detail: bool = True


_HOUR = timedelta(hours=1)

# Registry kinds are spelled out (adapter/registry/models.py RegistryEventKind; the test suite
# checks they match) so this package imports nothing that imports adapter.config.

RULES: tuple[Rule, ...] = (
    Rule(
        SecurityEventKind.AUDIT_CHAIN_BROKEN,
        Severity.CRITICAL,
        group_by="kind",
        meaning="the hash-chained audit log was edited, reordered or truncated",
        reopen_on_same_detail=False,
    ),
    Rule(
        SecurityEventKind.KEY_ACCESS_ANOMALY,
        Severity.CRITICAL,
        lists_codes=True,
        meaning="a key could not be unwrapped with the KEK given, or encrypted data failed "
        "authentication: a wrong or stolen KEK, or altered key rows or payloads",
    ),
    Rule(
        SecurityEventKind.KEY_COMPROMISE_REPORTED,
        Severity.CRITICAL,
        lists_codes=True,
        meaning="an officer reported that a department's case-code key may be exposed "
        "(privacy.md §6.2: key compromise is a breach)",
    ),
    Rule(
        SecurityEventKind.ALLOW_LIST_VIOLATION,
        Severity.CRITICAL,
        meaning="fields not on the department's allow-list were about to leave; the "
        "disclosure was stopped by the final guard",
    ),
    Rule(
        SecurityEventKind.WRONG_DEPARTMENT,
        Severity.HIGH,
        meaning="a department presented a case code or referral key issued to another "
        "department: leaked codes, or an attempt to join records across departments",
    ),
    Rule(
        SecurityEventKind.FORGED_CODE,
        Severity.HIGH,
        meaning="a case code failed authentication: forged, altered, or made with another "
        "department's key (probing)",
    ),
    Rule(
        SecurityEventKind.MALFORMED_CODE,
        Severity.MEDIUM,
        threshold=5,
        window=_HOUR,
        meaning="malformed case codes (a defect in the department's system, or probing)",
    ),
    Rule(
        SecurityEventKind.UNKNOWN_KEY,
        Severity.MEDIUM,
        threshold=3,
        window=_HOUR,
        meaning="case codes under a key version the adapter never had (forged)",
    ),
    Rule(
        SecurityEventKind.RETIRED_KEY,
        Severity.LOW,
        threshold=20,
        window=timedelta(days=1),
        meaning="case codes under a retired key version: the department has not applied the "
        "crosswalk",
    ),
    Rule(
        SecurityEventKind.KEY_DESTROYED,
        Severity.LOW,
        threshold=20,
        window=timedelta(days=1),
        meaning="case codes under a destroyed key version",
    ),
    Rule(
        SecurityEventKind.UNKNOWN_SHORT_CODE,
        Severity.MEDIUM,
        threshold=5,
        window=_HOUR,
        meaning="short codes that pass the check symbol but were never issued (guessing)",
    ),
    Rule(
        "registry_sequential_cnics",
        Severity.HIGH,
        group_by="kind",
        meaning="an establishment checked sequential CNICs (registry enumeration); it is locked",
    ),
    Rule(
        "registry_mismatch_rate",
        Severity.MEDIUM,
        group_by="kind",
        meaning="an establishment's checks were mostly mismatches or rejects (fishing); it is "
        "locked",
    ),
    Rule(
        "registry_subject_widely_checked",
        Severity.MEDIUM,
        group_by="kind",
        meaning="one person was checked by more establishments than the limit",
    ),
    Rule(
        "registry_bad_api_key",
        Severity.MEDIUM,
        threshold=10,
        window=_HOUR,
        group_by="kind",
        meaning="registry requests with unknown API keys (credential guessing)",
    ),
    Rule(
        "registry_import_signature_invalid",
        Severity.HIGH,
        group_by="kind",
        meaning="a registry import failed signature verification (tampered or forged file)",
    ),
    Rule(
        "conviction_from_non_court",
        Severity.HIGH,
        meaning="a department that is not a court tried to register a conviction",
    ),
)

_BY_KIND = {str(rule.kind): rule for rule in RULES}


def rule_for(kind: str) -> Rule:
    """The rule for an event kind; an unlisted kind opens an incident at once (medium)."""
    found = _BY_KIND.get(kind)
    if found is not None:
        return found
    return Rule(kind, Severity.MEDIUM, meaning="an unclassified security event")
