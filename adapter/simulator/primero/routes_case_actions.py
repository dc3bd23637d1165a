"""Flags and manual webhook sync of a case (flags_controller.rb, webhook_syncs_controller.rb)."""

from __future__ import annotations

import copy

from fastapi import APIRouter, Request, Response

from adapter.simulator.primero import permissions, records
from adapter.simulator.primero.endpoint import (
    guard,
    json_response,
    read_json,
    require_data,
    sim_state,
)
from adapter.simulator.primero.errors import api_error, forbidden, record_invalid
from adapter.simulator.primero.records import find_case, require
from adapter.simulator.primero.state import Case, Json, SimulatorState, User

router = APIRouter()
BASE = "/api/v2/cases/{case_id}"


def flag_json(
    state: SimulatorState, user: User, case: Case, flag: Json, updates: set[str] | None
) -> Json:
    """flags/_flag.json.jbuilder: the flag row plus a few record fields."""
    out = dict(flag)
    out["name"] = records.CENSORED_NAME if case.data.get("hidden_name") else case.data.get("name")
    out["short_id"] = case.data.get("short_id")
    out["owned_by"] = case.data.get("owned_by")
    out["owned_by_agency_id"] = case.data.get("owned_by_agency_id")
    out["record_type"] = "cases"
    denied = not permissions.in_scope(state, user, case)
    out["record_access_denied"] = denied
    if updates is not None and not denied:
        out["record"] = records.present(state, user, case, updates)
    return out


def _guard_flags(state: SimulatorState, request: Request, case_id: str) -> tuple[User, Case]:
    path = request.url.path
    user = guard(state, request).user
    require(state.role_of(user).can("case", "flag"), forbidden(path))
    case = find_case(state, case_id, path)
    require(permissions.in_scope(state, user, case), forbidden(path))
    return user, case


def _save(state: SimulatorState, case: Case, before: Json) -> set[str]:
    records.save_case(state, case, "update")
    return {k for k in set(before) | set(case.data) if before.get(k) != case.data.get(k)} | {
        "last_updated_at"
    }


@router.get(BASE + "/flags")
async def flags_index(case_id: str, request: Request) -> Response:
    """GET /api/v2/cases/:id/flags."""
    state = sim_state(request)
    with state.lock:
        user, case = _guard_flags(state, request, case_id)
        return json_response(
            {
                "data": [
                    flag_json(state, user, case, f, None)
                    for f in sorted(case.flags, key=lambda f: f["id"])
                ]
            }
        )


@router.post(BASE + "/flags")
async def flags_create(case_id: str, request: Request) -> Response:
    """POST /api/v2/cases/:id/flags {"data":{"message","date"}} (date defaults to today)."""
    state = sim_state(request)
    body = await read_json(request)
    path = request.url.path
    with state.lock:
        user, case = _guard_flags(state, request, case_id)
        data = require_data(body, path)
        message = data.get("message")
        if not isinstance(message, str) or not message.strip():
            raise record_invalid(path, [("message", ["errors.models.flags.message"])])
        flag_date = data.get("date") if isinstance(data.get("date"), str) else None
        now = state.stamp()
        flag = {
            "id": state.next_id(),
            "created_at": now,
            "date": flag_date or state.now().date().isoformat(),
            "flagged_by": user.user_name,
            "message": message,
            "record_id": case.id,
            "record_type": "Child",
            "record_uuid": case.id,
            "removed": False,
            "system_generated_followup": False,
            "unflag_message": None,
            "unflagged_by": None,
            "unflagged_date": None,
        }
        before = copy.deepcopy(case.data)
        case.flags.append(flag)
        updates = _save(state, case, before)
        status = 204 if data.get("id") else 200
        return json_response({"data": flag_json(state, user, case, flag, updates)}, status)


@router.patch(BASE + "/flags/{flag_id}")
async def flags_update(case_id: str, flag_id: str, request: Request) -> Response:
    """PATCH .../flags/:id {"data":{"unflag_message"}} resolves; message/date edit the flag."""
    state = sim_state(request)
    body = await read_json(request)
    path = request.url.path
    with state.lock:
        user, case = _guard_flags(state, request, case_id)
        data = require_data(body, path)
        flag = next((f for f in case.flags if str(f["id"]) == flag_id), None)
        if flag is None:
            raise api_error(404, path, "Not Found", f"Couldn't find Flag with 'id'={flag_id}")
        before = copy.deepcopy(case.data)
        if isinstance(data.get("unflag_message"), str) and data["unflag_message"]:
            flag.update(
                removed=True,
                unflag_message=data["unflag_message"],
                unflagged_by=user.user_name,
                unflagged_date=state.now().date().isoformat(),
            )
        for key in ("message", "date"):
            if isinstance(data.get(key), str):
                flag[key] = data[key]
        updates = _save(state, case, before)
        return json_response({"data": flag_json(state, user, case, flag, updates)})


@router.post(BASE + "/sync")
async def sync(case_id: str, request: Request) -> Response:
    """POST /api/v2/cases/:id/sync: log `sending`, queue a `case.post` webhook (§7)."""
    state = sim_state(request)
    path = request.url.path
    with state.lock:
        user = guard(state, request).user
        case = find_case(state, case_id, path)
        require(state.role_of(user).can("case", "sync_external"), forbidden(path))
        case.sync_logs.append(
            {"resource_url": None, "status": "sending", "timestamp": state.stamp()}
        )
        state.webhook_events.put((case.id, "post"))
        status, synced_at = records.sync_summary(case)
        return json_response(
            {
                "data": {
                    "record_id": case.id,
                    "record_type": "case",
                    "synced_at": synced_at,
                    "sync_status": status,
                }
            }
        )
