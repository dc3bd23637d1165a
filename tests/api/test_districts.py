"""A referral's district must be a location Primero knows (finding F1 of the API fuzzing):
an unknown code is refused at once (422 ``child.district``); while Primero's locations cannot
be read the referral is accepted, and a code Primero then refuses is left out of the case (and
said so on it) instead of the referral becoming a dead letter."""

from __future__ import annotations

import secrets
import threading
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
import requests
import sqlalchemy as sa

from adapter.jobs.inbound import (
    CASE_NAMESPACE,
    INBOUND_JOB,
    Envelope,
    InboundService,
    Intake,
    IntakeOptions,
    request_hash,
)
from adapter.primero import PrimeroClient
from adapter.primero.locations import LocationCatalogue
from adapter.privacy import KeyRing
from adapter.simulator.primero import PrimeroSimulator
from adapter.simulator.scenario import SIM_PASSWORD
from adapter.state import StateStore, schema
from adapter.state.outbox import Outbox
from tests.api.conftest import DEPARTMENTS, World, referral_body, settings_for, unique_name

UNKNOWN = "PK-ZZ-QQQ"  # well-formed (schemas.District), not among the simulator's locations
LOCATIONS_ROUTE = "GET /api/v2/locations"


def case_of(reference: str, department: str = "police") -> str:
    return str(uuid.uuid5(CASE_NAMESPACE, f"{department}:{reference}"))


def location_reads(sim: PrimeroSimulator) -> int:
    stats = requests.get(f"{sim.url}/_sim/stats", timeout=5).json()["requests"]
    return int(stats.get(LOCATIONS_ROUTE, 0))


def with_district(district: str) -> dict[str, Any]:
    return referral_body(child={"name": unique_name(), "sex": "male", "district": district})


@pytest.fixture
def locations_down(world: World) -> Iterator[None]:
    """Primero answers 503 to location reads (and only to them), whatever the retries."""
    fault = {"status": 503, "count": 50, "path_prefix": "/api/v2/locations"}
    requests.post(f"{world.sim.url}/_sim/faults", json=fault, timeout=5).raise_for_status()
    try:
        yield
    finally:
        requests.delete(f"{world.sim.url}/_sim/faults", timeout=5).raise_for_status()


# -- at the API ---------------------------------------------------------------------------------


def test_an_unknown_district_is_refused_naming_the_field_and_changes_nothing(
    world: World,
) -> None:
    before = world.snapshot()
    response = world.post("/v1/referrals", with_district(UNKNOWN))
    assert response.status_code == 422
    error = response.json()["error"]
    assert (error["code"], error["field"]) == ("unknown_district", "child.district")
    assert "use a Primero location code" in error["message"]
    assert "cpims-adapter primero locations" in error["message"]  # how to find the codes
    assert UNKNOWN not in response.text  # errors never repeat a value
    assert world.snapshot() == before


def test_a_known_district_is_accepted_and_reaches_the_case(world: World) -> None:
    body = with_district("PK-BA-QTA")
    response = world.post("/v1/referrals", body)
    assert response.status_code == 202
    case = world.case(case_of(body["reference"]))
    assert case["location_current"] == "PK-BA-QTA"
    assert not any("not known to Primero" in f for f in world.flags(case["id"]))


def test_the_catalogue_is_read_once_for_many_referrals(world: World) -> None:
    before = location_reads(world.sim)
    for district in ("PK-SD-KHI", "PK-KP-SWT", UNKNOWN, "PK-BA-GWD"):
        world.post("/v1/referrals", with_district(district))
    assert location_reads(world.sim) - before == 1


def test_when_locations_cannot_be_read_the_referral_lands_without_the_district(
    world: World, locations_down: None
) -> None:
    body = with_district(UNKNOWN)
    response = world.post("/v1/referrals", body)
    assert response.status_code == 202  # never refused because Primero is unreachable

    case_id = case_of(body["reference"])
    case = world.case(case_id)
    assert case["name"] == body["child"]["name"]
    assert not case.get("location_current")
    assert any(
        f.startswith(f"District code {UNKNOWN} from police was not known to Primero")
        for f in world.flags(case_id)
    )
    outbox = Outbox(world.store)
    assert outbox.dead_letters() == []
    assert outbox.depth() == {"sent": 1}
    # A replay gets the first answer, even once the district could be checked.
    requests.delete(f"{world.sim.url}/_sim/faults", timeout=5).raise_for_status()
    again = world.post("/v1/referrals", body)
    assert again.status_code == 202 and again.json() == response.json()


# -- on the write path (each backend) -----------------------------------------------------------


@pytest.fixture
def service(sim: PrimeroSimulator, state_url: str) -> Iterator[InboundService]:
    """The inbound service without a catalogue: every district is accepted."""
    kek = secrets.token_bytes(32)
    with StateStore(state_url) as store:
        keyring = KeyRing.init(store, kek, DEPARTMENTS)
        settings = settings_for(sim.url, state_url, kek)
        yield InboundService(
            settings, store, keyring, intake=IntakeOptions(default_owner="cp_worker1")
        )


def accept(service: InboundService, district: str) -> Intake:
    intake = Intake(
        reference=f"REF-{uuid.uuid4().hex[:8]}",
        concerns=("child_labour",),
        reason="Working in a brick kiln.",
        urgency="medium",
        officer="ASI Synthetic",
        name=unique_name(),
        sex="male",
        age=12,
        district=district,
    )
    message_id = str(uuid.uuid4())
    envelope = Envelope(
        "police", message_id, "referrals", request_hash("referrals", "", {"m": message_id})
    )
    assert service.receive_referral(envelope, intake).status_code == 202
    return intake


def factory(service: InboundService) -> PrimeroClient:
    return PrimeroClient.from_settings(service.settings.primero)


def outbox_keys(service: InboundService) -> list[tuple[str, str]]:
    with service.store.transaction() as conn:
        rows = conn.execute(sa.select(schema.outbox.c.idempotency_key, schema.outbox.c.status))
        return [(r.idempotency_key, r.status) for r in rows]


def test_a_district_primero_refuses_is_left_out_and_counted(service: InboundService) -> None:
    intake = accept(service, UNKNOWN)
    (queued,) = outbox_keys(service)

    report = service.drain(lambda: factory(service))
    assert (report.delivered, report.dead_lettered, report.districts_dropped) == (1, 0, 1)
    # The same row was delivered: exactly once, under the key it was queued with.
    assert outbox_keys(service) == [(queued[0], "sent")]
    with factory(service) as primero:
        case = primero.get_case(case_of(intake.reference))
    assert case["name"] == intake.name and not case.get("location_current")


def test_a_retry_after_the_case_was_created_completes_it_without_the_district(
    service: InboundService, sim: PrimeroSimulator
) -> None:
    intake = accept(service, UNKNOWN)
    case_id = case_of(intake.reference)
    # An earlier attempt created the case and crashed before recording it: the retry's
    # create answers 409 and completing the case meets Primero's refusal of the district.
    with factory(service) as primero:
        primero.create_case({"module_id": "primeromodule-cp", "sex": "male"}, id=case_id)

    report = service.drain(lambda: factory(service))
    assert (report.delivered, report.dead_lettered, report.districts_dropped) == (1, 0, 1)
    with factory(service) as primero:
        case = primero.get_case(case_id)
        flags = [str(f["message"]) for f in primero.list_flags(case_id)]
    assert case["name"] == intake.name and not case.get("location_current")
    assert sum("not known to Primero" in f for f in flags) == 1
    assert service.pending(INBOUND_JOB) == 0


def test_a_known_district_is_not_counted(service: InboundService) -> None:
    intake = accept(service, "PK-SD-HYD")
    report = service.drain(lambda: factory(service))
    assert (report.delivered, report.districts_dropped) == (1, 0)
    with factory(service) as primero:
        assert primero.get_case(case_of(intake.reference))["location_current"] == "PK-SD-HYD"


# -- the catalogue ------------------------------------------------------------------------------


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def adapter_client(sim: PrimeroSimulator) -> PrimeroClient:
    return PrimeroClient(sim.url, auth="basic", username="cpims-adapter", password=SIM_PASSWORD)


def test_the_catalogue_is_read_once_per_ttl(sim: PrimeroSimulator) -> None:
    clock = Clock()
    catalogue = LocationCatalogue(lambda: adapter_client(sim), ttl_seconds=3600, clock=clock)
    before = location_reads(sim)
    assert catalogue.knows("PK-SD-KHI") is True
    assert catalogue.knows(UNKNOWN) is False
    clock.now += 3599
    assert catalogue.knows("PK") is True
    assert location_reads(sim) - before == 1
    clock.now += 2  # expired: the next caller reloads
    assert catalogue.knows("PK-KP-ABT") is True
    assert location_reads(sim) - before == 2


def test_concurrent_callers_share_one_load(sim: PrimeroSimulator) -> None:
    catalogue = LocationCatalogue(lambda: adapter_client(sim))
    before = location_reads(sim)
    answers: list[bool | None] = []
    threads = [
        threading.Thread(target=lambda: answers.append(catalogue.knows("PK-SD-SUK")))
        for _ in range(8)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert answers == [True] * 8
    assert location_reads(sim) - before == 1


def test_an_unreachable_primero_leaves_districts_unchecked_and_is_not_asked_each_time() -> None:
    clock = Clock()
    opened: list[PrimeroClient] = []

    def closed_port() -> PrimeroClient:
        # Port 9 (discard) on loopback: nothing listens, the connection is refused.
        client = PrimeroClient(
            "http://127.0.0.1:9",
            auth="basic",
            username="cpims-adapter",
            password=SIM_PASSWORD,
            max_retries=0,
        )
        opened.append(client)
        return client

    catalogue = LocationCatalogue(closed_port, ttl_seconds=3600, retry_seconds=60, clock=clock)
    assert catalogue.knows(UNKNOWN) is None
    clock.now += 59
    assert catalogue.knows("PK-SD-KHI") is None
    assert len(opened) == 1  # the failure is remembered for a minute
    clock.now += 2
    assert catalogue.knows(UNKNOWN) is None
    assert len(opened) == 2


def test_a_refused_login_is_not_repeated_before_the_ttl(sim: PrimeroSimulator) -> None:
    clock = Clock()
    opened: list[PrimeroClient] = []

    def wrong_password() -> PrimeroClient:
        client = PrimeroClient(sim.url, auth="basic", username="cp_viewer", password="wrong")
        opened.append(client)
        return client

    catalogue = LocationCatalogue(wrong_password, ttl_seconds=3600, retry_seconds=60, clock=clock)
    assert catalogue.knows("PK-SD-KHI") is None
    clock.now += 600  # past the retry delay, not the TTL: Primero's lock-out counts failures
    assert catalogue.knows("PK-SD-KHI") is None
    assert len(opened) == 1
