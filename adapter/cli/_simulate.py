"""`cpims-adapter simulate ...`: run the built-in simulators."""

from __future__ import annotations

from typing import Annotated

import typer

app = typer.Typer(help="Run a built-in simulator (a rehearsal target).", no_args_is_help=True)


@app.command("primero")
def primero(
    port: Annotated[int, typer.Option(help="Port on 127.0.0.1 (0 = any free port).")] = 3000,
    cases: Annotated[int, typer.Option(help="Synthetic cases to seed.")] = 500,
    seed: Annotated[int, typer.Option(help="Random seed for the synthetic data.")] = 42,
    host: Annotated[str, typer.Option(help="Address to bind; keep loopback.")] = "127.0.0.1",
) -> None:
    """Serve a Primero v2 simulator with synthetic cases until interrupted."""
    from adapter.simulator.primero.server import serve_forever

    serve_forever(port=port, cases=cases, seed=seed, host=host)


@app.command("department")
def department(
    name: Annotated[str, typer.Argument(help="police, birth_registration, courts or generic.")],
    port: Annotated[int, typer.Option(help="Port on 127.0.0.1.")] = 8081,
    auth: Annotated[str, typer.Option(help="none, api_key, basic or oauth2.")] = "api_key",
    host: Annotated[str, typer.Option(help="Address to bind; keep loopback.")] = "127.0.0.1",
) -> None:
    """Serve a department system simulator (police, NADRA/union council, courts) until
    interrupted; it prints its credentials and control API."""
    from adapter.simulator.departments.server import serve_forever

    serve_forever(name, port=port, host=host, auth=auth)  # type: ignore[arg-type]
