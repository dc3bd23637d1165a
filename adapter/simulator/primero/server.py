"""Run the simulator as a real HTTP server (uvicorn) in a thread or in the foreground."""

from __future__ import annotations

import signal
import threading
from typing import Any

import uvicorn

from adapter.serving import ServedApp, bind
from adapter.simulator.faults import FaultInjector, FaultPlan
from adapter.simulator.primero.app import create_app
from adapter.simulator.primero.seed import seed
from adapter.simulator.primero.seed_access import SEED_PASSWORD, load_access
from adapter.simulator.primero.seed_forms import load_forms_and_lookups
from adapter.simulator.primero.state import Options, SimulatorState

INTEGRATION_USER = "cpims-adapter"


def build_state(cases: int = 0, seed_value: int = 42, **options: Any) -> SimulatorState:
    """A configured state (forms, lookups, users, agencies) with `cases` seeded cases."""
    state = SimulatorState(Options(**options))
    load_forms_and_lookups(state)
    load_access(state)
    if cases:
        seed(state, cases=cases, seed=seed_value)
        # Warm the two orders clients use (default list order, incremental pulls).
        state.ordered_case_ids("created_at", ascending=False)
        state.ordered_case_ids("last_updated_at", ascending=True)
    return state


class PrimeroSimulator(ServedApp):
    """A simulated Primero v2 server on a real socket.

    >>> with PrimeroSimulator(cases=100) as sim:
    ...     requests.get(sim.url + "/api/v2/cases", auth=("cpims-adapter", "sim-password"))

    `port=0` picks a free port. Extra keyword options go to `Options` (e.g.
    `session_timeout_seconds`, `primero_version`, `paranoid`).
    """

    def __init__(
        self, cases: int = 0, seed: int = 42, port: int = 0, host: str = "127.0.0.1", **options: Any
    ) -> None:
        self.host = host
        self.port = port
        self.state = build_state(cases, seed, **options)
        self.server_name = "primero-simulator"

    @property
    def url(self) -> str:
        """Base URL, e.g. http://127.0.0.1:54321."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    def on_bound(self) -> None:
        if self.state.options.hostname == Options().hostname:
            self.state.options.hostname = f"{self.host}:{self.port}"

    def uvicorn_config(self) -> uvicorn.Config:
        # lifespan "on": the webhook worker runs with the app.
        return uvicorn.Config(
            create_app(self.state), log_level="warning", access_log=False, lifespan="on"
        )


def serve_forever(
    port: int = 3000,
    cases: int = 1000,
    seed: int = 42,
    host: str = "127.0.0.1",
    faults: FaultPlan | None = None,
) -> None:
    """Foreground server for `cpims-adapter simulate primero`; stops on SIGINT / SIGTERM.
    ``faults`` is a fault plan active from the first request (adapter/simulator/faults.py)."""
    state = build_state(cases, seed)
    if faults is not None:
        state.fault_injector = FaultInjector(faults)
        state.mutate_on_list = faults.mutate_on_list
    sock = bind(host, port)
    bound = sock.getsockname()[1]
    state.options.hostname = f"{host}:{bound}"
    print(
        f"Primero simulator on http://{host}:{bound} with {cases} cases; "
        f"integration login {INTEGRATION_USER} / {SEED_PASSWORD} (control API: /_sim)",
        flush=True,
    )
    config = uvicorn.Config(create_app(state), log_level="warning", access_log=False, lifespan="on")
    # uvicorn re-raises the stopping signal once shut down; a no-op handler makes the command
    # end quietly with status 0 instead of dying from SIGTERM or printing a KeyboardInterrupt.
    previous = {}
    if threading.current_thread() is threading.main_thread():
        previous = {
            sig: signal.signal(sig, lambda *_: None) for sig in (signal.SIGINT, signal.SIGTERM)
        }
    try:
        uvicorn.Server(config).run(sockets=[sock])
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        sock.close()
