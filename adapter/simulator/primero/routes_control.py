"""Control API under `/_sim` (no authentication): faults, locks, clocks, inspection.

Not part of Primero. Tests and rehearsals use it to make the simulator misbehave on purpose and
to look at what a client did (see the package docstring for the endpoint list).
"""

from __future__ import annotations

import random
import time
from dataclasses import asdict
from typing import Any

from fastapi import APIRouter, Request, Response

from adapter.errors import ConfigError
from adapter.privacy.decisions import BASIS, DECISIONS_FIELD, DEPARTMENT, LEGAL_REFERENCE, REASON
from adapter.simulator.faults import FaultInjector, parse_plan
from adapter.simulator.primero import auth, records
from adapter.simulator.primero.endpoint import json_response, read_json, sim_state
from adapter.simulator.primero.errors import PrimeroError
from adapter.simulator.primero.routes_cases import touch_cases
from adapter.simulator.primero.state import Fault, Json, SimulatorState

router = APIRouter(prefix="/_sim")
FAULT_STATUSES = {500, 502, 503, 429}


def _bad(message: str) -> PrimeroError:
    return PrimeroError(422, {"error": message})


async def _body(request: Request) -> Json:
    body = await read_json(request)
    if not isinstance(body, dict):
        raise _bad("expected a JSON object")
    return body


@router.get("/health")
async def health(request: Request) -> Response:
    """Liveness of the simulator itself, with a few counts."""
    state = sim_state(request)
    with state.lock:
        return json_response(
            {
                "status": "ok",
                "cases": len(state.cases),
                "users": len(state.users),
                "primero_version": state.options.primero_version,
            }
        )


def install_plan(state: SimulatorState, body: Json) -> Response:
    """Replace the fault plan (adapter/simulator/faults.py); its `mutate_on_list` applies."""
    try:
        plan = parse_plan(body, source="the body")
    except ConfigError as exc:
        raise _bad(str(exc)) from None
    with state.lock:
        state.fault_injector = FaultInjector(plan)
        state.mutate_on_list = plan.mutate_on_list
        return json_response(state.fault_injector.report())


@router.get("/faults")
async def fault_report(request: Request) -> Response:
    """The fault plan and what it fired so far, plus the queued faults."""
    state = sim_state(request)
    with state.lock:
        injector = state.fault_injector
        return json_response(
            {
                "plan": injector.report() if injector else None,
                "faults": [asdict(f) for f in state.faults],
                "mutate_on_list": state.mutate_on_list,
            }
        )


@router.post("/faults")
async def add_fault(request: Request) -> Response:
    """Queue failures: `{"status":503,"count":2,"retry_after":1,"path_prefix":"/api/v2/cases",
    "delay_seconds":0}`; `mutate_on_list: N` touches N cases after each case list. A body with
    `rules` (and `seed`) installs a fault plan instead (adapter/simulator/faults.py)."""
    state = sim_state(request)
    body = await _body(request)
    if "rules" in body:
        return install_plan(state, body)
    status = body.get("status")
    delay = float(body.get("delay_seconds") or 0)
    if status is not None and status not in FAULT_STATUSES:
        raise _bad(f"status must be one of {sorted(FAULT_STATUSES)}")
    with state.lock:
        if "mutate_on_list" in body:
            state.mutate_on_list = int(body["mutate_on_list"] or 0)
        if status is not None or delay:
            state.faults.append(
                Fault(
                    status=int(status or 0),
                    count=int(body.get("count") or 1),
                    retry_after=body.get("retry_after"),
                    path_prefix=str(body.get("path_prefix") or "/api/v2"),
                    delay_seconds=delay,
                )
            )
        return json_response(
            {"faults": [asdict(f) for f in state.faults], "mutate_on_list": state.mutate_on_list}
        )


@router.delete("/faults")
async def clear_faults(request: Request) -> Response:
    """Clear queued faults, the fault plan and `mutate_on_list`."""
    state = sim_state(request)
    with state.lock:
        state.faults.clear()
        state.fault_injector = None
        state.mutate_on_list = 0
        return json_response({"faults": [], "mutate_on_list": 0})


@router.post("/config_lock")
async def config_lock(request: Request) -> Response:
    """`{"locked": true, "retry_after": 60}`: every authenticated /api/v2 call answers 503."""
    state = sim_state(request)
    body = await _body(request)
    with state.lock:
        state.config_locked = bool(body.get("locked"))
        if body.get("retry_after") is not None:
            state.config_lock_retry_after = int(body["retry_after"])
        return json_response(
            {"locked": state.config_locked, "retry_after": state.config_lock_retry_after}
        )


@router.post("/touch")
async def touch(request: Request) -> Response:
    """`{"ids":[...]}` or `{"count":N}`: bump `last_updated_at` as a case worker's edit would."""
    state = sim_state(request)
    body = await _body(request)
    with state.lock:
        if isinstance(body.get("ids"), list):
            ids = [str(i) for i in body["ids"] if str(i) in state.cases]
        else:
            count = min(int(body.get("count") or 1), len(state.cases))
            ids = random.sample(list(state.cases), count)
        touch_cases(state, ids)
        return json_response(
            {
                "touched": [
                    {"id": i, "last_updated_at": state.cases[i].data["last_updated_at"]}
                    for i in ids
                ]
            }
        )


@router.get("/cases/{case_id}")
async def case_dump(case_id: str, request: Request) -> Response:
    """The full, unfiltered stored record with flags, alerts, sync logs and referrals."""
    state = sim_state(request)
    with state.lock:
        case = state.cases.get(case_id)
        if case is None:
            return json_response({"error": "no such case"}, 404)
        status, synced_at = records.sync_summary(case)
        return json_response(
            {
                "id": case.id,
                "data": case.data,
                "flags": case.flags,
                "alerts": case.alerts,
                "sync_logs": case.sync_logs,
                "sync_status": status,
                "synced_at": synced_at,
                "transitions": state.case_transitions(case),
            }
        )


@router.get("/users/{user_name}")
async def user_dump(user_name: str, request: Request) -> Response:
    """Lockout counters and login attempts of one user."""
    state = sim_state(request)
    with state.lock:
        user = state.users.get(user_name)
        if user is None:
            return json_response({"error": "no such user"}, 404)
        locked = user.locked_at is not None and (
            time.time() - user.locked_at < auth.UNLOCK_IN_SECONDS
        )
        attempts = [a for a in state.login_attempts if a.get("user_name") == user_name]
        return json_response(
            {
                "user_name": user.user_name,
                "role": user.role_unique_id,
                "failed_attempts": user.failed_attempts,
                "locked": locked,
                "login_failures_total": user.login_failures_total,
                "login_attempts": attempts,
                "sessions": sum(1 for s in state.sessions.values() if s.user_name == user_name),
            }
        )


@router.post("/idp_tokens")
async def add_idp_token(request: Request) -> Response:
    """`{"user_name": "...", "token": optional}`: accept `Authorization: Bearer <token>`."""
    state = sim_state(request)
    body = await _body(request)
    with state.lock:
        user_name = body.get("user_name")
        if user_name not in state.users:
            raise _bad("unknown user_name")
        token = str(body.get("token") or state.new_uuid())
        state.idp_tokens[token] = str(user_name)
        return json_response({"token": token, "user_name": user_name})


@router.put("/roles/{role_id}/forms")
async def grant_forms(role_id: str, request: Request) -> Response:
    """`{"forms": {"external_links": "rw"}}` or `{"forms": ["external_links"]}` (rw).

    Grants are merged into the role; a null access removes the form.
    """
    state = sim_state(request)
    body = await _body(request)
    with state.lock:
        role = state.roles.get(role_id)
        if role is None:
            return json_response({"error": "no such role"}, 404)
        forms: Any = body.get("forms")
        grants = {f: "rw" for f in forms} if isinstance(forms, list) else forms
        if not isinstance(grants, dict):
            raise _bad("forms must be a list or an object")
        for unique_id, access in grants.items():
            if access is None:
                role.form_permissions.pop(unique_id, None)
            elif access in ("r", "rw"):
                role.form_permissions[unique_id] = access
            else:
                raise _bad("access must be 'r', 'rw' or null")
        return json_response({"role": role.unique_id, "forms": role.form_permissions})


@router.put("/roles/{role_id}/permissions")
async def grant_permissions(role_id: str, request: Request) -> Response:
    """`{"dashboard": ["dash_shared_with_others"]}`: set a resource's actions on the role, as
    an administrator does under Settings › Roles; a null or empty list removes the resource."""
    state = sim_state(request)
    body = await _body(request)
    with state.lock:
        role = state.roles.get(role_id)
        if role is None:
            return json_response({"error": "no such role"}, 404)
        for resource, actions in body.items():
            if not actions:
                role.permissions.pop(resource, None)
            elif isinstance(actions, list) and all(isinstance(a, str) for a in actions):
                role.permissions[resource] = set(actions)
            else:
                raise _bad("each resource takes a list of action names, or null")
        granted = {resource: sorted(actions) for resource, actions in role.permissions.items()}
        return json_response({"role": role.unique_id, "permissions": granted})


@router.patch("/modules/{unique_id}")
async def module_options(unique_id: str, request: Request) -> Response:
    """`{"module_options": {"use_webhooks_for": ["case"]}}`: what an admin sets in Primero's
    configuration (the API drops `module_options`, see routes_modules.py)."""
    state = sim_state(request)
    body = await _body(request)
    with state.lock:
        module = state.modules.get(unique_id)
        if module is None:
            return json_response({"error": "no such module"}, 404)
        options = body.get("module_options")
        if not isinstance(options, dict):
            raise _bad("module_options must be an object")
        module["module_options"] = {**module["module_options"], **options}
        return json_response({"unique_id": unique_id, "module_options": module["module_options"]})


@router.post("/session_timeout")
async def session_timeout(request: Request) -> Response:
    """`{"seconds": N}`: native sessions expire after N idle seconds."""
    state = sim_state(request)
    body = await _body(request)
    with state.lock:
        state.options.session_timeout_seconds = float(body.get("seconds") or 0)
        return json_response({"seconds": state.options.session_timeout_seconds})


@router.patch("/options")
async def options(request: Request) -> Response:
    """Change simulator options, e.g. `{"paranoid": false, "primero_version": "2.14.0"}`."""
    state = sim_state(request)
    body = await _body(request)
    with state.lock:
        for key, value in body.items():
            if not hasattr(state.options, key):
                raise _bad(f"unknown option {key!r}")
            setattr(state.options, key, value)
        return json_response(asdict(state.options))


@router.get("/stats")
async def stats(request: Request) -> Response:
    """Request counts by method and route template."""
    state = sim_state(request)
    with state.lock:
        return json_response({"requests": dict(state.stats)})


@router.get("/webhook_deliveries")
async def deliveries(request: Request) -> Response:
    """Every webhook POST attempted, with status code or error."""
    state = sim_state(request)
    with state.lock:
        return json_response({"data": list(state.webhook_deliveries)})


@router.patch("/webhooks/{webhook_id}/auth")
async def webhook_auth(webhook_id: str, request: Request) -> Response:
    """`{"auth_type": "api_key", "auth_secret": "..."}`: what an administrator sets in the
    Primero console (the API never accepts these fields, see routes_webhooks.py)."""
    state = sim_state(request)
    body = await _body(request)
    with state.lock:
        webhook = state.webhooks.get(webhook_id)
        if webhook is None:
            return json_response({"error": "no such webhook"}, 404)
        if body.get("auth_type") not in ("api_key", "basic_auth", None):
            raise _bad("auth_type must be 'api_key', 'basic_auth' or null")
        webhook["auth_type"] = body.get("auth_type")
        webhook["auth_secret"] = body.get("auth_secret")
        return json_response({"id": webhook_id, "auth_type": webhook["auth_type"]})


@router.post("/cases/{case_id}/decisions")
async def record_decision(case_id: str, request: Request) -> Response:
    """Play a user recording a disclosure decision, for rehearsals: `{user_name, department,
    basis, legal_reference?, reason?, unique_id?}` is saved on the case exactly as that user's
    `PATCH /api/v2/cases/:id` would (their form permissions, their name in the record history).
    `{"unique_id": ..., "_destroy": true}` removes a row. Answers the stored rows."""
    state = sim_state(request)
    body = await _body(request)
    with state.lock:
        user = state.users.get(str(body.get("user_name")))
        case = state.cases.get(case_id)
        if user is None or case is None:
            raise _bad("user_name and the case must exist")
        row: Json = {"unique_id": str(body.get("unique_id") or state.new_uuid())}
        if body.get("_destroy") is True:
            row["_destroy"] = True
        else:
            row.update(
                {
                    DEPARTMENT: body.get("department"),
                    BASIS: body.get("basis"),
                    LEGAL_REFERENCE: body.get("legal_reference", ""),
                    REASON: body.get("reason", ""),
                }
            )
        path = f"/api/v2/cases/{case_id}"
        records.update_case(state, user, case, {DECISIONS_FIELD: [row]}, path)
        return json_response({"data": case.data.get(DECISIONS_FIELD) or []})
