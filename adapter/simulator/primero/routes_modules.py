"""`/api/v2/primero_modules` (app/controllers/api/v2/primero_modules_controller.rb).

Two quirks kept from the source:
- `show`/`update` find by numeric id only (`PrimeroModule.find`): a unique_id is a 404.
- `update` permits only `description`, `associated_record_types` and `form_section_unique_ids`:
  `module_options` (where `use_webhooks_for` lives) is dropped silently, and a PATCH *without*
  `form_section_unique_ids` detaches every form from the module
  (`self.form_sections = FormSection.where(unique_id: nil)`, PrimeroModule#update_with_properties),
  after which no role has any field in that module. Module options are set through the control
  API (`PATCH /_sim/modules/{unique_id}`), standing in for Primero's console/configuration files.
"""

from __future__ import annotations

from fastapi import APIRouter, Request, Response

from adapter.simulator.primero.endpoint import (
    guard,
    json_response,
    read_json,
    require_data,
    sim_state,
)
from adapter.simulator.primero.errors import api_error, forbidden
from adapter.simulator.primero.records import require
from adapter.simulator.primero.state import Json, SimulatorState

router = APIRouter()
BASE = "/api/v2/primero_modules"


def module_json(state: SimulatorState, module: Json) -> Json:
    """primero_modules/_primero_module.json.jbuilder (form list from the form associations)."""
    forms = [u for u, f in state.forms.items() if module["unique_id"] in f["module_ids"]]
    return {
        **module,
        "form_section_unique_ids": forms,
        "options": module["module_options"],
    }


def find_module(state: SimulatorState, module_id: str, path: str) -> Json:
    """`PrimeroModule.find(id)`: numeric ids only."""
    found = next((m for m in state.modules.values() if str(m["id"]) == module_id), None)
    if found is None:
        raise api_error(
            404, path, "Not Found", f"Couldn't find PrimeroModule with 'id'={module_id}"
        )
    return found


def attach_forms(state: SimulatorState, module: Json, unique_ids: list[str]) -> None:
    """Replace the module's form associations (missing ids are ignored, as `where` would)."""
    for unique_id, form in state.forms.items():
        linked = module["unique_id"] in form["module_ids"]
        if unique_id in unique_ids and not linked:
            form["module_ids"] = [*form["module_ids"], module["unique_id"]]
        elif unique_id not in unique_ids and linked:
            form["module_ids"] = [m for m in form["module_ids"] if m != module["unique_id"]]


@router.get(BASE)
async def index(request: Request) -> Response:
    """GET /api/v2/primero_modules."""
    state = sim_state(request)
    with state.lock:
        guard(state, request)
        return json_response({"data": [module_json(state, m) for m in state.modules.values()]})


@router.get(BASE + "/{module_id}")
async def show(module_id: str, request: Request) -> Response:
    """GET /api/v2/primero_modules/:id."""
    state = sim_state(request)
    with state.lock:
        guard(state, request)
        module = find_module(state, module_id, request.url.path)
        return json_response({"data": module_json(state, module)})


@router.patch(BASE + "/{module_id}")
async def update(module_id: str, request: Request) -> Response:
    """PATCH /api/v2/primero_modules/:id (see the module docstring for what it really does)."""
    state = sim_state(request)
    body = await read_json(request)
    path = request.url.path
    with state.lock:
        user = guard(state, request).user
        require(state.role_of(user).can("primero_module", "manage"), forbidden(path))
        module = find_module(state, module_id, path)
        data = require_data(body, path)
        if isinstance(data.get("description"), str | dict):
            module["description"] = data["description"]
        if isinstance(data.get("associated_record_types"), list):
            module["associated_record_types"] = data["associated_record_types"]
        wanted = data.get("form_section_unique_ids")
        attach_forms(state, module, [str(u) for u in wanted] if isinstance(wanted, list) else [])
        return json_response({"data": module_json(state, module)})
