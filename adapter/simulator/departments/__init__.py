"""Simulated department systems — police, birth registration, courts, and a generic one.

No Pakistani police, NADRA or court system can be run here (departments.md §0, §7), so these
small FastAPI servers are the adapter's peers in the demo and the tests. Each runs on a free
loopback port (``DepartmentSimulator``), authenticates like a real department API would (API
key, Basic, or OAuth2 client credentials with expiring tokens), keeps one record per referral
and replays the first answer to a repeated ``Idempotency-Key``. ``Desk`` is the staff's side:
register an FIR, make a court order, register a birth, inject faults.

Each department module's docstring lists its endpoints; ``app.py`` the shared control API.
"""

from adapter.simulator.departments.desk import Desk
from adapter.simulator.departments.server import ROUTERS, DepartmentSimulator
from adapter.simulator.departments.state import (
    API_KEY,
    API_KEY_HEADER,
    BASIC_PASSWORD,
    BASIC_USER,
    CLIENT_ID,
    CLIENT_SECRET,
)

__all__ = [
    "API_KEY",
    "API_KEY_HEADER",
    "BASIC_PASSWORD",
    "BASIC_USER",
    "CLIENT_ID",
    "CLIENT_SECRET",
    "ROUTERS",
    "DepartmentSimulator",
    "Desk",
]
