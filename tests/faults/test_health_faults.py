"""Health referrals through a fault-injecting proxy in front of a real FHIR server end exact.

Sekmet (the hospital's FHIR server) cannot be told to fail, so a ``FaultProxy`` stands in front
of it: 30 % 5xx, hangs past the client's timeout, bursts of 503 + Retry-After, 429, malformed
and truncated answers (the request carried out, its answer lost) and duplicate deliveries. The
sync is re-run until quiescent at each step of the two-stage flow (probe → accept/reject →
identified referral → completed); then each referral is one Task at the hospital, identified
data exists once for each accepted one only, every answer is in Primero once, and nothing is
pending or dead. Primero's own faults are the police test's (test_police_primero_faults.py).
"""

from __future__ import annotations

import secrets
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from adapter.config import Settings
from adapter.primero import PrimeroClient
from adapter.primero.linked_records import SUBFORM_FIELD
from adapter.privacy import KeyRing
from adapter.simulator.fault_proxy import FaultProxy
from adapter.simulator.fhir_server import start_fhir_server
from adapter.simulator.hospital import Hospital
from adapter.simulator.primero import PrimeroSimulator
from adapter.simulator.scenario import (
    health_settings,
    install_linked_records_form,
    refer_children_to_health,
    referral_status,
)
from adapter.state import StateStore
from tests.faults.support import (
    Runner,
    assert_retry_after_honoured,
    fired_and_cleared,
    install_faults,
    outbox_left,
    short_backoff,
)

CHILDREN = 6
CLIENT_TIMEOUT = 1.0  # seconds: sekmet shares two cores with the rest of the suite
FHIR_FAULTS: list[dict[str, Any]] = [
    {"kind": "error", "path": "/fhir/", "rate": 0.3, "status": 500},
    {"kind": "error", "path": "/fhir/", "rate": 0.05, "status": 502},
    {"kind": "timeout", "path": "/fhir/", "rate": 0.03, "delay_seconds": 1.5 * CLIENT_TIMEOUT},
    {"kind": "throttle", "path": "/fhir/", "rate": 0.04, "burst": 3, "retry_after": 1},
    {"kind": "throttle", "path": "/fhir/", "rate": 0.03, "status": 429, "retry_after": 1},
    {"kind": "malformed", "path": "/fhir/", "rate": 0.08},
    {"kind": "truncated", "path": "/fhir/", "rate": 0.08},
    {"kind": "duplicate", "path": "/fhir/", "rate": 0.08},
]
# The hospital's final answer → Primero's referral status.
PRIMERO_STATUS = {"accepted": "accepted", "completed": "done", "rejected": "rejected"}


@pytest.fixture
def world(tmp_path: Path, state_url: str) -> Iterator[dict[str, Any]]:
    fhir = start_fhir_server(tmp_path)
    try:
        with (
            PrimeroSimulator(cases=0) as sim,
            FaultProxy(fhir.base_url) as proxy,
            Hospital(fhir.base_url) as hospital,
        ):
            install_linked_records_form(sim.url)
            kek = secrets.token_bytes(32)
            settings = health_settings(
                primero_url=sim.url,
                fhir_url=proxy.url + "/fhir",
                state_url=state_url,
                kek=kek,
                max_attempts=40,
            )
            with StateStore(state_url) as store:
                KeyRing.init(store, kek, ["health", "police", "birth_registration", "courts"])
            yield {
                "sim": sim,
                "proxy": proxy,
                "hospital": hospital,
                "settings": _short_timeouts(settings),
                "referred": refer_children_to_health(sim.url, CHILDREN),
                "state_url": state_url,
            }
    finally:
        fhir.cleanup()


def _short_timeouts(settings: Settings) -> Settings:
    health = settings.departments["health"].model_copy(
        update={"timeout_seconds": CLIENT_TIMEOUT, "concurrency": 2}
    )
    return settings.model_copy(update={"departments": {"health": health}})


def test_health_through_a_faulty_proxy_ends_with_everything_exactly_once(
    world: dict[str, Any], fault_seed: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    short_backoff(monkeypatch)
    sim, proxy, hospital = world["sim"], world["proxy"], world["hospital"]
    runner = Runner(world["settings"], "health", sim)
    keys = sorted(f"ref-{referral_id}" for _, referral_id in world["referred"])
    install_faults(proxy.url, FHIR_FAULTS, fault_seed)

    # 1. Capacity probes: one Task per referral, nothing identified yet.
    runner.until_quiet(lambda: len(hospital.referral_tasks()) >= len(keys))
    assert sorted(Hospital.referral_key(t) for t in hospital.referral_tasks()) == keys
    assert hospital.search("Patient") == []

    # 2. The hospital accepts four and rejects two; identified referrals follow for the four.
    accepted, rejected = keys[:4], keys[4:]
    for key in accepted:
        hospital.accept(key)
    for key in rejected:
        hospital.reject(key)
    runner.until_quiet(lambda: len(hospital.search("ServiceRequest")) >= len(accepted))

    # 3. The hospital completes two of them.
    completed = accepted[:2]
    for key in completed:
        hospital.complete(key)
    runner.until_quiet()

    injector = proxy.state.injector
    fired = fired_and_cleared(proxy.url)
    assert sum(fired.values()) >= 10, f"too few faults fired to mean anything: {fired}"
    assert injector is not None
    assert_retry_after_honoured(injector)

    answer = {key: "accepted" for key in accepted} | {key: "rejected" for key in rejected}
    answer |= {key: "completed" for key in completed}
    found = {t: hospital.search(t) for t in ("Task", "ServiceRequest", "Patient", "Consent")}
    assert {t: len(found[t]) for t in found} == {
        "Task": len(keys),
        "ServiceRequest": len(accepted),
        "Patient": len(accepted),
        "Consent": len(accepted),
    }
    for resource_type, resources in found.items():
        carried = Counter(
            (i.get("system"), i.get("value"))
            for resource in resources
            for i in resource.get("identifier", [])
        )
        assert max(carried.values(), default=1) == 1, f"a {resource_type} was created twice"
    assert {Hospital.referral_key(t): t["status"] for t in found["Task"]} == answer

    with PrimeroClient(
        sim.url, auth="basic", username="cpims-adapter", password="sim-password"
    ) as client:
        for case_id, referral_id in world["referred"]:
            key = f"ref-{referral_id}"
            assert referral_status(sim.url, case_id, referral_id) == PRIMERO_STATUS[answer[key]]
            rows = client.get_case(case_id).get(SUBFORM_FIELD) or []
            assert [(r["link_key"], r["link_status"]) for r in rows] == [
                (f"health:{key}", answer[key])
            ]
    assert outbox_left(world["state_url"]) == {}, "a pending row or a dead letter is left"
