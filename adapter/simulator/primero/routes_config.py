"""Configuration endpoints: settings, forms, lookups, locations, agencies, refer-to users."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request, Response

from adapter.simulator.primero import permissions
from adapter.simulator.primero.endpoint import (
    guard,
    json_response,
    read_json,
    require_data,
    sim_state,
)
from adapter.simulator.primero.errors import api_error, forbidden, record_invalid
from adapter.simulator.primero.records import require
from adapter.simulator.primero.seed_access import system_settings
from adapter.simulator.primero.state import Json, SimulatorState

router = APIRouter()
FORM_KEYS = (
    "unique_id",
    "name",
    "description",
    "parent_form",
    "module_ids",
    "form_group_id",
    "order",
    "visible",
    "is_nested",
    "editable",
    "fields",
)
FIELD_KEYS = (
    "name",
    "type",
    "display_name",
    "help_text",
    "option_strings_source",
    "option_strings_text",
    "subform_section_unique_id",
    "multi_select",
    "date_include_time",
    "visible",
    "editable",
    "disabled",
    "required",
)


def _paged(items: list[Any], request: Request) -> Json:
    per = int(request.query_params.get("per") or 20)
    page = int(request.query_params.get("page") or 1)
    window = items[(page - 1) * per : page * per]
    return {"data": window, "metadata": {"total": len(items), "per": per, "page": page}}


@router.get("/health")
async def health() -> Response:
    """HealthController: 204 when healthy."""
    return Response(status_code=204)


@router.get("/api/v2/primero")
async def primero(request: Request) -> Response:
    """Public bootstrap data (no authentication)."""
    state = sim_state(request)
    with state.lock:
        agencies = [
            {"unique_id": a["unique_id"], "name": a["name"], "logo_enabled": False}
            for a in state.agencies.values()
        ]
        return json_response(
            {
                "data": {
                    "agencies": agencies,
                    "locales": ["en", "ur"],
                    "default_locale": "en",
                    "use_identity_provider": False,
                    "primero_version": state.options.primero_version,
                }
            }
        )


@router.get("/api/v2/system_settings")
async def settings(request: Request) -> Response:
    """GET /api/v2/system_settings."""
    state = sim_state(request)
    with state.lock:
        guard(state, request)
        return json_response({"data": system_settings(state)})


# -- forms ---------------------------------------------------------------------------------------
def _form_json(form: Json) -> Json:
    return dict(form)


def _clean_form(data: Json) -> Json:
    form = {k: data[k] for k in FORM_KEYS if k in data}
    fields: list[Any] = form["fields"] if isinstance(form.get("fields"), list) else []
    form["fields"] = [
        {
            "display_name": {"en": str(f.get("name", ""))},
            "visible": True,
            "editable": True,
            "disabled": False,
            "multi_select": False,
            "date_include_time": False,
            **{k: f[k] for k in FIELD_KEYS if k in f},
        }
        for f in fields
        if isinstance(f, dict) and isinstance(f.get("name"), str) and isinstance(f.get("type"), str)
    ]
    return form


def _require_metadata_manager(state: SimulatorState, request: Request) -> None:
    user = guard(state, request).user
    require(state.role_of(user).can("metadata", "manage"), forbidden(request.url.path))


@router.get("/api/v2/forms")
async def forms_index(request: Request) -> Response:
    """GET /api/v2/forms?record_type=case&module_id=..."""
    state = sim_state(request)
    record_type = request.query_params.get("record_type")
    module_id = request.query_params.get("module_id")
    with state.lock:
        guard(state, request)
        forms = [
            _form_json(f)
            for f in state.forms.values()
            if (not record_type or f["parent_form"] == record_type)
            and (not module_id or module_id in f["module_ids"])
        ]
        return json_response({"data": forms})


@router.get("/api/v2/forms/{form_id}")
async def forms_show(form_id: str, request: Request) -> Response:
    """GET /api/v2/forms/:id (numeric id)."""
    state = sim_state(request)
    with state.lock:
        guard(state, request)
        form = next((f for f in state.forms.values() if str(f["id"]) == form_id), None)
        if form is None:
            raise api_error(
                404, request.url.path, "Not Found", f"Couldn't find FormSection with 'id'={form_id}"
            )
        return json_response({"data": _form_json(form)})


@router.post("/api/v2/forms")
async def forms_create(request: Request) -> Response:
    """POST /api/v2/forms: a new form section; its fields are writable only once granted."""
    state = sim_state(request)
    body = await read_json(request)
    path = request.url.path
    with state.lock:
        _require_metadata_manager(state, request)
        form = _clean_form(require_data(body, path))
        unique_id = form.get("unique_id")
        if not isinstance(unique_id, str) or not unique_id:
            raise record_invalid(path, [("unique_id", ["errors.models.form_section.unique_id"])])
        if unique_id in state.forms:
            raise record_invalid(path, [("unique_id", ["errors.models.form_section.unique_id"])])
        form.setdefault("name", {"en": unique_id})
        form.setdefault("parent_form", "case")
        form.setdefault("module_ids", [])
        form.setdefault("is_nested", False)
        form.setdefault("visible", not form["is_nested"])
        form.setdefault("form_group_id", unique_id)
        form.update(id=state.next_id(), core_form=False, editable=True)
        form.setdefault("order", 1000 + form["id"])
        state.forms[unique_id] = form
        return json_response({"data": _form_json(form)})


@router.patch("/api/v2/forms/{form_id}")
async def forms_update(form_id: str, request: Request) -> Response:
    """PATCH /api/v2/forms/:id: properties merged, `fields` replaces the field list."""
    state = sim_state(request)
    body = await read_json(request)
    path = request.url.path
    with state.lock:
        _require_metadata_manager(state, request)
        form = next((f for f in state.forms.values() if str(f["id"]) == form_id), None)
        if form is None:
            raise api_error(
                404, path, "Not Found", f"Couldn't find FormSection with 'id'={form_id}"
            )
        changes = _clean_form(require_data(body, path))
        changes.pop("unique_id", None)
        if "fields" not in require_data(body, path):
            changes.pop("fields")
        form.update(changes)
        return json_response({"data": _form_json(form)})


# -- lookups, locations, agencies ---------------------------------------------------------------
@router.get("/api/v2/lookups")
async def lookups(request: Request) -> Response:
    """GET /api/v2/lookups."""
    state = sim_state(request)
    with state.lock:
        guard(state, request)
        return json_response(_paged(list(state.lookups.values()), request))


@router.get("/api/v2/lookups/{lookup_id}")
async def lookup(lookup_id: str, request: Request) -> Response:
    """GET /api/v2/lookups/:id (numeric id or unique_id)."""
    state = sim_state(request)
    with state.lock:
        guard(state, request)
        found = next(
            (x for x in state.lookups.values() if lookup_id in (str(x["id"]), x["unique_id"])), None
        )
        if found is None:
            raise api_error(
                404, request.url.path, "Not Found", f"Couldn't find Lookup with 'id'={lookup_id}"
            )
        return json_response({"data": found})


@router.get("/api/v2/locations")
async def locations(request: Request) -> Response:
    """GET /api/v2/locations."""
    state = sim_state(request)
    with state.lock:
        guard(state, request)
        return json_response(_paged(list(state.locations.values()), request))


@router.get("/api/v2/agencies")
async def agencies(request: Request) -> Response:
    """GET /api/v2/agencies."""
    state = sim_state(request)
    with state.lock:
        guard(state, request)
        return json_response(_paged(list(state.agencies.values()), request))


# -- users ---------------------------------------------------------------------------------------
@router.get("/api/v2/users/refer-to")
async def refer_to(request: Request) -> Response:
    """UsersTransitionsController#refer_to: `agency`, `location`, `service` (singular) filters.

    `services` (the documented plural) is not a permitted param and is ignored (§1.2).
    """
    state = sim_state(request)
    q = request.query_params
    with state.lock:
        user = guard(state, request).user
        role = state.role_of(user)
        require(
            role.can("case", "referral") or role.can("case", "referral_from_service"),
            forbidden(request.url.path),
        )
        users = (
            []
            if q.get("record_type") not in ("case", "cases")
            else (
                permissions.referral_receivers(
                    state,
                    user,
                    q.get("record_module_id"),
                    q.get("agency"),
                    q.get("location"),
                    q.get("service"),
                )
            )
        )
        return json_response(
            {
                "data": [
                    {
                        "id": u.id,
                        "user_name": u.user_name,
                        "code": None,
                        "position": u.position,
                        "location": u.location,
                        "agency": u.agency_unique_id,
                        "disabled": u.disabled,
                        "services": u.services,
                    }
                    for u in users
                ]
            }
        )
