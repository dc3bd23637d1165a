"""The Primero side of a department's referral: the case's fields, possible matches with
cases already open, and small idempotent calls (fill gaps, flag once)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import date
from difflib import SequenceMatcher
from typing import Any

from adapter.jobs.inbound._messages import Intake
from adapter.primero import PrimeroClient, Record
from adapter.privacy.normalise import name_key

_MATCH_LIMIT = 5

# -- Primero side of a department's referral (pure helpers and small calls) ----------------


def case_fields(
    intake: Intake, department: str, *, module_id: str, owner: str | None, today: date
) -> dict[str, Any]:
    """The Primero case fields of a department's referral (primero-api.md §6 field names)."""
    data: dict[str, Any] = {
        "module_id": module_id,
        "status": "open",
        "registration_date": today.isoformat(),
        "protection_concerns": list(intake.concerns),
        "risk_level": intake.urgency,
        "urgent_protection_concern": "true" if intake.urgency == "high" else "false",
        # The department's own reference, searchable through Primero's `query`
        # (filterable_id_fields, primero-api.md §3), so a CPO can find the case by it.
        "other_agency_id": intake.reference,
        "other_agency_name": department,
    }
    optional: dict[str, Any] = {
        "name": intake.name,
        "sex": intake.sex,
        "date_of_birth": intake.date_of_birth,
        "age": intake.known_age(today),
        "location_current": intake.district,
    }
    data.update({k: v for k, v in optional.items() if v is not None})
    if intake.age_estimated:
        data["estimated"] = True
    if owner:
        # owned_by is a core field Primero takes on create (permitted_field_service.rb):
        # the case lands in the responsible CPO's own list.
        data["owned_by"] = owner
    return data


def possible_matches(
    client: PrimeroClient, case_id: str, intake: Intake, *, today: date
) -> list[str]:
    """``case_id_display`` of open cases that may be the same child: same sex, a similar
    name (each name searched with Primero's phonetic search, then compared here) and an age
    within a year. Display ids only: the flag must not repeat another child's name."""
    if not intake.name:
        return []
    tokens = [t for t in name_key(intake.name).split() if len(t) >= 3][:3]
    found: dict[str, Record] = {}
    for token in tokens:
        params: dict[str, Any] = {"query": token, "phonetic": True, "per": 100}
        if intake.sex:
            params["sex"] = intake.sex
        records, _ = client.list_cases(params)
        found.update({str(r.get("id")): r for r in records})
    found.pop(case_id, None)
    age = intake.known_age(today)
    matches = {
        str(r["case_id_display"])
        for r in found.values()
        if r.get("case_id_display") and _similar(intake, r, age)
    }
    return sorted(matches)[:_MATCH_LIMIT]


def _similar(intake: Intake, record: Record, age: int | None) -> bool:
    if intake.sex and record.get("sex") not in (None, intake.sex):
        return False
    other_age = record.get("age")
    if age is not None and isinstance(other_age, int) and abs(other_age - age) > 1:
        return False
    name = record.get("name")
    if not isinstance(name, str) or intake.name is None:
        return False
    mine = name_key(intake.name).split()
    theirs = name_key(name).split()
    matched = sum(1 for token in mine if any(_same_name(token, t) for t in theirs))
    return bool(mine) and matched >= min(2, len(mine))


def _same_name(a: str, b: str) -> bool:
    """Spelling variants of one name: a close match, or the same consonant skeleton
    (Ayesha/Aisha, Muhammad/Mohd — privacy.md §2.2 lists such variants)."""
    if a == b or SequenceMatcher(None, a, b).ratio() >= 0.8:
        return True
    skeleton_a, skeleton_b = _skeleton(a), _skeleton(b)
    return len(skeleton_a) >= 2 and skeleton_a == skeleton_b


def _skeleton(token: str) -> str:
    # First letter, then consonants without the ones transliteration adds or drops freely
    # (vowels, h, w, y), repeats collapsed.
    if not token:
        return ""
    out = [token[0]]
    for ch in token[1:]:
        if ch in "aeiouhwy" or ch == out[-1]:
            continue
        out.append(ch)
    return "".join(out)


def _fill_gaps(client: PrimeroClient, case_id: str, fields: Mapping[str, Any]) -> None:
    current = client.get_case(case_id, fields=list(fields))
    patch: dict[str, Any] = {}
    for key, value in fields.items():
        have = current.get(key)
        if key == "protection_concerns":
            union = sorted(set(have or []) | set(value))
            if union != sorted(have or []):
                patch[key] = union
        elif key not in ("owned_by", "module_id", "status") and have in (None, "", []):
            patch[key] = value
    if patch:
        client.update_case(case_id, patch, verify=False)


def _flag_once(client: PrimeroClient, case_id: str, messages: Iterable[str]) -> None:
    # add_flag is not idempotent: a retried delivery must not flag the case twice.
    current = {f.get("message") for f in client.list_flags(case_id) if not f.get("removed")}
    for message in messages:
        if message not in current:
            client.add_flag(case_id, message)
