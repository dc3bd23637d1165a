"""`cpims-adapter simulate ...`: run the built-in simulators."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, get_args

import typer

from adapter.errors import ConfigError
from adapter.serving import bind

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

    if cases < 0:
        raise typer.BadParameter("must be 0 or more", param_hint="--cases")
    plan = load_plan(faults) if faults else None
    _check_free(host, port)
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
    from adapter.simulator.departments.server import ROUTERS, serve_forever
    from adapter.simulator.departments.state import AuthMode
    from adapter.simulator.faults import load_plan

    if name not in ROUTERS:
        raise typer.BadParameter(f"one of {', '.join(ROUTERS)}", param_hint="NAME")
    if auth not in get_args(AuthMode):
        raise typer.BadParameter(f"one of {', '.join(get_args(AuthMode))}", param_hint="--auth")
    plan = load_plan(faults) if faults else None
    _check_free(host, port)
    serve_forever(name, port=port, host=host, auth=auth, faults=plan)  # type: ignore[arg-type]


def _check_free(host: str, port: int) -> None:
    """A taken port is one line, before the simulator is built (uvicorn would log it at
    ERROR and exit 3, or the socket error would end in a traceback)."""
    try:
        bind(host, port).close()
    except OSError as exc:
        raise ConfigError(
            f"--port {port}: cannot listen on {host}:{port} ({exc.strerror or type(exc).__name__})"
            "; choose another port (0: any free port)."
        ) from None
