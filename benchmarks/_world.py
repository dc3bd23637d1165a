"""A Primero simulator full of children already referred to the hospital, built in memory.

Creating referred cases through the simulator's HTTP API costs two requests and a full save
per case (minutes for 100,000), so the benchmarks build them straight into the simulator's
state, in the shape ``records.create_case`` and ``referrals.refer`` leave behind: a consented
CP case (non-S3 concern ``physically_or_mentally_abused``) owned by ``cp_worker1``, one health
service row, and one remote referral of that row to Civil Hospital Karachi, ``in_progress``.

Run as a program it serves such a world on loopback, in its own process, so that neither its
CPU nor its memory is counted against the adapter::

    .venv/bin/python benchmarks/_world.py --cases 10000 [--referred-every 10] [--port 0]

It prints one line ``READY <url> <seconds to build>`` once it accepts connections.

``--department police`` refers the children to the police (``police_other_service``, agency
``agency-sindh-police``) instead of the hospital. ``--anchor ISO`` fixes the clock the world is
built back from (default: now): two worlds built with the same arguments and anchor hold the
same cases, ids, timestamps and referrals, so a recorded run can be replayed against a copy.
"""

from __future__ import annotations

import argparse
import random
import socket
import sys
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from adapter.simulator.departments.scenario import POLICE_AGENCY, POLICE_SERVICE
from adapter.simulator.primero import records
from adapter.simulator.primero.seed import build_case
from adapter.simulator.primero.state import Case, SimulatorState
from adapter.simulator.primero.timestamps import iso_ms
from adapter.simulator.scenario import HEALTH_AGENCY

CPO = "cp_worker1"
CPO_AGENCY = "agency-cpu-sindh"
CONCERN = "physically_or_mentally_abused"  # not S3: identified data may go to health
SPACING = timedelta(milliseconds=37)  # ~27 cases a second: pages span many seconds
# Where each department's referrals go: (implementing agency, service type, referred to).
DEPARTMENTS = {
    "health": (HEALTH_AGENCY, "health_medical_service", "Duty medical officer"),
    "police": (POLICE_AGENCY, POLICE_SERVICE, "Duty officer"),
}


def add_referred_cases(
    state: SimulatorState,
    count: int,
    *,
    referred_every: int = 1,
    seed: int = 7,
    department: str = "health",
    anchor: datetime | None = None,
) -> list[str]:
    """Add ``count`` consented cases, last updated one ``SPACING`` apart and all in the past.

    Every ``referred_every``-th case (counting back from the newest, so the newest is always
    one) has the health service row and its referral; the others have no service row at all,
    so nothing routes them to health. Returns the case ids in ``last_updated_at`` order.
    """
    rng = random.Random(seed)
    start = (anchor or datetime.now(UTC)) - SPACING * (count + 100) - timedelta(minutes=5)
    ids = []
    with state.lock:
        for n in range(count):
            updated = start + SPACING * n
            referred = (count - 1 - n) % referred_every == 0
            case = _case(state, rng, updated - timedelta(days=3), updated, referred, department)
            state.cases[case.id] = case
            ids.append(case.id)
        state.reset_indexes()
        # Warm the orders clients use, as build_state does after seeding.
        state.ordered_case_ids("created_at", ascending=False)
        state.ordered_case_ids("last_updated_at", ascending=True)
    return ids


def _case(
    state: SimulatorState,
    rng: random.Random,
    created: datetime,
    updated: datetime,
    referred: bool,
    department: str,
) -> Case:
    agency, service, referred_to = DEPARTMENTS[department]
    case = build_case(rng, created, updated)
    data = case.data
    data.pop("hidden_name", None)
    row_id = str(uuid.UUID(int=rng.getrandbits(128), version=4))
    data.update(
        {
            "status": "open",
            "module_id": "primeromodule-cp",
            "consent_for_services": True,
            "disclosure_other_orgs": True,
            "protection_concerns": [CONCERN],
            # One known birth month, so that an edit to another month is always news.
            "date_of_birth": "2015-06-15",
            "age": 10,
            "owned_by": CPO,
            "owned_by_agency_id": CPO_AGENCY,
            "created_by": CPO,
            "created_organization": CPO_AGENCY,
            "last_updated_by": CPO,
            "services_section": [
                {
                    "unique_id": row_id,
                    "service_type": service,
                    "service_implementing_agency": agency,
                    "service_response_timeframe": "1_day",
                    "service_status_referred": True,
                }
            ],
        }
    )
    if not referred:
        # No service row, no referral: Primero's summary (computed on every save) says so.
        data["services_section"] = []
        records.update_referral_summary(state, case)
        return case
    referral_id = str(uuid.UUID(int=rng.getrandbits(128), version=4))
    state.transitions[referral_id] = {
        "id": referral_id,
        "type": "Referral",
        "allow_case_creation": False,
        "consent_individual_transfer": False,
        "consent_overridden": False,
        "created_at": iso_ms(updated),
        "record_id": case.id,
        "record_type": "Child",
        "remote": True,
        "status": "in_progress",
        "transitioned_by": CPO,
        "service": service,
        "service_record_id": row_id,
        "transitioned_to_agency": agency,
        "transitioned_to_remote": referred_to,
        "notes": "Medical examination needed.",
        "record_owned_by": CPO,
        "record_owned_by_agency": CPO_AGENCY,
        "record_owned_by_groups": [],
        "transitioned_by_user_agency": CPO_AGENCY,
        "transitioned_by_user_groups": [],
    }
    case.transition_ids.append(referral_id)
    records.update_referral_summary(state, case)
    return case


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--cases", type=int, required=True)
    parser.add_argument("--referred-every", type=int, default=1)
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--department", choices=sorted(DEPARTMENTS), default="health")
    parser.add_argument("--anchor", type=datetime.fromisoformat, default=None)
    args = parser.parse_args()

    import uvicorn

    from adapter.simulator.primero import build_state, create_app

    started = time.perf_counter()
    state = build_state(0)
    add_referred_cases(
        state,
        args.cases,
        referred_every=args.referred_every,
        department=args.department,
        anchor=args.anchor,
    )
    built = time.perf_counter() - started
    # proto=IPPROTO_TCP, not the default 0: asyncio sets TCP_NODELAY only on accepted sockets
    # whose proto is IPPROTO_TCP (base_events._set_nodelay). Without it every keep-alive
    # request waits ~40 ms for a delayed ACK (architecture.md §4, "harness gotcha").
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", args.port))
    sock.listen(128)
    port = sock.getsockname()[1]
    state.options.hostname = f"127.0.0.1:{port}"
    # The socket already listens: a client that connects now waits in the backlog until
    # uvicorn accepts, so announcing the URL here cannot race the server's start.
    print(f"READY http://127.0.0.1:{port} {built:.2f}", flush=True)
    config = uvicorn.Config(create_app(state), log_level="warning", access_log=False)
    uvicorn.Server(config).run(sockets=[sock])


if __name__ == "__main__":
    main()
