"""FastAPI application factory: Primero routes under `/api/v2`, control API under `/_sim`."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Awaitable, Callable, MutableMapping
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI, Request, Response
from starlette.exceptions import HTTPException as StarletteHTTPException

from adapter.simulator.faults import FaultMiddleware
from adapter.simulator.primero import (
    routes_auth,
    routes_case_actions,
    routes_cases,
    routes_config,
    routes_control,
    routes_history,
    routes_modules,
    routes_referrals,
    routes_webhooks,
)
from adapter.simulator.primero.endpoint import error_response
from adapter.simulator.primero.errors import PrimeroError, api_error
from adapter.simulator.primero.state import Fault, SimulatorState
from adapter.simulator.primero.webhooks import WebhookDispatcher

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]


class FaultsAndStats:
    """ASGI middleware: count requests by route, inject queued faults and delays."""

    def __init__(self, app: ASGIApp, state: SimulatorState) -> None:
        self.app = app
        self.state = state

    def _take_fault(self, path: str) -> Fault | None:
        if path.startswith("/_sim"):
            return None
        with self.state.lock:
            for fault in self.state.faults:
                if path.startswith(fault.path_prefix) and fault.count > 0:
                    fault.count -= 1
                    if fault.count == 0:
                        self.state.faults.remove(fault)
                    return fault
        return None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        fault = self._take_fault(scope["path"])
        if fault is not None and fault.delay_seconds:
            await asyncio.sleep(fault.delay_seconds)
        if fault is not None and fault.status:
            await self._send_fault(fault, scope, send)
        else:
            await self.app(scope, receive, send)
        route = scope.get("route")
        template = getattr(route, "path", None) or "<unmatched>"
        with self.state.lock:
            self.state.stats[f"{scope['method']} {template}"] += 1

    @staticmethod
    async def _send_fault(fault: Fault, scope: Scope, send: Send) -> None:
        headers: list[tuple[bytes, bytes]] = []
        if fault.retry_after is not None:
            headers.append((b"retry-after", str(fault.retry_after).encode()))
        path = scope["path"]
        if fault.status == 429:
            body, media = b"Retry later\n", b"text/plain"
        elif fault.status == 502:
            # What the reverse proxy in front of Primero answers when Puma is gone.
            body = b"<html><head><title>502 Bad Gateway</title></head><body>502</body></html>"
            media = b"text/html"
        else:
            message = "Service Unavailable" if fault.status == 503 else "Internal Server Error"
            body = json.dumps(
                {"errors": [{"status": fault.status, "resource": path, "message": message}]}
            ).encode()
            media = b"application/json; charset=utf-8"
        headers.append((b"content-type", media))
        headers.append((b"content-length", str(len(body)).encode()))
        await send({"type": "http.response.start", "status": fault.status, "headers": headers})
        await send({"type": "http.response.body", "body": body})


def create_app(state: SimulatorState, deliver_webhooks: bool = True) -> FastAPI:
    """Build the simulator app over a state (the webhook worker runs with the app's lifespan)."""

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        dispatcher = WebhookDispatcher(state) if deliver_webhooks else None
        if dispatcher:
            dispatcher.start()
        try:
            yield
        finally:
            if dispatcher:
                dispatcher.stop()

    app = FastAPI(
        title="Primero v2 simulator",
        docs_url=None,
        redoc_url=None,
        openapi_url=None,
        lifespan=lifespan,
    )
    app.state.sim = state

    @app.exception_handler(PrimeroError)
    async def primero_error(_: Request, error: PrimeroError) -> Response:
        return error_response(error)

    @app.exception_handler(StarletteHTTPException)
    async def routing_error(request: Request, error: StarletteHTTPException) -> Response:
        # Rails answers an unknown route (or verb) with ActionController::RoutingError: 404.
        status = 404 if error.status_code in (404, 405) else error.status_code
        return error_response(api_error(status, request.url.path, "Not Found"))

    for module in (
        routes_auth,
        routes_cases,
        routes_case_actions,
        routes_referrals,
        routes_history,
        routes_config,
        routes_webhooks,
        routes_modules,
        routes_control,
    ):
        app.include_router(module.router)

    def expire_sessions() -> None:
        # Session expiry mid-run (primero-api.md §2): every cookie session is gone at once.
        with state.lock:
            state.sessions.clear()

    # Added first, so it runs inside FaultsAndStats: faulted requests are counted too.
    app.add_middleware(
        FaultMiddleware, injector=lambda: state.fault_injector, expire_sessions=expire_sessions
    )
    app.add_middleware(FaultsAndStats, state=state)
    return app
