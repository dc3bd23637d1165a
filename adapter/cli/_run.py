"""`cpims-adapter run`: the long-running service (scheduled jobs, housekeeping, endpoints)."""

from __future__ import annotations

import sys

import typer

from adapter.cli._common import out, settings


def register(root: typer.Typer) -> None:
    root.command("run")(run)


def run() -> None:
    """Run the scheduled jobs and housekeeping until SIGTERM (systemd's stop), serving
    /healthz, /readyz and /metrics on [ops] and, with scheduler.serve_api, the inbound API.
    Start as many instances as you like on one PostgreSQL state store: each job runs in one
    of them at a time, and a killed instance's jobs move to another within one schedule
    interval."""
    # Lazy: the service loads every engine and the API; other commands need not.
    from adapter.api.inbound import start_inbound_api
    from adapter.app.service import Service

    config = settings()
    service = Service(config, inbound_api=start_inbound_api)

    def ready(started: Service) -> None:
        lines = [f"cpims-adapter run: {len(config.jobs)} jobs scheduled"]
        if started.ops_url:
            lines.append(f"health and metrics on {started.ops_url} (/healthz /readyz /metrics)")
        if started.api_url:
            lines.append(f"inbound API on {started.api_url}")
        out.print("; ".join(lines), highlight=False)
        sys.stdout.flush()

    service.serve_forever(on_ready=ready)
