"""`cpims-adapter serve`: the inbound API for departments, under uvicorn."""

from __future__ import annotations

import logging
import sys
from typing import Annotated

import typer

from adapter.cli._common import err, out, settings
from adapter.errors import ConfigError


def register(root: typer.Typer) -> None:
    root.command("serve")(serve)


def serve(
    host: Annotated[
        str | None,
        typer.Option(help="Address to listen on (default: api.host, 127.0.0.1)."),
    ] = None,
    port: Annotated[
        int | None,
        typer.Option(help="Port (default: api.port, 8700; 0 picks a free one).", min=0, max=65535),
    ] = None,
) -> None:
    """Serve the inbound API departments call (loopback unless TLS is configured);
    its OpenAPI description is at /openapi.json."""
    from adapter.api.inbound import inbound_app
    from adapter.api.server import serve_api
    from adapter.state import StateStore

    config = settings()
    api = config.api
    if not config.primero.url:
        raise ConfigError(
            "primero.url is not set (config [primero] or CPIMS_ADAPTER_PRIMERO__URL): the API "
            "writes departments' messages into Primero."
        )
    _route_server_logs()
    # Migrations and the first checks here, once; then the store is closed, so no connection
    # crosses the fork into a worker (each opens its own).
    with StateStore(config.state.url) as store:
        inbound_app(config, store)
    if not any(
        d.inbound_api_key_sha256 or d.inbound_client_cert_subjects
        for d in config.departments.values()
    ):
        err.print(
            "[yellow]warning:[/] no department has inbound credentials "
            "(departments.<name>.inbound_api_key_sha256): every request will get 401."
        )
    workers = api.worker_count

    def ready(url: str) -> None:
        plural = "es" if workers > 1 else ""
        out.print(
            f"Inbound API on {url} ({workers} process{plural}) — OpenAPI at {url}/openapi.json",
            highlight=False,
        )
        sys.stdout.flush()

    serve_api(
        lambda: inbound_app(config, StateStore(config.state.url)),
        api,
        host=host or api.host,
        port=api.port if port is None else port,
        workers=workers,
        on_ready=ready,
    )


def _route_server_logs() -> None:
    # uvicorn's own warnings go through the adapter's handlers (and their redacting filter).
    adapter_logger = logging.getLogger("adapter")
    server_logger = logging.getLogger("uvicorn")
    server_logger.handlers[:] = adapter_logger.handlers
    server_logger.setLevel(logging.WARNING)
    server_logger.propagate = False
