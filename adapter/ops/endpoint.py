"""The operations endpoint for monitoring: ``/healthz``, ``/readyz`` and ``/metrics``.

- ``/healthz`` (liveness): the process answers, the state store answers ``SELECT 1``, and the
  embedding service's own ``liveness`` checks (e.g. the scheduler thread) are true.
- ``/readyz`` (readiness): also every state migration is applied and the KEK unwraps the key
  ring, so the process can actually sync.
- ``/metrics``: Prometheus text format from a registry of its own (adapter/ops/metrics.py).

Bodies are tiny JSON documents, ``{"status": "ok" | "unavailable", "checks": {...}}``: each
of our checks is ``true`` or a short reason that names the fix (never a URL with credentials,
never an exception text), and ``process`` holds what the embedding service's ``liveness``
reported.

The ``cpims-adapter run`` daemon serves it on ``ops.host``/``ops.port`` with
:class:`adapter.serving.BackgroundServer`; see :func:`serve_ops`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import sqlalchemy as sa
import uvicorn
from fastapi import FastAPI, Response
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from adapter.config import Settings
from adapter.errors import AdapterError
from adapter.ops.metrics import build_registry
from adapter.serving import BackgroundServer, bind
from adapter.state import StateStore

# What the embedding process reports about itself (its scheduler, its stop flag). An "ok" key
# decides if present; otherwise any value that is False makes /healthz (and /readyz) 503.
Liveness = Callable[[], Mapping[str, Any]]


def create_ops_app(
    settings: Settings, store: StateStore, *, liveness: Liveness | None = None
) -> FastAPI:
    """The FastAPI app of the operations endpoint, reading ``store``.

    ``liveness`` reports on the embedding process, e.g. ``{"scheduler": "running", "ok":
    True}``: ``ok`` decides when present, else any ``False`` value makes it unhealthy.
    """
    app = FastAPI(
        title="cpims-adapter operations",
        docs_url=None,
        redoc_url=None,
        openapi_url=None,
    )
    registry = build_registry(settings, store)

    def live_checks() -> tuple[dict[str, Any], bool]:
        checks: dict[str, Any] = {"state_store": _store_answers(store)}
        alive = True
        if liveness is not None:
            try:
                process = dict(liveness())
            except Exception as exc:  # noqa: BLE001 - a broken probe means "not alive"
                process, alive = {"error": f"liveness raised {exc.__class__.__name__}"}, False
            else:
                alive = _alive(process)
            checks["process"] = process
        return checks, alive

    @app.get("/healthz")
    def healthz() -> JSONResponse:
        checks, alive = live_checks()
        return _answer(checks, alive)

    @app.get("/readyz")
    def readyz() -> JSONResponse:
        checks, alive = live_checks()
        if checks["state_store"] is True:
            checks["migrations"] = _migrations_current(store)
            checks["keys"] = _keys_unwrap(settings, store)
        return _answer(checks, alive)

    @app.get("/metrics")
    def metrics() -> Response:
        return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)

    return app


def serve_ops(
    settings: Settings, store: StateStore, *, liveness: Liveness | None = None
) -> BackgroundServer | None:
    """Start the endpoint on ``ops.host``:``ops.port`` in a background thread (None if
    ``ops.port`` is 0, the endpoint turned off). The caller stops it."""
    if settings.ops.port == 0:
        return None
    sock = bind(settings.ops.host, settings.ops.port)
    config = uvicorn.Config(
        create_ops_app(settings, store, liveness=liveness),
        log_level="warning",
        access_log=False,
        lifespan="off",
    )
    server = BackgroundServer(config, sock, name="cpims-adapter-ops")
    server.start()
    return server


def _alive(process: Mapping[str, Any]) -> bool:
    if "ok" in process:
        return process["ok"] is True
    return all(value is not False for value in process.values())


def _answer(checks: dict[str, Any], alive: bool) -> JSONResponse:
    ours = (value for key, value in checks.items() if key != "process")
    ok = alive and all(value is True for value in ours)
    return JSONResponse(
        {"status": "ok" if ok else "unavailable", "checks": checks},
        status_code=200 if ok else 503,
    )


def _store_answers(store: StateStore) -> bool | str:
    try:
        with store.transaction() as conn:
            conn.execute(sa.text("SELECT 1"))
    except AdapterError:
        return "the state store does not answer; check state.url and the database server"
    return True


def _migrations_current(store: StateStore) -> bool | str:
    try:
        pending = store.pending_migrations()
    except AdapterError:
        return "the state store does not answer"
    if pending:
        return f"{len(pending)} migrations pending; run `cpims-adapter db upgrade`"
    return True


def _keys_unwrap(settings: Settings, store: StateStore) -> bool | str:
    from adapter.privacy import KeyRing

    try:
        KeyRing.open(store, settings.privacy.load_kek())
    except AdapterError as exc:
        # Our errors name the setting to fix and carry no key material.
        return f"the key ring cannot be opened: {exc}"
    return True
