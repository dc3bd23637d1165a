"""`cpims-adapter simulate ...`: run the built-in simulators.

The simulators stand beside the product (docs/architecture.md): each command imports the one it
serves inside the command, so the production commands (`run`, `sync`, `serve`, ...) never load a
simulator, its seed data or its routes. They are developer and rehearsal tools, not parts.
"""

from __future__ import annotations

import signal
import threading
from pathlib import Path
from typing import Annotated, get_args

import typer

from adapter.cli._common import out
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


@app.command("fhir")
def fhir(
    control_port: Annotated[
        int, typer.Option(help="Port of the hospital desk's control API (0 = any free port).")
    ] = 8091,
    answer: Annotated[
        str,
        typer.Option(
            help="accept: the desk answers new referrals by itself every --every seconds; "
            "manual: only through the control API."
        ),
    ] = "accept",
    every: Annotated[float, typer.Option(help="Seconds between the desk's rounds.")] = 2.0,
    reject_every: Annotated[
        int, typer.Option(help="Reject every Nth new referral (no capacity); 0 = never.")
    ] = 0,
    complete_after: Annotated[
        float,
        typer.Option(
            help="Seconds after acceptance the desk completes a referral with a medico-legal "
            "report; negative = never (complete through the control API)."
        ),
    ] = 10.0,
) -> None:
    """Serve a real FHIR R4 server (sekmet, as the demo and tests use) and a simulated hospital
    that answers referrals, until interrupted; it prints the config to paste."""
    from adapter.simulator.fhir_server import start_fhir_server
    from adapter.simulator.hospital_desk import DeskPolicy, HospitalDesk, config_lines

    if answer not in ("accept", "manual"):
        raise typer.BadParameter("accept or manual", param_hint="--answer")
    if control_port:
        _check_free("127.0.0.1", control_port)  # before the FHIR server starts (seconds)
    out.print("starting the FHIR server (sekmet; installed into .venv-fhir on first use) ...")
    server = start_fhir_server()
    policy = DeskPolicy(answer, every, reject_every, complete_after)  # type: ignore[arg-type]
    desk = HospitalDesk(server.base_url, policy, port=control_port)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    try:
        desk.start()
        control = desk.control_url
        out.print(f"FHIR R4 server (sekmet) at {server.base_url}", highlight=False)
        out.print(f"hospital desk control API at {control}", highlight=False)
        out.print("Paste into your config file (auth none: this server is loopback only):")
        for line in config_lines(server.base_url):
            out.print(f"  {line}", markup=False, highlight=False)
        if answer == "accept":
            rejects = f", rejecting every {reject_every}th" if reject_every else ""
            completes = (
                f"completes them {complete_after:g} s after acceptance"
                if complete_after >= 0
                else "never completes them"
            )
            out.print(
                f"The desk accepts new referrals every {every:g} s{rejects}, and {completes}.",
                highlight=False,
            )
        out.print(
            f"By hand: curl {control}/tasks; curl -X POST "
            f"{control}/tasks/REFERRAL_KEY/accept (or reject, complete). Ctrl-C stops.",
            markup=False,
            highlight=False,
        )
        # Waiting on an Event keeps Ctrl-C (KeyboardInterrupt) and SIGTERM both prompt.
        while not stop.wait(0.5):
            pass
    except KeyboardInterrupt:
        pass
    finally:
        desk.stop()
        server.cleanup()
