"""List filters as Primero builds and runs them (SearchFilterService + SearchFilters::*).

Pipeline (app/services/search_filter_service.rb, primero-api.md §3):
1. Only params naming a permitted field survive (`index_params`); others are dropped silently.
2. Values are destringified (destringify.py); a range whose `from` is not a number or a time
   (e.g. `..y`) is discarded.
3. Each param becomes a filter. Fields with a typed `srch_*` column are compared on that column
   (full precision; type mismatches are SQL errors), other fields in the jsonb blob, where date
   ranges go through `TO_TIMESTAMP(.., 'YYYY-MM-DD"T"HH24:MI:SS')` on *both* sides: second
   granularity, the stored value's milliseconds and offset ignored.
4. Any SQL error makes the whole list `{data: [], total: 0}` with status 200.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import date, datetime
from typing import Any

from adapter.simulator.primero.destringify import destringify
from adapter.simulator.primero.state import Case, SimulatorState
from adapter.simulator.primero.timestamps import (
    as_datetime,
    bound_text,
    parse_date,
    parse_rails_time,
    pg_to_timestamp,
)

Predicate = Callable[[Case], bool]
_CANONICAL = re.compile(r"\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}:\d{2}")


class SqlError(Exception):
    """The query PostgreSQL would reject (`ActiveRecord::StatementInvalid`)."""


EXCLUDED = {
    "format",
    "controller",
    "action",
    "page",
    "per",
    "order",
    "order_by",
    "fields",
    "id_search",
}
# Child.filterable_id_fields: taken verbatim (not destringified) as exact ID filters.
ID_FIELDS = [
    "unique_identifier",
    "short_id",
    "case_id_display",
    "case_id",
    "client_code",
    "ration_card_no",
    "icrc_ref_no",
    "rc_id_no",
    "unhcr_id_no",
    "unhcr_individual_no",
    "un_no",
    "other_agency_id",
    "survivor_code_no",
    "national_id_no",
    "other_id_no",
    "biometrics_id",
    "family_count_no",
    "dss_id",
    "camp_id",
    "tent_number",
    "nfi_distribution_id",
    "oscar_number",
    "registry_no",
    "family_number",
]
# Typed `srch_*` columns of the cases table (db/schema.rb).
SEARCH_COLUMNS: dict[str, str] = {
    "age": "integer",
    **{
        f: "datetime"
        for f in (
            "created_at",
            "date_closure",
            "registration_date",
            "reassigned_transferred_on",
            "identified_at",
            "last_referral_done_at",
            "last_referral_rejected_at",
        )
    },
    **{
        f: "boolean"
        for f in (
            "flagged",
            "record_state",
            "consent_reporting",
            "has_incidents",
            "not_edited_by_owner",
            "referred_users_present",
            "referred_users_pending_present",
            "referred_users_accepted_present",
            "begin_safety_plan_prompt",
        )
    },
    **{
        f: "string"
        for f in (
            "sex",
            "status",
            "owned_by",
            "owned_by_agency_id",
            "module_id",
            "name",
            "location_current",
            "risk_level",
            "workflow",
            "last_updated_by",
            "client_code",
            "gender",
            "owned_by_location",
            "transfer_status",
            "identified_by",
        )
    },
    **{
        f: "string[]"
        for f in (
            "protection_concerns",
            "assigned_user_names",
            "associated_user_names",
            "owned_by_groups",
            "referred_users",
            "referred_users_pending",
            "referred_users_accepted",
            "current_alert_types",
            "next_steps",
            "protection_risks",
            "transferred_to_users",
            "transferred_to_user_groups",
        )
    },
}


# -- column values -----------------------------------------------------------------------------
def _column(name: str) -> Callable[[Case], Any]:
    """A reader of the `srch_*` column value, derived from the data blob."""
    kind = SEARCH_COLUMNS[name]
    if name == "associated_user_names":
        return lambda case: [
            case.data.get("owned_by"),
            *(case.data.get("assigned_user_names") or []),
        ]
    if kind == "boolean":
        return lambda case: case.data.get(name) in (True, "true")
    if kind == "string[]":
        return lambda case: v if isinstance(v := case.data.get(name), list) else []
    if kind == "datetime":

        def moment(case: Case) -> datetime | None:
            value = case.data.get(name)
            if not isinstance(value, str):
                return None
            parsed = parse_rails_time(value) if "T" in value else None
            day = parse_date(value[:10]) if parsed is None else None
            return as_datetime(day) if day is not None else parsed

        return moment
    return lambda case: case.data.get(name)


def _json_elements(case: Case, name: str) -> list[Any]:
    """jsonpath lax mode: an array field is unwrapped into its elements."""
    value = case.data.get(name, _ABSENT)
    if isinstance(value, list):
        return value
    return [] if value is _ABSENT else [value]


_ABSENT = object()


def _is_time(value: Any) -> bool:
    return isinstance(value, date)


# -- filter builders -----------------------------------------------------------------------------
def _equals(name: str, value: Any) -> Predicate:
    """TextValue / Value / BooleanValue."""
    kind = SEARCH_COLUMNS.get(name)
    if kind is not None:
        return _column_equals(name, kind, [value])
    if _is_time(value):
        raise SqlError("jsonpath comparison with a date literal")
    if isinstance(value, bool):
        text = "true" if value else "false"

        def boolean(case: Case) -> bool:
            elements = _json_elements(case, name)
            hit = any(e is value or e == text for e in elements)
            return hit or (not value and case.data.get(name) is None)

        return boolean
    if isinstance(value, str):
        return lambda case: any(
            e == value for e in _json_elements(case, name) if isinstance(e, str)
        )
    return lambda case: any(
        e == value and not isinstance(e, bool | str) for e in _json_elements(case, name)
    )


def _column_equals(name: str, kind: str, values: list[Any]) -> Predicate:
    """`srch_x = v`, `srch_x IN (..)` or `srch_x && ARRAY[..]` on a typed column."""
    sample = values[0]
    if kind in ("string", "string[]"):
        if not all(isinstance(v, str) for v in values):
            raise SqlError(f"operator does not exist: character varying = {type(sample)}")
        wanted = set(values)
        column = _column(name)
        if kind == "string[]":
            return lambda case: bool(wanted.intersection(column(case)))
        return lambda case: column(case) in wanted
    if kind == "integer":
        if not all(isinstance(v, int) and not isinstance(v, bool) for v in values):
            raise SqlError("invalid input syntax for type integer")
        wanted_ints = set(values)
        column = _column(name)
        return lambda case: column(case) in wanted_ints
    if kind == "boolean":
        if not all(isinstance(v, bool) for v in values):
            raise SqlError("invalid input syntax for type boolean")
        column = _column(name)
        return lambda case: column(case) in values
    if not all(_is_time(v) for v in values):
        raise SqlError("invalid input syntax for type timestamp")
    moments = {as_datetime(v) for v in values}
    column = _column(name)
    return lambda case: column(case) in moments


def _in_list(name: str, values: list[Any]) -> Predicate | None:
    """TextList / ValueList / BooleanList / RangeList."""
    if not values:
        return None
    first = values[0]
    if isinstance(first, dict):
        ranges = [_range(name, v) for v in values]
        alive = [r for r in ranges if r is not None]
        return lambda case: any(r(case) for r in alive)
    kind = SEARCH_COLUMNS.get(name)
    if kind is not None:
        return _column_equals(name, kind, values)
    if any(_is_time(v) for v in values):
        raise SqlError("jsonpath comparison with a date literal")
    preds = [_equals(name, v) for v in values]
    return lambda case: any(p(case) for p in preds)


def _range(name: str, value: dict[str, Any]) -> Predicate | None:
    """NumericRange / DateRange; a range whose `from` is neither is discarded."""
    low, high = value.get("from"), value.get("to")
    kind = SEARCH_COLUMNS.get(name)
    if isinstance(low, int) and not isinstance(low, bool):
        if kind is not None:
            if kind != "integer":
                raise SqlError("operator does not exist for numeric range")
            if high is None:
                return lambda case: False  # `srch_x <= NULL` is never true
            column = _column(name)
            return lambda case: (v := column(case)) is not None and low <= v <= high

        def numeric(case: Case) -> bool:
            return any(
                isinstance(e, int | float)
                and not isinstance(e, bool)
                and e >= low
                and (high is None or e <= high)
                for e in _json_elements(case, name)
            )

        return numeric
    if not isinstance(low, date):
        return None
    if kind == "datetime":
        lo = as_datetime(low)
        hi = as_datetime(high) if isinstance(high, date) else None
        column = _column(name)
        return lambda case: (v := column(case)) is not None and v >= lo and (hi is None or v <= hi)
    # DateRange#date_include_time?: the format follows `from` only.
    with_time = isinstance(low, datetime)
    lo_text = bound_text(low, with_time)
    hi_text = bound_text(high, with_time) if isinstance(high, date) else None

    def by_timestamp(case: Case) -> bool:
        for element in _json_elements(case, name):
            if element is None:
                continue
            if with_time and isinstance(element, str) and _CANONICAL.match(element):
                text = element[:10] + "T" + element[11:19]  # fast path, same result
                if text >= lo_text and (hi_text is None or text <= hi_text):
                    return True
                continue
            try:
                text = pg_to_timestamp(element, with_time)
            except ValueError as error:
                raise SqlError(str(error)) from error
            if text >= lo_text and (hi_text is None or text <= hi_text):
                return True
        return False

    return by_timestamp


def _location(name: str, value: Any, state: SimulatorState) -> Predicate:
    codes = value if isinstance(value, list) else [value]
    wanted = {str(c) for c in codes}

    def within(case: Case) -> bool:
        location = state.locations.get(case.data.get(name) or "")
        return location is not None and bool(wanted.intersection(location["hierarchy"]))

    return within


def build_filter(state: SimulatorState, key: str, value: Any) -> Predicate | None:
    """SearchFilterService#build_filter for one destringified param."""
    if key == "id":
        ids = {str(v) for v in value} if isinstance(value, list) else {str(value)}
        return lambda case: case.id in ids
    if key == "or":
        if not isinstance(value, dict):
            return None
        parts = [p for k, v in value.items() if (p := build_filter(state, k, v)) is not None]
        return lambda case: any(p(case) for p in parts)
    if key == "not":
        if not isinstance(value, dict) or not value:
            return None
        inner_key, inner_value = next(iter(value.items()))
        inner = build_filter(state, inner_key, inner_value)
        return None if inner is None else (lambda case: not inner(case))
    if key.startswith("loc:"):
        return _location(key.removeprefix("loc:"), value, state)
    if isinstance(value, dict):
        return _range(key, value)
    if isinstance(value, list):
        return _in_list(key, value)
    if value is None:
        return None
    return _equals(key, value)


def filter_params(params: dict[str, Any], permitted: set[str]) -> dict[str, Any]:
    """index_params + select_filter_params: permitted, non-excluded, non-ID keys, destringified."""
    selected: dict[str, Any] = {}
    for key, value in params.items():
        name = key.removeprefix("loc:")
        if name not in permitted or key in EXCLUDED or key in ID_FIELDS:
            continue
        if isinstance(value, list) and not key.startswith("loc:"):
            continue  # a scalar permit drops array values
        selected[key] = destringify(value)
    return selected


def id_params(params: dict[str, Any], permitted: set[str]) -> dict[str, Any]:
    """select_id_params: permitted ID fields, kept as raw strings (exact match)."""
    return {
        k: v for k, v in params.items() if k in ID_FIELDS and k in permitted and isinstance(v, str)
    }


def compile_filters(
    state: SimulatorState, params: dict[str, Any], permitted: set[str]
) -> list[Predicate]:
    """All filter predicates of a list request (raises SqlError like the database would)."""
    predicates: list[Predicate] = []
    for key, value in filter_params(params, permitted).items():
        predicate = build_filter(state, key, value)
        if predicate is not None:
            predicates.append(predicate)
    for key, value in id_params(params, permitted).items():
        predicates.append(_exact_id(key, value))
    return predicates


def _exact_id(name: str, value: str) -> Predicate:
    """IdFilter on an ID field: exact text match."""
    return lambda case: case.data.get(name) == value


def identifier_search(query: str) -> Predicate:
    """IdentifierSearchQuery: `ILIKE %query%` over the ID fields."""
    needle = query.lower()

    def matches(case: Case) -> bool:
        data = case.data
        for name in ID_FIELDS:
            value = data.get(name)
            if isinstance(value, str) and needle in value.lower():
                return True
        return False

    return matches


def name_search(query: str) -> Predicate:
    """`phonetic=true`: approximated by a case-insensitive match on the name fields."""
    needle = query.lower()
    fields = ("name", "name_first", "name_middle", "name_last", "name_nickname", "name_other")
    return lambda case: any(
        isinstance(case.data.get(f), str) and needle in case.data[f].lower() for f in fields
    )
