"""Record history and users (record_histories_controller.rb, users_controller.rb#index).

- `GET /api/v2/cases/:id/record_history`: `authorize_access!(:change_log)` (403 without it),
  newest first (`ordered_histories`: datetime desc), `filters[field_names][N]` keeps entries
  whose `record_changes` has one of the names, paged by `page`/`per` (20 by default, at most
  1000). Items follow index.json.jbuilder: `record_id`, `record_type: "cases"`, `datetime`
  (`iso8601`, whole seconds), `user_name`, `action`, `record_changes: [{field: {from, to}}]`.
- `GET /api/v2/users`: `authorize! :index, User` (Users: read or manage), the reader's scope
  (permitted_users_service.rb: role scope `all` sees every user but super users unless it is
  one, `group` the users of its groups, else itself), filters `user_name`, `user_group_ids`,
  `disabled`; items as _user.json.jbuilder without the hidden attributes.
"""

from __future__ import annotations

from datetime import datetime

from fastapi import APIRouter, Request, Response

from adapter.simulator.primero import permissions
from adapter.simulator.primero.endpoint import guard, json_response, query_pairs, sim_state
from adapter.simulator.primero.errors import forbidden, not_found
from adapter.simulator.primero.listing import DEFAULT_PER, MAX_PER, ruby_to_i
from adapter.simulator.primero.records import find_case, require
from adapter.simulator.primero.state import Json, SimulatorState, User

router = APIRouter()


def _page(request: Request) -> tuple[int, int]:
    page = ruby_to_i(request.query_params.get("page"), 1)
    per = min(ruby_to_i(request.query_params.get("per"), DEFAULT_PER), MAX_PER)
    return max(page, 1), max(per, 0)


def _iso8601(stamp: str) -> str:
    # `datetime&.iso8601` on a UTC time: whole seconds, `Z`.
    parsed = datetime.strptime(stamp, "%Y-%m-%dT%H:%M:%S.%fZ")
    return parsed.strftime("%Y-%m-%dT%H:%M:%SZ")


@router.get("/api/v2/cases/{case_id}/record_history")
async def record_history(case_id: str, request: Request) -> Response:
    state = sim_state(request)
    path = request.url.path
    with state.lock:
        user = guard(state, request).user
        case = find_case(state, case_id, path)
        require(
            state.role_of(user).can("case", "change_log")
            and permissions.in_scope(state, user, case),
            forbidden(path),
        )
        names = {
            value for key, value in query_pairs(request) if key.startswith("filters[field_names]")
        }
        entries = [
            e for e in reversed(case.history) if not names or names & set(e["record_changes"])
        ]
        page, per = _page(request)
        window = entries[(page - 1) * per : page * per]
        data = [
            {
                "record_id": case.id,
                "record_type": "cases",
                "datetime": _iso8601(e["datetime"]),
                "user_name": e["user_name"],
                "action": e["action"],
                "record_changes": [{k: v} for k, v in e["record_changes"].items()],
            }
            for e in window
        ]
        return json_response(
            {"data": data, "metadata": {"total": len(entries), "per": per, "page": page}}
        )


def _super_user(state: SimulatorState, user: User) -> bool:
    role = state.role_of(user)
    return role.group_permission == "all" and role.can("role", "manage")


def _visible(state: SimulatorState, reader: User, user: User) -> bool:
    if _super_user(state, reader):
        return True
    if _super_user(state, user):
        return False
    scope = state.role_of(reader).group_permission
    if scope == "all":
        return True
    if scope == "group":
        return bool(set(reader.user_group_unique_ids) & set(user.user_group_unique_ids))
    return user.user_name == reader.user_name


def present_user(state: SimulatorState, user: User) -> Json:
    agency = state.agencies.get(user.agency_unique_id) or {}
    role = state.role_of(user)
    return {
        "id": user.id,
        "user_name": user.user_name,
        "full_name": user.full_name,
        "position": user.position,
        "email": user.email,
        "disabled": user.disabled,
        "agency_id": agency.get("id"),
        "role_unique_id": user.role_unique_id,
        "role_group_permission": role.group_permission,
        "module_unique_ids": list(role.module_unique_ids),
        "user_group_unique_ids": list(user.user_group_unique_ids),
        "location": user.location,
        "services": list(user.services),
    }


@router.get("/api/v2/users")
async def users(request: Request) -> Response:
    state = sim_state(request)
    path = request.url.path
    with state.lock:
        reader = guard(state, request).user
        role = state.role_of(reader)
        require(role.can("user", "read") or role.can("user", "agency_read"), forbidden(path))
        params = request.query_params
        found = [u for u in state.users.values() if _visible(state, reader, u)]
        if role.can("user", "agency_read") and not role.can("user", "read"):
            found = [u for u in found if u.agency_unique_id == reader.agency_unique_id]
        if params.get("user_name") is not None:
            found = [u for u in found if u.user_name == params["user_name"]]
        groups = params.get("user_group_ids")
        if groups:
            found = [u for u in found if groups in u.user_group_unique_ids]
        if params.get("disabled") is not None:
            wanted = params["disabled"] == "true"
            found = [u for u in found if u.disabled == wanted]
        page, per = _page(request)
        window = found[(page - 1) * per : page * per]
        return json_response(
            {
                "data": [present_user(state, u) for u in window],
                "metadata": {"total": len(found), "per": per, "page": page},
            }
        )


# Digits only: `/api/v2/users/refer-to` (routes_config.py) must not match here.
@router.get("/api/v2/users/{user_id:int}")
async def show_user(user_id: int, request: Request) -> Response:
    """`GET /api/v2/users/:id`: `authorize! :show_user` (oneself always, ability.rb
    `can_show_user`; others with Users: read). `extended=true` adds the role's permissions
    (`{resource (plural), actions}`), `permitted_form` (form unique_id → "r"/"rw",
    role.rb#form_section_permission) and the module ids (_user.json.jbuilder)."""
    state = sim_state(request)
    path = request.url.path
    with state.lock:
        reader = guard(state, request).user
        user = next((u for u in state.users.values() if u.id == user_id), None)
        if user is None:
            raise not_found(path, "User", str(user_id))
        role = state.role_of(reader)
        may_read = role.can("user", "read") or role.can("user", "agency_read")
        require(
            user.user_name == reader.user_name or (may_read and _visible(state, reader, user)),
            forbidden(path),
        )
        body = present_user(state, user)
        if request.query_params.get("extended") == "true":
            own = state.role_of(user)
            body["permissions"] = {
                "list": [
                    {"resource": _plural(resource), "actions": sorted(actions)}
                    for resource, actions in sorted(own.permissions.items())
                ]
            }
            body["permitted_form"] = dict(own.form_permissions)
            body["permitted_form_unique_ids"] = sorted(own.form_permissions)
        return json_response({"data": body})


def _plural(resource: str) -> str:
    # `p.resource.pluralize` (Rails inflections: "metadata" is uncountable).
    return {"metadata": "metadata", "agency": "agencies"}.get(resource, f"{resource}s")
