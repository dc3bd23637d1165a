"""The console's FastAPI app: its routes, security headers and error pages, mounted at
``/console`` on the inbound API (``mount_console``), or built alone for tests
(``build_console``). The package's ``__init__`` imports nothing, so that the CLI's `console`
commands do not load the web stack."""

from __future__ import annotations

from collections.abc import Callable
from urllib.parse import quote

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import FileResponse, Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from adapter.config import Settings
from adapter.console import dpo, establishment, operator, reviewer
from adapter.console.accounts import Account, Accounts, Role
from adapter.console.signin import (
    IdentityClaims,
    add_oidc_routes,
    add_sign_in_routes,
    sign_in_with_identity,
)
from adapter.console.web import (
    HERE,
    PREFIX,
    SECURITY_HEADERS,
    Console,
    Refused,
    SignInNeeded,
    safe_next,
)
from adapter.errors import ConfigError
from adapter.privacy.keys import KeyRing
from adapter.registry import Registry
from adapter.state import StateStore

__all__ = [
    "Account",
    "Accounts",
    "Console",
    "IdentityClaims",
    "Role",
    "build_console",
    "mount_console",
    "sign_in_with_identity",
]


def mount_console(
    app: FastAPI,
    settings: Settings,
    store: StateStore,
    keyring: KeyRing,
    registry: Callable[[], Registry],
) -> None:
    """Serve the console under ``/console`` on ``app`` when ``[console] enabled``."""
    if settings.console.enabled:
        app.mount(PREFIX, build_console(Console.build(settings, store, keyring, registry)))


def build_console(console: Console) -> FastAPI:
    """The console's own ASGI app (mounted at ``/console``): its pages, its static file, its
    headers and its error pages."""
    if not console.settings.cookie_secure and not console.full_settings.api.is_loopback():
        raise ConfigError(
            "console.cookie_secure = false is only for a development console on loopback: "
            "serve the API on 127.0.0.1, or set cookie_secure = true behind HTTPS."
        )
    app = FastAPI(docs_url=None, redoc_url=None, openapi_url=None)
    app.state.console = console
    app.add_middleware(_SecurityHeaders)

    @app.exception_handler(Refused)
    async def refused(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, Refused)
        visit = console.visit(request)
        return console.render(visit, "refused.html", status=exc.status, problem=str(exc))

    @app.exception_handler(SignInNeeded)
    async def sign_in_needed(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, SignInNeeded)
        visit = console.visit(request)
        return console.redirect(visit, f"{PREFIX}/sign-in?next={_quoted(safe_next(exc.next_path))}")

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, StarletteHTTPException)
        visit = console.visit(request)
        problem = "not_found" if exc.status_code == 404 else "refused"
        return console.render(visit, "refused.html", status=exc.status_code, problem=problem)

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, exc: Exception) -> Response:
        visit = console.visit(request)
        return console.render(visit, "refused.html", status=400, problem="invalid")

    @app.get("/static/console.css")
    async def stylesheet() -> Response:
        return FileResponse(
            HERE / "static" / "console.css",
            media_type="text/css",
            headers={"Cache-Control": "public, max-age=3600"},
        )

    add_sign_in_routes(app, console)
    add_oidc_routes(app, console)
    establishment.add_routes(app, console)
    operator.add_routes(app, console)
    dpo.add_routes(app, console)
    reviewer.add_routes(app, console)
    return app


def _quoted(path: str) -> str:
    return quote(path, safe="/")


class _SecurityHeaders:
    """The console's security headers on every answer, errors and the stylesheet included."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                present = {name.lower() for name, _ in headers}
                for name, value in SECURITY_HEADERS.items():
                    if name.lower().encode() not in present:
                        headers.append((name.lower().encode(), value.encode()))
                message["headers"] = headers
            await send(message)

        await self.app(scope, receive, with_headers)
