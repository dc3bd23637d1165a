"""What every Primero endpoint of the simulator does: guard, read the body, answer JSON."""

from __future__ import annotations

import json
from typing import Any

from fastapi import Request, Response

from adapter.simulator.primero import auth
from adapter.simulator.primero.errors import (
    WWW_AUTHENTICATE,
    PrimeroError,
    api_error,
    parameter_missing,
)
from adapter.simulator.primero.state import Json, SimulatorState


def sim_state(request: Request) -> SimulatorState:
    """The SimulatorState the app was created with."""
    state: SimulatorState = request.app.state.sim
    return state


def json_response(body: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    """Pre-encoded JSON (FastAPI's encoder is too slow for 1000-record pages)."""
    if status == 204:
        return Response(status_code=204, headers=headers)
    content = json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
    return Response(
        content=content,
        status_code=status,
        headers=headers,
        media_type="application/json; charset=utf-8",
    )


def error_response(error: PrimeroError) -> Response:
    """Render a PrimeroError (text bodies for Rack-level answers such as 429)."""
    headers = dict(error.headers)
    if error.status == 401:
        headers.setdefault("WWW-Authenticate", WWW_AUTHENTICATE)
    if isinstance(error.body, str):
        media = headers.pop("Content-Type", "text/plain")
        return Response(
            content=error.body, status_code=error.status, headers=headers, media_type=media
        )
    return json_response(error.body, error.status, headers)


def credentials(request: Request) -> auth.Credentials:
    """Authentication material of a request."""
    return auth.Credentials(
        authorization=request.headers.get("authorization"),
        session_id=request.cookies.get(auth.SESSION_COOKIE),
        csrf_header=request.headers.get("x-csrf-token"),
    )


def guard(state: SimulatorState, request: Request) -> auth.Principal:
    """ApplicationApiController before_actions: authenticate, config lock, CSRF (in that order).

    Call while holding `state.lock`.
    """
    given = credentials(request)
    principal = auth.authenticate(state, given)
    auth.check_config_lock(state, request.url.path)
    auth.check_csrf(principal, request.method, given.csrf_header, request.url.path)
    return principal


async def read_json(request: Request) -> Any:
    """The parsed JSON body ({} when empty); malformed JSON is a 400 as in Rails."""
    raw = await request.body()
    if not raw.strip():
        return {}
    try:
        return json.loads(raw)
    except ValueError as error:
        raise api_error(400, request.url.path, "Bad Request") from error


def require_data(body: Any, resource: str) -> Json:
    """`params.require(:data)`: a non-empty object, else ParameterMissing (422)."""
    data = body.get("data") if isinstance(body, dict) else None
    if not isinstance(data, dict) or not data:
        raise parameter_missing(resource, "data")
    return data


def query_pairs(request: Request) -> list[tuple[str, str]]:
    """The raw query string as (key, value) pairs, in order."""
    return list(request.query_params.multi_items())
