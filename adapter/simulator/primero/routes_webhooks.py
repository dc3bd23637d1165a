"""`/api/v2/webhooks` CRUD (app/controllers/api/v2/webhooks_controller.rb, primero-api.md §7).

Strong params permit `events` only as a scalar string (an array is dropped, and then the
presence validation fails) and never `auth_type` / `auth_secret` (console or seed only).
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
from adapter.simulator.primero.errors import api_error, forbidden, record_invalid
from adapter.simulator.primero.records import require
from adapter.simulator.primero.state import Json, SimulatorState

router = APIRouter()
BASE = "/api/v2/webhooks"


def webhook_json(webhook: Json) -> Json:
    """webhooks/_webhook.json.jbuilder."""
    return {k: webhook.get(k) for k in ("id", "events", "url", "role_unique_id", "metadata")}


def _permitted(data: Json) -> Json:
    kept: Json = {
        k: data[k]
        for k in ("id", "events", "url", "role_unique_id")
        if k in data and (data[k] is None or isinstance(data[k], str | int | float | bool))
    }
    if isinstance(data.get("metadata"), dict):
        kept["metadata"] = data["metadata"]
    return kept


def _validate(webhook: Json, path: str) -> None:
    blank = [k for k in ("events", "url", "role_unique_id") if not webhook.get(k)]
    if blank:
        raise record_invalid(path, [(k, ["can't be blank"]) for k in blank])


def _manager(state: SimulatorState, request: Request) -> None:
    user = guard(state, request).user
    require(state.role_of(user).can("webhook", "manage"), forbidden(request.url.path))


def _find(state: SimulatorState, webhook_id: str, path: str) -> Json:
    webhook = state.webhooks.get(webhook_id)
    if webhook is None:
        raise api_error(404, path, "Not Found", f"Couldn't find Webhook with 'id'={webhook_id}")
    return webhook


@router.get(BASE)
async def index(request: Request) -> Response:
    """GET /api/v2/webhooks."""
    state = sim_state(request)
    with state.lock:
        _manager(state, request)
        return json_response({"data": [webhook_json(w) for w in state.webhooks.values()]})


@router.get(BASE + "/{webhook_id}")
async def show(webhook_id: str, request: Request) -> Response:
    """GET /api/v2/webhooks/:id."""
    state = sim_state(request)
    with state.lock:
        _manager(state, request)
        return json_response({"data": webhook_json(_find(state, webhook_id, request.url.path))})


@router.post(BASE)
async def create(request: Request) -> Response:
    """POST /api/v2/webhooks: 200 + webhook (204 when the client sent `data.id`)."""
    state = sim_state(request)
    body = await read_json(request)
    path = request.url.path
    with state.lock:
        _manager(state, request)
        data = require_data(body, path)
        webhook = _permitted(data)
        client_id = webhook.pop("id", None)
        webhook.setdefault("metadata", {})
        _validate(webhook, path)
        webhook["id"] = state.new_uuid()
        state.webhooks[webhook["id"]] = webhook
        return json_response({"data": webhook_json(webhook)}, 204 if client_id else 200)


@router.patch(BASE + "/{webhook_id}")
async def update(webhook_id: str, request: Request) -> Response:
    """PATCH /api/v2/webhooks/:id."""
    state = sim_state(request)
    body = await read_json(request)
    path = request.url.path
    with state.lock:
        _manager(state, request)
        webhook = _find(state, webhook_id, path)
        changes = _permitted(require_data(body, path))
        changes.pop("id", None)
        _validate({**webhook, **changes}, path)
        webhook.update(changes)
        return json_response({"data": webhook_json(webhook)})


@router.delete(BASE + "/{webhook_id}")
async def destroy(webhook_id: str, request: Request) -> Response:
    """DELETE /api/v2/webhooks/:id."""
    state = sim_state(request)
    path = request.url.path
    with state.lock:
        _manager(state, request)
        webhook = _find(state, webhook_id, path)
        del state.webhooks[webhook_id]
        return json_response({"data": {"id": webhook["id"]}})
