"""The FastAPI application of a simulated department: auth, replays, faults, control API.

Shared by every department (``police``, ``birth_registration``, ``courts``, ``generic``):

- authentication as the department's API would ask for it: ``api_key`` (``X-API-Key``),
  ``basic``, or ``oauth2`` (client credentials at ``POST /oauth/token``, tokens that expire);
- every write needs an ``Idempotency-Key``; a repeat gets the first answer back, unchanged;
- the control API under ``/_sim`` (no authentication): records, requests seen, faults,
  expiring tokens, and a record's status (each department adds its own, e.g. an FIR).
"""

from __future__ import annotations

import base64
import binascii
import hmac
import json
import secrets
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import parse_qs

from fastapi import APIRouter, FastAPI, Request, Response
from fastapi.responses import JSONResponse

from adapter.errors import ConfigError
from adapter.simulator.departments.state import (
    API_KEY,
    API_KEY_HEADER,
    BASIC_PASSWORD,
    BASIC_USER,
    CLIENT_ID,
    CLIENT_SECRET,
    IDEMPOTENCY_HEADER,
    DepartmentState,
    Fault,
    Json,
    Record,
)
from adapter.simulator.faults import FaultInjector, FaultMiddleware, parse_plan

Handler = Callable[[Json], tuple[int, Json]]


def state_of(request: Request) -> DepartmentState:
    state: DepartmentState = request.app.state.department
    return state


def error(status: int, message: str, **headers: str) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status, headers=headers or None)


async def read_json(request: Request) -> Any:
    raw = await request.body()
    if not raw:
        return None
    try:
        return json.loads(raw)
    except ValueError:
        return None


async def idempotent(request: Request, handle: Handler) -> Response:
    """Run a write once per Idempotency-Key; a repeat answers what the first one did."""
    state = state_of(request)
    key = request.headers.get(IDEMPOTENCY_HEADER)
    if not key:
        return error(400, f"{IDEMPOTENCY_HEADER} header is required on every write")
    body = await read_json(request)
    with state.lock:
        if key in state.replays:
            status, answer = state.replays[key]
            return JSONResponse(answer, status_code=status, headers={"Idempotent-Replayed": "true"})
        if not isinstance(body, dict):
            status, answer = 400, {"error": "the body must be a JSON object"}
        else:
            status, answer = handle(body)
        if status < 500:
            state.replays[key] = (status, answer)
    return JSONResponse(answer, status_code=status)


def referral_key_of(body: Json) -> str | None:
    key = body.get("referral_key")
    return key if isinstance(key, str) and key else None


def find(state: DepartmentState, referral_key: str) -> Record | None:
    return state.records.get(referral_key)


# --- authentication --------------------------------------------------------------------------


def _authorised(state: DepartmentState, request: Request) -> bool:
    if state.auth == "none":
        return True
    if state.auth == "api_key":
        return hmac.compare_digest(request.headers.get(API_KEY_HEADER, ""), API_KEY)
    header = request.headers.get("Authorization", "")
    if state.auth == "basic":
        return _basic_ok(header, BASIC_USER, BASIC_PASSWORD)
    if not header.startswith("Bearer "):
        return False
    expires = state.tokens.get(header.removeprefix("Bearer "))
    return expires is not None and expires > datetime.now(UTC)


def _basic_ok(header: str, user: str, password: str) -> bool:
    if not header.startswith("Basic "):
        return False
    try:
        decoded = base64.b64decode(header.removeprefix("Basic ")).decode()
    except (binascii.Error, UnicodeDecodeError):
        return False
    name, _, given = decoded.partition(":")
    return hmac.compare_digest(name, user) and hmac.compare_digest(given, password)


async def token(request: Request) -> Response:
    """``POST /oauth/token``: client credentials (RFC 6749 §4.4), Basic or form client auth."""
    state = state_of(request)
    form = {k: v[0] for k, v in parse_qs((await request.body()).decode()).items()}
    header = request.headers.get("Authorization", "")
    client_ok = _basic_ok(header, CLIENT_ID, CLIENT_SECRET) or (
        form.get("client_id") == CLIENT_ID and form.get("client_secret") == CLIENT_SECRET
    )
    if not client_ok:
        return error(401, "invalid_client", **{"WWW-Authenticate": "Basic"})
    if form.get("grant_type") != "client_credentials":
        return error(400, "unsupported_grant_type")
    issued = secrets.token_urlsafe(24)
    with state.lock:
        state.tokens[issued] = datetime.now(UTC) + timedelta(seconds=state.token_lifetime)
        state.token_fetches += 1
    return JSONResponse(
        {"access_token": issued, "token_type": "Bearer", "expires_in": state.token_lifetime}
    )


# --- the application -------------------------------------------------------------------------


def create_app(state: DepartmentState, routers: list[APIRouter]) -> FastAPI:
    """The department's app: control API and token endpoint first, then its own routes."""
    app = FastAPI(title=f"Simulated {state.department} system", openapi_url=None)
    app.state.department = state
    app.include_router(control)
    app.add_api_route("/oauth/token", token, methods=["POST"])
    for router in routers:
        app.include_router(router)

    @app.middleware("http")
    async def gatekeeper(
        request: Request, call_next: Callable[[Request], Awaitable[Response]]
    ) -> Response:
        path = request.url.path
        if path.startswith("/_sim") or path == "/oauth/token":
            return await call_next(request)
        with state.lock:
            state.requests.append(
                {
                    "method": request.method,
                    "path": path,
                    "idempotency_key": request.headers.get(IDEMPOTENCY_HEADER),
                }
            )
            fault = next((f for f in state.faults if path.startswith(f.path_prefix)), None)
            if fault is not None:
                fault.count -= 1
                if fault.count <= 0:
                    state.faults.remove(fault)
            authorised = _authorised(state, request)
        if not authorised and not (fault and not fault.after):
            return error(401, "unauthorised", **{"WWW-Authenticate": "Bearer"})
        if fault is None:
            return await call_next(request)
        if fault.after:
            await call_next(request)  # done, but the answer never reaches the adapter
        extra = {"Retry-After": str(fault.retry_after)} if fault.retry_after is not None else {}
        return error(fault.status, "injected fault", **extra)

    def expire_sessions() -> None:
        # An OAuth2 token revoked or expired mid-run: the adapter must fetch a new one.
        with state.lock:
            state.tokens.clear()

    # Outermost: a planned fault never reaches the gatekeeper (nor its request log).
    app.add_middleware(
        FaultMiddleware, injector=lambda: state.fault_injector, expire_sessions=expire_sessions
    )
    return app


control = APIRouter(prefix="/_sim")


@control.get("/records")
async def records(request: Request) -> Response:
    """Every record the department holds, as it holds it."""
    state = state_of(request)
    with state.lock:
        return JSONResponse([r.to_json() for r in state.records.values()])


@control.get("/requests")
async def requests_seen(request: Request) -> Response:
    """Every API request so far: method, path, idempotency key (no bodies)."""
    state = state_of(request)
    with state.lock:
        return JSONResponse({"requests": list(state.requests), "tokens": state.token_fetches})


@control.get("/faults")
async def fault_report(request: Request) -> Response:
    """The fault plan and what it fired so far (null without a plan)."""
    state = state_of(request)
    with state.lock:
        injector = state.fault_injector
        return JSONResponse({"plan": injector.report() if injector else None})


@control.delete("/faults")
async def clear_faults(request: Request) -> Response:
    """Clear the queued faults and the fault plan."""
    state = state_of(request)
    with state.lock:
        state.faults.clear()
        state.fault_injector = None
    return JSONResponse({"faults": 0})


@control.post("/faults")
async def add_fault(request: Request) -> Response:
    """``{status, count?, path_prefix?, retry_after?, after?}``: make the next requests fail
    (``after``: carry the request out, then lose the answer). ``{seed?, rules: [...]}``
    installs a fault plan instead (adapter/simulator/faults.py)."""
    body = await read_json(request)
    if isinstance(body, dict) and "rules" in body:
        try:
            plan = parse_plan(body, source="the body")
        except ConfigError as exc:
            return error(422, str(exc))
        state = state_of(request)
        with state.lock:
            state.fault_injector = FaultInjector(plan)
            return JSONResponse(state.fault_injector.report(), status_code=201)
    if not isinstance(body, dict) or not isinstance(body.get("status"), int):
        return error(422, "status (an HTTP status) is required")
    state = state_of(request)
    with state.lock:
        state.faults.append(
            Fault(
                status=body["status"],
                count=int(body.get("count", 1)),
                path_prefix=str(body.get("path_prefix", "/")),
                retry_after=body.get("retry_after"),
                after=bool(body.get("after", False)),
            )
        )
    return JSONResponse({"faults": len(state.faults)}, status_code=201)


@control.post("/tokens/expire")
async def expire_tokens(request: Request) -> Response:
    """Every issued token stops working now (the adapter must fetch a new one)."""
    state = state_of(request)
    with state.lock:
        state.tokens.clear()
    return JSONResponse({"expired": True})


@control.post("/referrals/{referral_key}/status")
async def set_status(referral_key: str, request: Request) -> Response:
    """``{status, note?, reason?, …}``: the department changes a record's status; any other
    keys are recorded as its outcome."""
    body = await read_json(request)
    if not isinstance(body, dict) or not isinstance(body.get("status"), str):
        return error(422, "status is required")
    state = state_of(request)
    with state.lock:
        record = find(state, referral_key)
        if record is None:
            return error(404, "no such referral")
        state.report(record, body.pop("status"), **body)
        return JSONResponse(record.to_json())
