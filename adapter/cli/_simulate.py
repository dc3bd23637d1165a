"""`cpims-adapter simulate ...`: run the built-in simulators."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

FaultsOption = Annotated[
    Path | None,
    typer.Option(
        "--faults",
        help="A fault plan (JSON or TOML; adapter/simulator/faults.py) active from the start.",
    ),
]

app = typer.Typer(help="Run a built-in simulator (a rehearsal target).", no_args_is_help=True)


@app.command("primero")
def primero(
    port: Annotated[int, typer.Option(help="Port on 127.0.0.1 (0 = any free port).")] = 3000,
    cases: Annotated[int, typer.Option(help="Synthetic cases to seed.")] = 500,
    seed: Annotated[int, typer.Option(help="Random seed for the synthetic data.")] = 42,
    host: Annotated[str, typer.Option(help="Address to bind; keep loopback.")] = "127.0.0.1",
    faults: FaultsOption = None,
) -> None:
    """Serve a Primero v2 simulator with synthetic cases until interrupted."""
    from adapter.simulator.faults import load_plan
    from adapter.simulator.primero.server import serve_forever

    plan = load_plan(faults) if faults else None
    serve_forever(port=port, cases=cases, seed=seed, host=host, faults=plan)


@app.command("department")
def department(
    name: Annotated[str, typer.Argument(help="police, birth_registration, courts or generic.")],
    port: Annotated[int, typer.Option(help="Port on 127.0.0.1.")] = 8081,
    auth: Annotated[str, typer.Option(help="none, api_key, basic or oauth2.")] = "api_key",
    host: Annotated[str, typer.Option(help="Address to bind; keep loopback.")] = "127.0.0.1",
    faults: FaultsOption = None,
) -> None:
    """Serve a department system simulator (police, NADRA/union council, courts) until
    interrupted; it prints its credentials and control API."""
    from adapter.simulator.departments.server import serve_forever
    from adapter.simulator.faults import load_plan

    plan = load_plan(faults) if faults else None
    serve_forever(name, port=port, host=host, auth=auth, faults=plan)  # type: ignore[arg-type]
