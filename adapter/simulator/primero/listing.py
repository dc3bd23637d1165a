"""`GET /api/v2/cases`: scope, search, filters, order, pagination, field selection.

Sources: app/controllers/api/v2/concerns/record.rb (index, record_search?), pagination.rb
(`per` default 20, capped at 1000; `page`/`per` parsed with Ruby's `to_i`),
app/services/field_selection_service.rb; primero-api.md §3.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from adapter.simulator.primero import permissions
from adapter.simulator.primero.filters import (
    SqlError,
    compile_filters,
    identifier_search,
    name_search,
)
from adapter.simulator.primero.records import present
from adapter.simulator.primero.state import Case, Json, SimulatorState, User

DEFAULT_PER = 20
MAX_PER = 1000


def ruby_to_i(value: Any, default: int) -> int:
    """`params[:x].try(:to_i)`: leading integer of the text, 0 when none; default when absent."""
    if value is None:
        return default
    if not isinstance(value, str):
        return default
    match = re.match(r"\s*([-+]?\d+)", value)
    return int(match.group(1)) if match else 0


def selected_fields(params: dict[str, Any], permitted: set[str], record_search: bool) -> set[str]:
    """FieldSelectionService: `fields=short`, a comma list, or everything permitted."""
    fields = "short" if record_search else params.get("fields")
    if fields == "short":
        wanted = set(permissions.SUMMARY_FIELDS)
    elif isinstance(fields, str) and fields:
        wanted = set(fields.split(","))
    else:
        return permitted
    return wanted & permitted


@dataclass
class Listing:
    """One computed list response and the ids of the scope it was drawn from."""

    body: Json
    scope_ids: list[str]


def list_cases(state: SimulatorState, user: User, params: dict[str, Any], path: str) -> Listing:
    """Compute the list response for a user and the (nested) query params."""
    role = state.role_of(user)
    page = ruby_to_i(params.get("page"), 1)
    per = min(ruby_to_i(params.get("per"), DEFAULT_PER), MAX_PER)
    raw_order_by, raw_order = params.get("order_by"), params.get("order")
    order_by = raw_order_by if isinstance(raw_order_by, str) else None
    order = raw_order if isinstance(raw_order, str) else "desc"
    # IdentifierSearchQuery#order_direction: anything but asc/desc/ASC/DESC sorts ascending.
    ascending = order not in ("desc", "DESC")
    query = params.get("query") if isinstance(params.get("query"), str) else None
    record_search = bool(query) and any(
        params.get(k) == "true" for k in ("id_search", "phonetic", "phone_number")
    )
    permitted = permissions.readable_fields(
        state, user, None, id_search=bool(params.get("id_search"))
    )
    selected = selected_fields(params, permitted, record_search)
    see_all = role.group_permission == "all" or (
        record_search and role.can("case", "search_owned_by_others")
    )

    ordered = state.ordered_case_ids(order_by or "created_at", ascending)
    cases = state.cases
    if see_all:
        scope_ids = ordered
    else:
        scope_ids = [cid for cid in ordered if permissions.in_scope(state, user, cases[cid])]
    try:
        predicates = compile_filters(state, params, permitted)
        if query:
            predicates.append(
                name_search(query) if params.get("phonetic") == "true" else identifier_search(query)
            )
        if page < 1 or per < 0:
            raise SqlError("OFFSET/LIMIT must not be negative")
        matched = _apply(cases, scope_ids, predicates)
        total = len(matched)
        window = matched[(page - 1) * per : (page - 1) * per + per]
    except SqlError:
        # search_records rescues ActiveRecord::StatementInvalid: empty list, status 200.
        total, window = 0, []
    data = [present(state, user, cases[cid], selected) for cid in window]
    return Listing(
        {"data": data, "metadata": {"total": total, "per": per, "page": page}}, scope_ids
    )


def _apply(cases: dict[str, Case], ids: list[str], predicates: list[Any]) -> list[str]:
    # One pass per predicate: each pass shrinks the candidates (faster than all() per record).
    for predicate in predicates:
        ids = [cid for cid in ids if predicate(cases[cid])]
    return ids
