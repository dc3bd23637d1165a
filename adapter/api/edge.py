"""The inbound API's edge: its error answers and the middleware that writes the access log
and turns an unexpected failure into a bare 500 (nothing of a body, query or header logged).
"""

import logging
import time

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from adapter.api.errors import ApiError, error_response, field_path
from adapter.errors import AdapterError

log = logging.getLogger("adapter.api")


def install_error_handlers(app: FastAPI) -> None:
    """Every error answered as ``{"error": {"code", "message", "field"}}`` (errors.py)."""

    async def api_error(_: Request, exc: Exception) -> Response:
        assert isinstance(exc, ApiError)
        return exc.response()

    async def adapter_error(_: Request, exc: Exception) -> Response:
        # Our messages carry no personal data (errors.py); the client gets none of it.
        log.error("inbound request failed: %s: %s", type(exc).__name__, exc)
        return error_response(
            503,
            "temporarily_unavailable",
            "the adapter cannot take this message now; nothing was stored. Retry later.",
            headers={"Retry-After": "30"},
        )

    async def http_error(_: Request, exc: Exception) -> Response:
        assert isinstance(exc, StarletteHTTPException)
        if exc.status_code == 404:
            return error_response(404, "not_found", "no such route: see /openapi.json.")
        if exc.status_code == 405:
            return error_response(
                405,
                "method_not_allowed",
                "this route does not take that method: see /openapi.json.",
            )
        return error_response(exc.status_code, "http_error", "the request was refused.")

    async def request_invalid(_: Request, exc: Exception) -> Response:
        assert isinstance(exc, RequestValidationError)
        first = exc.errors()[0]
        loc = [p for p in first.get("loc", ()) if p not in ("body", "path", "query", "header")]
        field = field_path(loc)
        return error_response(
            422, "invalid_request", f"{field or 'the request'} is not valid here.", field
        )

    app.add_exception_handler(ApiError, api_error)
    app.add_exception_handler(AdapterError, adapter_error)
    app.add_exception_handler(StarletteHTTPException, http_error)
    app.add_exception_handler(RequestValidationError, request_invalid)


class EdgeMiddleware:
    """One access-log line per request (method, route *template*, status, time, department;
    never the raw path's query string or a body) and a last-resort 500 that neither logs nor
    returns more than the exception's class."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        answered: float | None = None
        status = 500
        response_started = False

        async def watch(message: Message) -> None:
            nonlocal status, response_started, answered
            if message["type"] == "http.response.start":
                status, response_started = int(message["status"]), True
            elif message["type"] == "http.response.body" and not message.get("more_body"):
                answered = time.perf_counter()  # the drain that follows is not the client's wait
            await send(message)

        try:
            await self.app(scope, receive, watch)
        except Exception as exc:  # noqa: BLE001 - answered as a 500; the class is logged
            log.error("inbound request failed: %s", type(exc).__name__)
            if not response_started:
                response = error_response(
                    500,
                    "internal_error",
                    "the adapter failed on this request; nothing to fix "
                    "on your side. Retry later with the same message_id.",
                )
                await response(scope, receive, watch)
        finally:
            route = getattr(scope.get("route"), "path", "-")
            department = (scope.get("state") or {}).get("department", "-")
            log.info(
                "%s %s %d %.0fms department=%s",
                scope.get("method"),
                route,
                status,
                ((answered or time.perf_counter()) - started) * 1000,
                department,
            )
