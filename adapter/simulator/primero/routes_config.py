"""Configuration endpoints: settings, forms, lookups, locations, agencies, refer-to users."""

from __future__ import annotations

import re
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
    "collapsed_field_names",
    "fields",
)
FIELD_KEYS = (
    "name",
    "type",
    "display_name",
    "help_text",
    "option_strings_source",
    "option_strings_text",
    "subform_section_id",
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
# Field properties Primero makes read-only once a field exists (field.rb: attr_readonly).
READONLY_FIELD_KEYS = ("name", "type", "multi_select")
FIELD_DEFAULTS: Json = {
    "visible": True,
    "editable": True,
    "disabled": False,
    "multi_select": False,
    "date_include_time": False,
}


# Column defaults of `form_sections` and `fields` (db/schema.rb): `form.as_json.compact` and
# `field.as_json.compact` show every non-null column (_form_section.json.jbuilder).
FORM_COLUMN_DEFAULTS: Json = {
    "core_form": False,
    "display_help_text_view": False,
    "editable": True,
    "form_group_keyed": False,
    "hide_subform_placeholder": False,
    "is_first_tab": False,
    "is_nested": False,
    "is_summary_section": False,
    "mobile_form": False,
    "subform_append_only": False,
    "subform_header_links": [],
    "subform_prevent_item_removal": False,
    "visible": True,
}
FIELD_COLUMN_DEFAULTS: Json = {
    "autosum_total": False,
    "date_include_time": False,
    "date_validation": "default_date_validation",
    "disabled": False,
    "editable": True,
    "expose_unique_id": False,
    "field_tags": [],
    "hidden_text_field": False,
    "hide_on_view_page": False,
    "link_to_path_external": True,
    "mandatory_for_completion": False,
    "matchable": False,
    "mobile_visible": True,
    "multi_select": False,
    "phone_number": False,
    "required": False,
    "show_on_minify_form": False,
    "visible": True,
}
# FieldI18nService.fill_keys: a translated property lists every locale ("" when missing).
LOCALES = ("en", "ur")
FORM_LOCALIZED = ("name", "help_text", "description", "form_group_name")
FIELD_LOCALIZED = (
    "display_name",
    "help_text",
    "guiding_questions",
    "tick_box_label",
    "signature_provided_by_label",
)


def _fill_locales(item: Json, keys: tuple[str, ...]) -> None:
    for key in keys:
        if isinstance(item.get(key), dict) and item[key]:
            item[key] = {**dict.fromkeys(LOCALES, ""), **item[key]}


def _form_json(state: SimulatorState, form: Json) -> Json:
    """A form as Primero renders it (form_sections/_form_section.json.jbuilder): every column
    of the form and of each field (defaults included, nulls left out), `collapsed_field_names`
    in field order, and subform fields naming their nested form by numeric
    `subform_section_id`. The simulator also shows `subform_section_unique_id`, which real
    Primero does not. Field ids are assigned on first sight, as a serial column would."""
    shown = {**FORM_COLUMN_DEFAULTS, **form}
    fields = []
    for order, definition in enumerate(form["fields"]):
        if "id" not in definition:
            definition["id"] = state.next_id()
        field = {**FIELD_COLUMN_DEFAULTS, "order": order, **definition}
        field["form_section_id"] = form["id"]
        if field.get("type") == "subform":
            nested = state.forms.get(field.get("subform_section_unique_id") or "")
            field["subform_section_id"] = nested["id"] if nested else None
        _fill_locales(field, FIELD_LOCALIZED)
        fields.append({k: v for k, v in field.items() if v is not None})
    collapsed = set(form.get("collapsed_field_names") or [])
    shown["fields"] = fields
    shown["collapsed_field_names"] = [f["name"] for f in fields if f["name"] in collapsed]
    _fill_locales(shown, FORM_LOCALIZED)
    return {k: v for k, v in shown.items() if v is not None}


def _field_props(state: SimulatorState, sent: Json) -> Json:
    """The permitted properties of one sent field (Field.permitted_api_params).

    Primero links a subform field to its nested form by numeric `subform_section_id`; the
    form builder saves the nested form first and then sends its id (form-builder/reducer.js).
    `subform_section_unique_id` is a simulator convenience that real Primero drops.
    """
    props = {k: sent[k] for k in FIELD_KEYS if k in sent}
    nested_id = props.pop("subform_section_id", None)
    if nested_id is not None:
        nested = next((f for f in state.forms.values() if str(f["id"]) == str(nested_id)), None)
        props["subform_section_unique_id"] = nested["unique_id"] if nested else None
    return props


def _sent_fields(data: Json) -> list[Json]:
    fields = data.get("fields")
    return [
        f
        for f in (fields if isinstance(fields, list) else [])
        if isinstance(f, dict) and isinstance(f.get("name"), str) and isinstance(f.get("type"), str)
    ]


def _clean_form(state: SimulatorState, data: Json) -> Json:
    form = {k: data[k] for k in FORM_KEYS if k in data}
    form["fields"] = [
        {"display_name": {"en": str(f["name"])}, **FIELD_DEFAULTS, **_field_props(state, f)}
        for f in _sent_fields(data)
    ]
    return form


def _merge_fields(state: SimulatorState, existing: list[Json], sent: list[Json]) -> list[Json]:
    """FormSection#update_field_properties: the sent list becomes the form's field list.

    A sent field whose name exists is merged into it (its name, type and multi_select stay);
    a new name adds a field; an existing field that is not sent is removed
    (form_section.rb#resolve_field_from_params; form_sections_controller_spec "deletes fields
    if they are not part of the request").
    """
    by_name = {f["name"]: f for f in existing}
    merged = []
    for field in sent:
        props = _field_props(state, field)
        old = by_name.get(field["name"])
        if old is None:
            merged.append({"display_name": {"en": field["name"]}, **FIELD_DEFAULTS, **props})
            continue
        for key in READONLY_FIELD_KEYS:
            props.pop(key, None)
        if isinstance(props.get("display_name"), dict):
            props["display_name"] = {**old.get("display_name", {}), **props["display_name"]}
        merged.append({**old, **props})
    return merged


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
            _form_json(state, f)
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
        return json_response({"data": _form_json(state, form)})


def _present(value: Any) -> bool:
    """Rails `present?`: not nil, not blank text, not an empty collection."""
    if value is None or value is False:
        return False
    if isinstance(value, str):
        return bool(value.strip())
    if isinstance(value, list | dict):
        return bool(value)
    return True


def _integer_id(value: Any) -> int:
    """ActiveModel::Type::Integer on the `id` column: Ruby `to_i` (leading digits, else 0)."""
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, int | float):
        return int(value)
    digits = re.match(r"\s*[-+]?\d+", str(value))
    return int(digits.group()) if digits else 0


@router.post("/api/v2/forms")
async def forms_create(request: Request) -> Response:
    """POST /api/v2/forms: a new form section; its fields are writable only once granted.

    The creator's role is granted the form read-write (FormSection.new_with_properties adds
    the user's role; form_sections_roles.permission defaults to "rw" in db/schema.rb).
    `id` is a permitted param (FormSection.permitted_api_params): a client-chosen id is kept,
    and then the answer is 204 with no body (form_sections_controller.rb#create); an id already
    taken is ActiveRecord::RecordNotUnique, a 409 (error_service.rb).
    """
    state = sim_state(request)
    body = await read_json(request)
    path = request.url.path
    with state.lock:
        _require_metadata_manager(state, request)
        data = require_data(body, path)
        form = _clean_form(state, data)
        unique_id = form.get("unique_id")
        if not isinstance(unique_id, str) or not unique_id:
            raise record_invalid(path, [("unique_id", ["errors.models.form_section.unique_id"])])
        if unique_id in state.forms:
            raise record_invalid(path, [("unique_id", ["errors.models.form_section.unique_id"])])
        client_id = _present(data.get("id"))
        form_id = _integer_id(data["id"]) if client_id else state.next_id()
        if client_id and any(f["id"] == form_id for f in state.forms.values()):
            raise api_error(409, path, "Conflict: A record with this id already exists")
        form.setdefault("name", {"en": unique_id})
        form.setdefault("parent_form", "case")
        form.setdefault("module_ids", [])
        form.setdefault("is_nested", False)
        form.setdefault("visible", not form["is_nested"])
        form.setdefault("form_group_id", unique_id)
        form.update(id=form_id, core_form=False, editable=True)
        form.setdefault("order", 1000 + form["id"])
        state.forms[unique_id] = form
        state.role_of(guard(state, request).user).form_permissions.setdefault(unique_id, "rw")
        if client_id:
            return json_response(None, 204)
        return json_response({"data": _form_json(state, form)})


@router.patch("/api/v2/forms/{form_id}")
async def forms_update(form_id: str, request: Request) -> Response:
    """PATCH /api/v2/forms/:id: properties merged; a sent `fields` list becomes the field list
    (fields merged by name, unsent fields removed: see _merge_fields)."""
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
        data = require_data(body, path)
        changes = {k: data[k] for k in FORM_KEYS if k in data and k not in ("unique_id", "fields")}
        if "fields" in data:
            changes["fields"] = _merge_fields(state, form["fields"], _sent_fields(data))
        form.update(changes)
        return json_response({"data": _form_json(state, form)})


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


# locations/_location.json.jbuilder: these keys always, the rest only `with_hierarchy`.
LOCATION_KEYS = ("id", "code", "type", "disabled", "name")
LOCATION_HIERARCHY_KEYS = ("admin_level", "placename", "hierarchy")
LOCATIONS_PER = 100


def _location_json(location: Json, with_hierarchy: bool) -> Json:
    keys = LOCATION_KEYS + (LOCATION_HIERARCHY_KEYS if with_hierarchy else ())
    return {key: location.get(key) for key in keys}


@router.get("/api/v2/locations")
async def locations(request: Request) -> Response:
    """GET /api/v2/locations (locations_controller.rb#index).

    LocationsController overrides Pagination#per: `params[:per]&.to_i || 100`, so the default
    page is 100 and there is no 1000 cap. Items carry `admin_level`, `placename` and
    `hierarchy` only with `hierarchy=true`. `disabled[..]=true|false` filters.
    """
    state = sim_state(request)
    q = request.query_params
    per = _integer_id(q["per"]) if "per" in q else LOCATIONS_PER
    page = _integer_id(q["page"]) if "page" in q else 1
    with_hierarchy = q.get("hierarchy") == "true"
    disabled = {
        value == "true" for key, value in q.multi_items() if re.fullmatch(r"disabled\[.*\]", key)
    }
    with state.lock:
        guard(state, request)
        listed = [
            loc for loc in state.locations.values() if not disabled or loc["disabled"] in disabled
        ]
        window = listed[(page - 1) * per : page * per] if per > 0 and page > 0 else []
        return json_response(
            {
                "data": [_location_json(loc, with_hierarchy) for loc in window],
                "metadata": {"total": len(listed), "per": per, "page": page},
            }
        )


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
