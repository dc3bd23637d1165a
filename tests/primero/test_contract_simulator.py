"""The client against the Primero simulator (adapter.simulator.primero) on a real socket."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import requests

from adapter.errors import PrimeroAuthError, PrimeroNoOp
from adapter.primero import PrimeroClient
from adapter.simulator.primero import PrimeroSimulator

PASSWORD = "sim-password"


@pytest.fixture(scope="module")
def sim() -> Iterator[PrimeroSimulator]:
    with PrimeroSimulator(cases=40) as simulator:
        yield simulator


def connect(sim: PrimeroSimulator, sleeps: list[float] | None = None, **kw: Any) -> PrimeroClient:
    kw.setdefault("username", "cpims-adapter")
    kw.setdefault("password", PASSWORD)
    return PrimeroClient(sim.url, sleep=(sleeps if sleeps is not None else []).append, **kw)


def control(sim: PrimeroSimulator, method: str, path: str, **body: Any) -> Any:
    response = requests.request(method, f"{sim.url}/_sim{path}", json=body or None, timeout=10)
    response.raise_for_status()
    return response.json()


def stored_time(sim: PrimeroSimulator, case_id: str) -> datetime:
    data = control(sim, "GET", f"/cases/{case_id}")
    data = data.get("data", data)
    return datetime.fromisoformat(data["last_updated_at"])


def test_listing_while_cases_are_edited_misses_none() -> None:
    with PrimeroSimulator(cases=90, seed=7) as sim:
        control(sim, "POST", "/touch", count=35)  # a bulk update: 35 cases in one second
        signpost = datetime.now(UTC).replace(microsecond=0)
        time.sleep(1.05)  # edits from now on land after the signpost
        control(sim, "POST", "/faults", mutate_on_list=2)  # two edits after every list call
        with connect(sim) as client:
            initial = {record["id"] for record in client.list_cases({"per": 1000})[0]}
            yielded = {
                record["id"] for record in client.iter_cases(None, signpost, fields=["sex"], per=6)
            }
        control(sim, "DELETE", "/faults")

        moved_on = {case_id for case_id in initial if stored_time(sim, case_id) > signpost}
        assert initial - yielded <= moved_on  # only cases edited past the signpost may wait
        assert len(yielded) >= len(initial) - len(moved_on)


def test_retry_after_from_the_configuration_lock_is_honoured(sim: PrimeroSimulator) -> None:
    sleeps: list[float] = []
    control(sim, "POST", "/faults", status=503, count=2, retry_after=1, path_prefix="/api/v2/cases")
    try:
        records, metadata = connect(sim, sleeps).list_cases({"per": 1})
    finally:
        control(sim, "DELETE", "/faults")

    assert len(records) == 1 and metadata["total"] >= 1
    assert sleeps == [1.0, 1.0]


def test_create_is_idempotent_with_a_client_id_and_drops_are_named(sim: PrimeroSimulator) -> None:
    case_id = str(uuid.uuid4())
    with connect(sim) as client:
        data = {"name_first": "Test", "sex": "female", "module_id": "primeromodule-cp"}
        first = client.create_case(data, id=case_id)
        again = client.create_case(data, id=case_id)
        update = client.update_case(
            case_id,
            {"age": 11, "notes_section": [{"note_subject": "home visit", "note_text": "..."}]},
        )

    assert (first.created, again.created) == (True, False)
    assert update.data["age"] == 11
    assert update.dropped_fields == ["notes_section"]  # the integration role lacks `notes`


def test_referral_life_cycle_and_silent_noop(sim: PrimeroSimulator) -> None:
    with connect(sim) as client:
        case_id = str(uuid.uuid4())
        client.create_case(
            {
                "name_first": "Test",
                "sex": "male",
                "module_id": "primeromodule-cp",
                "consent_for_services": True,
                "disclosure_other_orgs": True,
            },
            id=case_id,
        )
        referral = client.create_referral(case_id, transitioned_to="health_gateway", notes="exam")
    assert referral["status"] == "in_progress"

    # The receiver signs in with a cookie session, so its writes carry X-CSRF-Token.
    with connect(sim, username="health_gateway", auth="session") as receiver:
        with pytest.raises(PrimeroNoOp, match="still 'in_progress', not 'done'"):
            receiver.complete_referral(case_id, referral["id"], "seen")
        assert receiver.accept_referral(case_id, referral["id"])["status"] == "accepted"
        assert receiver.accept_referral(case_id, referral["id"])["status"] == "accepted"
        assert receiver.complete_referral(case_id, referral["id"], "seen")["status"] == "done"


def test_a_wrong_password_costs_one_failed_attempt(sim: PrimeroSimulator) -> None:
    client = connect(sim, username="cp_viewer", password="wrong")
    for _ in range(4):
        with pytest.raises(PrimeroAuthError):
            client.list_cases({"per": 1})

    user = control(sim, "GET", "/users/cp_viewer")
    assert user["failed_attempts"] == 1 and not user["locked"]


def test_version_and_capabilities(sim: PrimeroSimulator) -> None:
    with connect(sim) as client:
        assert client.check_version() == "2.15.2.1"
        checks = client.capabilities().checks
    assert checks["cases.read"].permitted == "yes"
    assert checks["referrals.create"].permitted == "yes"


def test_incremental_window_is_inclusive_at_the_second(sim: PrimeroSimulator) -> None:
    touched = control(sim, "POST", "/touch", count=1)["touched"][0]
    when = datetime.fromisoformat(touched["last_updated_at"])
    with connect(sim) as client:
        window = list(client.iter_cases(when, when + timedelta(milliseconds=1)))
    assert touched["id"] in {record["id"] for record in window}
