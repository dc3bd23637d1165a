"""Run a simulated department system as a real HTTP server (uvicorn) on loopback, in a thread."""

from __future__ import annotations

import uvicorn
from fastapi import APIRouter

from adapter.serving import ServedApp
from adapter.simulator.departments import birth_registration, courts, generic, police
from adapter.simulator.departments.app import create_app
from adapter.simulator.departments.state import AuthMode, DepartmentState
from adapter.simulator.faults import FaultInjector, FaultPlan

# Each department's own routes (its API, then its control endpoints).
ROUTERS: dict[str, list[APIRouter]] = {
    "police": [police.router, police.control],
    "birth_registration": [birth_registration.router, birth_registration.control],
    "courts": [courts.router, courts.control],
    "generic": [generic.router],
}


class DepartmentSimulator(ServedApp):
    """A simulated department system on a free port of 127.0.0.1.

    >>> with DepartmentSimulator("police", auth="oauth2") as police:
    ...     Desk(police.url).register_fir(key, station="PS-Clifton", sections=["328-A"])

    ``department`` is ``police``, ``birth_registration``, ``courts`` or ``generic``; ``auth``
    is what its API asks for (``none``, ``api_key``, ``basic``, ``oauth2``; credentials in
    ``adapter.simulator.departments.state``).
    """

    def __init__(
        self,
        department: str,
        *,
        auth: AuthMode = "api_key",
        token_lifetime: int = 3600,
        host: str = "127.0.0.1",
        port: int = 0,
    ) -> None:
        if department not in ROUTERS:
            raise ValueError(f"department must be one of {', '.join(ROUTERS)}")
        self.host = host
        self.port = port
        self.state = DepartmentState(department, auth=auth, token_lifetime=token_lifetime)
        self.app = create_app(self.state, ROUTERS[department])
        self.server_name = f"{department}-simulator"

    @property
    def url(self) -> str:
        """Base URL, e.g. http://127.0.0.1:54321."""
        return f"http://{self.host}:{self.port}"

    def uvicorn_config(self) -> uvicorn.Config:
        return uvicorn.Config(self.app, log_level="warning", access_log=False, lifespan="off")


def serve_forever(
    department: str,
    *,
    port: int = 8081,
    host: str = "127.0.0.1",
    auth: AuthMode = "api_key",
    faults: FaultPlan | None = None,
) -> None:
    """Foreground server for a ``simulate`` command; stops on SIGINT / SIGTERM (uvicorn).
    ``faults`` is a fault plan active from the first request (adapter/simulator/faults.py)."""
    from adapter.simulator.departments.state import (
        API_KEY,
        API_KEY_HEADER,
        BASIC_PASSWORD,
        BASIC_USER,
        CLIENT_ID,
        CLIENT_SECRET,
    )

    sim = DepartmentSimulator(department, auth=auth, host=host, port=port)
    if faults is not None:
        sim.state.fault_injector = FaultInjector(faults)
    login = {
        "none": "no authentication",
        "api_key": f"{API_KEY_HEADER}: {API_KEY}",
        "basic": f"basic {BASIC_USER} / {BASIC_PASSWORD}",
        "oauth2": f"oauth2 client {CLIENT_ID} / {CLIENT_SECRET} at /oauth/token",
    }[auth]
    print(
        f"{department} simulator on http://{host}:{port}; {login} (control API: /_sim)",
        flush=True,
    )
    config = uvicorn.Config(sim.app, host=host, port=port, log_level="warning", access_log=False)
    uvicorn.Server(config).run()
