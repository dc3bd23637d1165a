"""Referral and transition endpoints (referrals_controller.rb, transitions_controller.rb; §5)."""

from __future__ import annotations

from fastapi import APIRouter, Request, Response

from adapter.simulator.primero import permissions, referrals
from adapter.simulator.primero.endpoint import (
    guard,
    json_response,
    read_json,
    require_data,
    sim_state,
)
from adapter.simulator.primero.errors import api_error, forbidden
from adapter.simulator.primero.records import find_case, require
from adapter.simulator.primero.state import Case, Json, SimulatorState, User

router = APIRouter()
BASE = "/api/v2/cases"


def _may_refer(state: SimulatorState, user: User, case: Case, data: Json) -> bool:
    """`authorize! :referral` (or `:referral_from_service` when a service row is referred)."""
    role = state.role_of(user)
    action_ok = role.can("case", "referral") or (
        bool(data.get("service_record_id")) and role.can("case", "referral_from_service")
    )
    return action_ok and permissions.in_scope(state, user, case)


def _may_update(state: SimulatorState, user: User, case: Case) -> bool:
    """authorize_update!: update the case, or receive referrals / remove assigned users."""
    role = state.role_of(user)
    can = (
        role.can("case", "write")
        or role.can("case", "receive_referral")
        or role.can("case", "remove_assigned_users")
    )
    return can and permissions.in_scope(state, user, case)


def _find_referral(state: SimulatorState, referral_id: str, path: str) -> Json:
    transition = state.transitions.get(referral_id)
    if transition is None or transition["type"] != "Referral":
        raise api_error(404, path, "Not Found", f"Couldn't find Referral with 'id'={referral_id}")
    return transition


@router.get(BASE + "/{case_id}/referrals")
async def index(case_id: str, request: Request) -> Response:
    """GET /api/v2/cases/:id/referrals (scoped by group permission)."""
    state = sim_state(request)
    path = request.url.path
    with state.lock:
        user = guard(state, request).user
        case = find_case(state, case_id, path)
        require(
            state.role_of(user).can("case", "read") and permissions.in_scope(state, user, case),
            forbidden(path),
        )
        items = [
            referrals.transition_json(state, user, t, None)
            for t in referrals.visible_referrals(state, user, case)
        ]
        return json_response({"data": items})


@router.get(BASE + "/{case_id}/transitions")
async def transitions(case_id: str, request: Request) -> Response:
    """GET /api/v2/cases/:id/transitions?types=Referral,Transfer,..."""
    state = sim_state(request)
    path = request.url.path
    types_param = request.query_params.get("types")
    types = (
        types_param.split(",")
        if types_param
        else ["Assign", "Transfer", "Referral", "TransferRequest"]
    )
    with state.lock:
        user = guard(state, request).user
        case = find_case(state, case_id, path)
        require(
            state.role_of(user).can("case", "read") and permissions.in_scope(state, user, case),
            forbidden(path),
        )
        visible = referrals.visible_referrals(state, user, case) if "Referral" in types else []
        others = [
            t
            for t in state.case_transitions(case)
            if t["type"] != "Referral" and t["type"] in types
        ]
        items = [referrals.transition_json(state, user, t, None) for t in others + visible]
        return json_response({"data": items})


@router.post(BASE + "/referrals")
async def create_bulk(request: Request) -> Response:
    """POST /api/v2/cases/referrals: one by one, no transaction (earlier ones stay saved)."""
    state = sim_state(request)
    body = await read_json(request)
    path = request.url.path
    with state.lock:
        user = guard(state, request).user
        data = require_data(body, path)
        ids = data.get("ids") or []
        ids = ids if isinstance(ids, list) else [ids]
        missing = [i for i in ids if str(i) not in state.cases]
        if missing:
            raise api_error(
                404,
                path,
                "Not Found",
                f"Couldn't find all Children with 'id': ({', '.join(map(str, ids))})",
            )
        cases = [state.cases[str(i)] for i in ids]
        for case in cases:
            require(_may_refer(state, user, case, data), forbidden(path))
        items = []
        for case in cases:
            transition, updates = referrals.refer(state, user, case, data, path)
            items.append(referrals.transition_json(state, user, transition, updates))
        return json_response({"data": items})


@router.post(BASE + "/{case_id}/referrals")
async def create(case_id: str, request: Request) -> Response:
    """POST /api/v2/cases/:id/referrals."""
    state = sim_state(request)
    body = await read_json(request)
    path = request.url.path
    with state.lock:
        user = guard(state, request).user
        case = find_case(state, case_id, path)
        data = require_data(body, path)
        require(_may_refer(state, user, case, data), forbidden(path))
        transition, updates = referrals.refer(state, user, case, data, path)
        return json_response({"data": referrals.transition_json(state, user, transition, updates)})


@router.patch(BASE + "/{case_id}/referrals/{referral_id}")
async def update(case_id: str, referral_id: str, request: Request) -> Response:
    """PATCH .../referrals/:id with status accepted / rejected / done (else a 200 no-op)."""
    state = sim_state(request)
    body = await read_json(request)
    path = request.url.path
    with state.lock:
        user = guard(state, request).user
        case = find_case(state, case_id, path)
        require(_may_update(state, user, case), forbidden(path))
        transition = _find_referral(state, referral_id, path)
        # Since 2026-08 the caller must be able to read the transition's own case (ability.rb).
        owner_case = state.cases[transition["record_id"]]
        require(permissions.in_scope(state, user, owner_case), forbidden(path))
        data = require_data(body, path)
        params = {k: data.get(k) for k in ("status", "rejected_reason", "rejection_note")}
        updates = referrals.process(state, user, transition, params, path)
        return json_response({"data": referrals.transition_json(state, user, transition, updates)})


@router.delete(BASE + "/{case_id}/referrals/{referral_id}")
async def destroy(case_id: str, referral_id: str, request: Request) -> Response:
    """DELETE .../referrals/:id: revoke (from any status)."""
    state = sim_state(request)
    path = request.url.path
    with state.lock:
        user = guard(state, request).user
        case = find_case(state, case_id, path)
        require(_may_update(state, user, case), forbidden(path))
        transition = _find_referral(state, referral_id, path)
        updates = referrals.revoke(state, user, transition, path)
        return json_response({"data": referrals.transition_json(state, user, transition, updates)})
