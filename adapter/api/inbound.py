"""The inbound API as ``serve`` and ``run`` start it: the departments' routes, the registry's
routes beside them and Primero's webhook, over one state store and key ring."""

from __future__ import annotations

from fastapi import FastAPI

from adapter.api.app import create_app
from adapter.api.server import ApiServer
from adapter.api.webhook import build_webhook_router
from adapter.app.record_types import declared_records
from adapter.config import Settings
from adapter.errors import ConfigError
from adapter.primero import PrimeroClient
from adapter.privacy import KeyRing
from adapter.registry import Registry
from adapter.registry.api import build_router
from adapter.state import StateStore


def inbound_app(settings: Settings, store: StateStore) -> FastAPI:
    """The inbound API app with the registry's routes beside it (``serve`` and ``run``)."""
    keyring = KeyRing.open(store, settings.privacy.load_kek())
    # One registry per process for the check route and the web console's checks: they take
    # their write turns together (adapter/registry/_context.py WriteTurns).
    registry = Registry.open(store, keyring, settings.registry)
    app = create_app(
        settings,
        store=store,
        keyring=keyring,
        primero_client_factory=lambda: PrimeroClient.from_settings(settings.primero),
        api_settings=settings.api,
        record_types=declared_records(settings),
        registry=registry,
    )
    # The registry authenticates establishments itself (its own API keys and quotas), so its
    # routes sit beside the departments' rather than behind their credentials.
    app.include_router(build_router(registry))
    app.include_router(
        build_webhook_router(
            store,
            sorted(settings.jobs),
            settings.api.primero_webhook_key_sha256,
            max_body_bytes=settings.api.max_body_bytes,
        )
    )
    return app


def start_inbound_api(settings: Settings, store: StateStore) -> ApiServer:
    """The inbound API, started on ``[api] host``/``port`` beside `run`'s jobs."""
    api = settings.api
    app = inbound_app(settings, store)
    try:
        return ApiServer(app, api, host=api.host, port=api.port).start()
    except OSError as exc:
        raise ConfigError(
            f"the inbound API cannot listen on {api.host}:{api.port} "
            f"({exc.strerror or type(exc).__name__}): set [api] port, or serve it from one "
            "instance only ([scheduler] serve_api = false elsewhere)."
        ) from None
