"""A fault-injecting reverse proxy on loopback, for servers we run but do not control.

The health department is a real FHIR server (sekmet, ``fhir_server.py``): it cannot be told to
fail. ``FaultProxy`` sits in front of it and applies a fault plan (``faults.py``) to what passes
through; the adapter is configured with the proxy's URL. Sekmet writes its own base URL into
``Location`` headers and ``Bundle.link``; the proxy rewrites that origin to its own, so paging and
follow-up reads keep going through the faults.

Control API (no authentication), as on every simulator: ``GET /_sim/faults`` (what fired),
``POST /_sim/faults`` ``{seed?, rules: [...]}``, ``DELETE /_sim/faults``.
"""

from __future__ import annotations

import threading
from typing import Any
from urllib.parse import urlsplit

import httpx
import uvicorn
from fastapi import APIRouter, FastAPI, Request, Response
from fastapi.responses import JSONResponse
from starlette.background import BackgroundTask

from adapter.errors import ConfigError
from adapter.serving import ServedApp
from adapter.simulator.faults import FaultInjector, FaultMiddleware, FaultPlan, parse_plan

# Hop-by-hop headers (RFC 9110 §7.6.1) and those the proxy recomputes.
_DROPPED = {"connection", "keep-alive", "transfer-encoding", "content-length", "host"}


class _ProxyState:
    def __init__(self, plan: FaultPlan | None) -> None:
        self.lock = threading.Lock()
        self.injector = FaultInjector(plan) if plan is not None else None


class FaultProxy(ServedApp):
    """Forward ``127.0.0.1:<port>`` to ``upstream`` (an origin, e.g. http://127.0.0.1:8090),
    with a fault plan.

    >>> with FaultProxy(fhir.origin, plan) as proxy:
    ...     base_url = proxy.url + "/fhir"
    """

    def __init__(
        self,
        upstream: str,
        plan: FaultPlan | None = None,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        timeout_seconds: float = 60.0,
    ) -> None:
        parts = urlsplit(upstream)
        self.upstream = f"{parts.scheme}://{parts.netloc}"
        self.host = host
        self.port = port
        self.timeout_seconds = timeout_seconds
        self.state = _ProxyState(plan)
        self.server_name = "fault-proxy"

    @property
    def url(self) -> str:
        """The proxy's origin, e.g. http://127.0.0.1:54321."""
        return f"http://{self.host}:{self.port}"

    def set_plan(self, plan: FaultPlan | None) -> None:
        """Replace (or, with None, clear) the fault plan."""
        with self.state.lock:
            self.state.injector = FaultInjector(plan) if plan is not None else None

    def uvicorn_config(self) -> uvicorn.Config:
        return uvicorn.Config(self._app(), log_level="warning", access_log=False, lifespan="off")

    def _app(self) -> FastAPI:
        app = FastAPI(title="Fault proxy", openapi_url=None, docs_url=None, redoc_url=None)
        app.include_router(_control(self))
        # No pooled client: each request gets its own, so a hung upstream call never holds a
        # connection another request needs.
        upstream, own = self.upstream.encode(), self.url.encode()

        async def forward(request: Request) -> Response:
            client = httpx.AsyncClient(timeout=self.timeout_seconds)
            headers = {k: v for k, v in request.headers.items() if k.lower() not in _DROPPED}
            try:
                answer = await client.request(
                    request.method,
                    self.upstream + request.url.path,
                    params=request.url.query or None,
                    headers=headers,
                    content=(await request.body()).replace(own, upstream),
                )
            except httpx.TransportError:
                await client.aclose()
                # What a reverse proxy answers when the server behind it is gone.
                return JSONResponse({"error": "bad gateway"}, status_code=502)
            body = answer.content.replace(upstream, own)
            kept = {
                k: v.replace(self.upstream, self.url)
                for k, v in answer.headers.items()
                if k.lower() not in _DROPPED and k.lower() != "content-encoding"
            }
            return Response(
                body,
                status_code=answer.status_code,
                headers=kept,
                background=BackgroundTask(client.aclose),
            )

        app.add_api_route(
            "/{path:path}", forward, methods=["GET", "POST", "PUT", "PATCH", "DELETE"]
        )
        app.add_middleware(FaultMiddleware, injector=lambda: self.state.injector)
        return app


def _control(proxy: FaultProxy) -> APIRouter:
    router = APIRouter(prefix="/_sim")

    @router.get("/faults")
    async def report() -> Response:
        injector = proxy.state.injector
        return JSONResponse({"plan": injector.report() if injector else None})

    @router.post("/faults")
    async def install(request: Request) -> Response:
        body: Any = await request.json()
        try:
            plan = parse_plan(body, source="the body")
        except ConfigError as exc:
            return JSONResponse({"error": str(exc)}, status_code=422)
        proxy.set_plan(plan)
        return JSONResponse({"installed": True}, status_code=201)

    @router.delete("/faults")
    async def clear() -> Response:
        proxy.set_plan(None)
        return JSONResponse({"installed": False})

    return router
