"""The inbound HTTP API departments call (FastAPI, served by ``cpims-adapter serve``).

    from adapter.api import ApiSettings, create_app

    app = create_app(settings, store=store, keyring=keyring,
                     primero_client_factory=lambda: PrimeroClient.from_settings(settings.primero))

Routes, authentication and idempotency are described in :mod:`adapter.api.app` and served as
``/openapi.json``; the messages are in :mod:`adapter.api.schemas`; running it under uvicorn
(TLS, mutual TLS) in :mod:`adapter.api.server`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from adapter.config.api import ApiSettings

if TYPE_CHECKING:
    from adapter.api.app import create_app

__all__ = ["ApiSettings", "create_app"]


def __getattr__(name: str) -> Any:
    # Lazy: adapter.config imports ApiSettings from this package, and the app imports the
    # configuration; importing the app here eagerly would make that a cycle.
    if name == "create_app":
        from adapter.api.app import create_app

        return create_app
    raise AttributeError(f"module 'adapter.api' has no attribute {name!r}")
