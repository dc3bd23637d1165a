"""Strong params and the record JSON schema: what a write keeps, and what makes it a 422.

Primero first filters `data` through strong params built from the role's writable fields (so
unknown and forbidden keys vanish silently, as do scalars sent where an array is expected and
vice versa), then validates what is left against a JSON schema built from the field definitions
(app/controllers/api/v2/concerns/record.rb#record_params, app/services/json_validator_service.rb,
app/services/record_json_validator_service.rb; primero-api.md §4).
"""

from __future__ import annotations

import re
from datetime import date
from typing import Any

from adapter.simulator.primero.permissions import UUID_PATTERN, Rule
from adapter.simulator.primero.timestamps import is_json_date, is_json_datetime

INT32 = (-2_147_483_648, 2_147_483_647)
_UUID = re.compile(UUID_PATTERN)


def _scalar(value: Any) -> bool:
    return value is None or isinstance(value, str | int | float | bool)


def permit(data: dict[str, Any], rules: dict[str, Rule]) -> dict[str, Any]:
    """Rails strong params: keep only permitted keys whose value has the permitted shape."""
    kept: dict[str, Any] = {}
    for key, value in data.items():
        rule = rules.get(key)
        if rule is None:
            continue
        if rule.kind == "multi_select":
            if isinstance(value, list) and all(_scalar(v) for v in value):
                kept[key] = value
        elif rule.kind == "subform":
            if isinstance(value, list):
                kept[key] = [permit(row, rule.rows) for row in value if isinstance(row, dict)]
        elif _scalar(value):
            kept[key] = value
    return kept


def _valid(rule: Rule, value: Any) -> bool:
    kind = rule.kind
    is_str = isinstance(value, str)
    if kind == "text":
        return value is None or is_str
    if kind == "string":
        return is_str
    if kind == "tick_box":
        return isinstance(value, bool)
    if kind == "boolean_or_null":
        return value is None or isinstance(value, bool)
    if kind == "numeric":
        if value is None:
            return True
        return (
            isinstance(value, int)
            and not isinstance(value, bool)
            and (INT32[0] <= value <= INT32[1])
        )
    if kind == "date":
        # Date fields take an ISO date or date-time (record_json_validator_service.rb).
        return value is None or (is_str and (is_json_date(value) or is_json_datetime(value)))
    if kind == "datetime":
        return is_str and is_json_datetime(value)
    if kind == "uuid":
        return is_str and bool(_UUID.match(value))
    if kind == "select":
        return value is None or (is_str and (rule.enum is None or value in rule.enum))
    if kind == "radio":
        if value is None:
            return True
        if isinstance(value, bool):
            return rule.booleans
        return is_str and (rule.enum is None or value in rule.enum)
    if kind == "multi_select":
        return value is None or isinstance(value, list)
    if kind == "subform":
        return value is None or isinstance(value, list)
    return True


def schema_errors(data: dict[str, Any], rules: dict[str, Rule], prefix: str = "") -> list[str]:
    """JSON pointers (json_schemer `data_pointer`) of every invalid value."""
    pointers: list[str] = []
    for key, value in data.items():
        rule = rules[key]
        pointer = f"{prefix}/{key}"
        if not _valid(rule, value):
            pointers.append(pointer)
            continue
        if rule.kind == "multi_select" and isinstance(value, list):
            for i, item in enumerate(value):
                if not isinstance(item, str) or (rule.enum is not None and item not in rule.enum):
                    pointers.append(f"{pointer}/{i}")
        elif rule.kind == "subform" and isinstance(value, list):
            for i, row in enumerate(value):
                pointers.extend(schema_errors(row, rule.rows, f"{pointer}/{i}"))
    return pointers


def date_of_birth_errors(data: dict[str, Any], today: date) -> list[tuple[str, list[str]]]:
    """Child#validate_date_of_birth: a date of birth in a future *year* is invalid."""
    value = data.get("date_of_birth")
    if not value or not isinstance(value, str):
        return []
    try:
        year = int(value[:4])
    except ValueError:
        year = today.year + 1
    if year > today.year:
        return [("date_of_birth", ["Please enter a valid date of birth for this case record"])]
    return []
