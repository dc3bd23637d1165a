"""Case endpoints: list, show, create, update, disable (children controller; §3-4)."""

from __future__ import annotations

import random

from fastapi import APIRouter, Request, Response

from adapter.simulator.primero import permissions, records
from adapter.simulator.primero.destringify import nested_params
from adapter.simulator.primero.endpoint import (
    guard,
    json_response,
    query_pairs,
    read_json,
    require_data,
    sim_state,
)
from adapter.simulator.primero.errors import forbidden
from adapter.simulator.primero.listing import list_cases, selected_fields
from adapter.simulator.primero.records import find_case, require
from adapter.simulator.primero.state import SimulatorState

router = APIRouter()
CASES = "/api/v2/cases"


def touch_cases(state: SimulatorState, ids: list[str]) -> list[str]:
    """Bump `last_updated_at` as an edit by the owner would (also fires `case.update`)."""
    for case_id in ids:
        case = state.cases[case_id]
        case.data["last_updated_by"] = case.data.get("owned_by")
        records.save_case(state, case, "update")
    return ids


@router.get(CASES)
async def index(request: Request) -> Response:
    """GET /api/v2/cases."""
    state = sim_state(request)
    params = nested_params(query_pairs(request))
    with state.lock:
        user = guard(state, request).user
        require(state.role_of(user).can("case", "read"), forbidden(request.url.path))
        listing = list_cases(state, user, params, request.url.path)
        response = json_response(listing.body)
        # Control-API `mutate_on_list`: cases change while a client pages (architecture.md §5.3).
        if state.mutate_on_list and listing.scope_ids:
            count = min(state.mutate_on_list, len(listing.scope_ids))
            touch_cases(state, random.sample(listing.scope_ids, count))
    return response


@router.get(CASES + "/{case_id}")
async def show(case_id: str, request: Request) -> Response:
    """GET /api/v2/cases/:id."""
    state = sim_state(request)
    params = nested_params(query_pairs(request))
    path = request.url.path
    with state.lock:
        user = guard(state, request).user
        require(state.role_of(user).can("case", "read"), forbidden(path))
        case = find_case(state, case_id, path)
        require(permissions.in_scope(state, user, case), forbidden(path))
        permitted = permissions.readable_fields(state, user, case.data.get("module_id"))
        selected = selected_fields(params, permitted, record_search=False)
        return json_response({"data": records.present(state, user, case, selected)})


@router.post(CASES)
async def create(request: Request) -> Response:
    """POST /api/v2/cases: 200 + body, or 204 without body when the client sent `data.id`."""
    state = sim_state(request)
    body = await read_json(request)
    path = request.url.path
    with state.lock:
        user = guard(state, request).user
        require(state.role_of(user).can("case", "create"), forbidden(path))
        raw = require_data(body, path)
        case = records.create_case(state, user, raw, path)
        if raw.get("id"):
            return json_response(None, 204)
        permitted = permissions.readable_fields(state, user, case.data.get("module_id"))
        selected = (set(case.data) | {"id"}) & permitted
        return json_response({"data": records.present(state, user, case, selected)})


@router.patch(CASES + "/{case_id}")
async def update(case_id: str, request: Request) -> Response:
    """PATCH /api/v2/cases/:id: deep merge; the answer holds only the changed fields."""
    state = sim_state(request)
    body = await read_json(request)
    path = request.url.path
    with state.lock:
        user = guard(state, request).user
        case = find_case(state, case_id, path)
        role = state.role_of(user)
        action = body.get("record_action") if isinstance(body, dict) else None
        allowed = role.can("case", action) if isinstance(action, str) else role.can("case", "write")
        require(allowed and permissions.in_scope(state, user, case), forbidden(path))
        raw = require_data(body, path)
        changed = records.update_case(state, user, case, raw, path)
        permitted = permissions.readable_fields(state, user, case.data.get("module_id"))
        return json_response({"data": records.present(state, user, case, changed & permitted)})


@router.delete(CASES + "/{case_id}")
async def destroy(case_id: str, request: Request) -> Response:
    """DELETE /api/v2/cases/:id: soft disable (`record_state=false`)."""
    state = sim_state(request)
    path = request.url.path
    with state.lock:
        user = guard(state, request).user
        require(state.role_of(user).can("case", "enable_disable_record"), forbidden(path))
        case = find_case(state, case_id, path)
        require(permissions.in_scope(state, user, case), forbidden(path))
        case.data["record_state"] = False
        case.data["last_updated_by"] = user.user_name
        records.save_case(state, case, "update")
        return json_response({"data": {"id": case.id}})
