"""No Primero request that is not needed, counted on the simulator (never timed).

- a case's referrals are fetched only when the case's own referral summary (computed by
  Primero on every save, transitionable.rb) says it may carry one, when the adapter already
  holds a link for it (a revoked referral shows nowhere on the case), or when the listing
  lacks the summary (the role holds no dashboard that shows it: cannot tell, so fetch);
- a write-back moves a referral on from the status the adapter last saw, checked by Primero's
  answer to the PATCH, not by listing the case's referrals again.
"""

from __future__ import annotations

import secrets
from collections import Counter
from collections.abc import Iterator
from typing import Any

import pytest
import requests

from adapter.app.jobs import open_job
from adapter.config import Settings
from adapter.jobs.writeback import PART_STATUS, WriteBack, apply_part
from adapter.mappings.routing import may_have_referrals
from adapter.mappings.vocabulary import ACCEPTED, COMPLETED, REJECTED
from adapter.primero import PrimeroClient
from adapter.privacy import KeyRing
from adapter.simulator.departments import DepartmentSimulator, Desk
from adapter.simulator.departments.scenario import (
    POLICE_AGENCY,
    POLICE_SERVICE,
    police_settings,
    refer_children,
)
from adapter.simulator.primero import PrimeroSimulator
from adapter.simulator.scenario import CPO, install_linked_records_form, referral_status
from adapter.state import StateStore

DEPARTMENTS = ["health", "police", "birth_registration", "courts"]
UNREFERRED = 30
REFERRED = 3
ADAPTER = ("cpims-adapter", "sim-password")
LIST_REFERRALS = "GET /api/v2/cases/{case_id}/referrals"


@pytest.fixture
def world(state_url: str) -> Iterator[dict[str, Any]]:
    with (
        PrimeroSimulator(cases=0) as sim,
        DepartmentSimulator("police", auth="oauth2") as police,
        Desk(police.url) as desk,
    ):
        install_linked_records_form(sim.url)
        kek = secrets.token_bytes(32)
        with StateStore(state_url) as store:
            KeyRing.init(store, kek, DEPARTMENTS)
        plain = [_new_case(sim.url, n) for n in range(UNREFERRED)]
        referred = refer_children(sim.url, REFERRED)
        yield {
            "sim": sim,
            "desk": desk,
            "plain": plain,
            "referred": referred,
            "settings": police_settings(
                primero_url=sim.url, police_url=police.url, state_url=state_url, kek=kek
            ),
        }


def _new_case(primero_url: str, n: int, **fields: Any) -> str:
    """A consented case as a CPO creates it; no referral."""
    answer = requests.post(
        f"{primero_url}/api/v2/cases",
        auth=CPO,
        json={
            "data": {
                "name": f"Unreferred Child {n}",
                "sex": "female" if n % 2 else "male",
                "age": 7 + n % 9,
                "consent_for_services": True,
                "disclosure_other_orgs": True,
                "module_id": "primeromodule-cp",
                "location_current": "PK-SD-KHI",
                **fields,
            }
        },
        timeout=30,
    )
    answer.raise_for_status()
    return str(answer.json()["data"]["id"])


def _refer_without_service_row(primero_url: str, case_id: str) -> str:
    """A remote referral to the police that names no service row: once revoked, nothing on
    the case shows it ever existed (transitionable.rb counts only open, rejected, done)."""
    answer = requests.post(
        f"{primero_url}/api/v2/cases/{case_id}/referrals",
        auth=CPO,
        json={
            "data": {
                "remote": True,
                "service": POLICE_SERVICE,
                "transitioned_to_agency": POLICE_AGENCY,
                "transitioned_to_remote": "Duty officer",
            }
        },
        timeout=30,
    )
    answer.raise_for_status()
    return str(answer.json()["data"]["id"])


def stored(sim: PrimeroSimulator, case_id: str) -> dict[str, Any]:
    data = requests.get(f"{sim.url}/_sim/cases/{case_id}", timeout=5).json()["data"]
    assert isinstance(data, dict)
    return data


def requests_made(sim: PrimeroSimulator) -> Counter[str]:
    stats = requests.get(f"{sim.url}/_sim/stats", timeout=5).json()["requests"]
    return Counter({str(k): int(v) for k, v in stats.items()})


def sync(settings: Settings) -> Any:
    with open_job(settings, "police") as job:
        return job.run()


def test_only_cases_that_may_carry_a_referral_cost_a_referral_get(world: dict[str, Any]) -> None:
    sim, settings = world["sim"], world["settings"]
    before = requests_made(sim)
    report = sync(settings)
    gets = (requests_made(sim) - before)[LIST_REFERRALS]
    assert report.enqueued.get("referral") == REFERRED
    assert report.cases_examined == UNREFERRED + REFERRED
    assert 0 < gets <= 1.1 * REFERRED
    assert report.referral_lookups == gets
    assert report.referral_lookups_skipped == UNREFERRED
    assert report.own_write_back_echoes == 0


def test_the_adapters_own_write_back_echo_is_read_again_and_counted(
    world: dict[str, Any],
) -> None:
    sim, settings, desk = world["sim"], world["settings"], world["desk"]
    sync(settings)
    for _, referral_id in world["referred"]:
        desk.register_fir(f"ref-{referral_id}", station="PS-Kalri", year=2026, sections=["PPC 379"])
    written = sync(settings)
    assert written.write_backs == REFERRED
    # Only the adapter's own PATCHes changed these cases since: they are read again (nothing
    # proves no one else saved them in between, docs/primero-requests.md §3), found unchanged,
    # and counted.
    before = requests_made(sim)
    echo = sync(settings)
    assert echo.own_write_back_echoes == REFERRED == echo.cases_examined
    assert echo.unchanged == REFERRED and not echo.enqueued
    assert (requests_made(sim) - before)[LIST_REFERRALS] == REFERRED


def test_a_listing_without_the_summary_fields_falls_back_to_a_get_per_case(
    world: dict[str, Any],
) -> None:
    sim, settings = world["sim"], world["settings"]
    # An integration role without the "Shared with others" dashboard: Primero leaves the
    # summary out of the listing (permitted_field_service.rb), so nothing can be told.
    revoked = requests.put(
        f"{sim.url}/_sim/roles/role-integration/permissions", json={"dashboard": None}, timeout=5
    )
    revoked.raise_for_status()
    before = requests_made(sim)
    report = sync(settings)
    gets = (requests_made(sim) - before)[LIST_REFERRALS]
    assert gets == UNREFERRED + REFERRED
    assert report.referral_lookups_skipped == 0
    assert report.enqueued.get("referral") == REFERRED


def test_a_revoked_referral_of_a_linked_case_is_still_cancelled(world: dict[str, Any]) -> None:
    sim, settings, desk = world["sim"], world["settings"], world["desk"]
    case_id = _new_case(sim.url, 99)
    referral_id = _refer_without_service_row(sim.url, case_id)
    first = sync(settings)
    assert first.enqueued.get("referral") == REFERRED + 1
    revoke = requests.delete(
        f"{sim.url}/api/v2/cases/{case_id}/referrals/{referral_id}", auth=CPO, timeout=30
    )
    revoke.raise_for_status()
    # Nothing on the case, as the adapter reads it, says a referral ever existed: only the
    # adapter's link does.
    shown = requests.get(f"{sim.url}/api/v2/cases/{case_id}", auth=ADAPTER, timeout=30)
    assert may_have_referrals(shown.json()["data"]) is False
    second = sync(settings)
    assert second.enqueued.get("cancel") == 1 and second.delivered.get("cancel") == 1
    assert desk.record(f"ref-{referral_id}")["status"] == "cancelled"


def test_the_summary_counts_a_remote_referral_as_primero_does(world: dict[str, Any]) -> None:
    sim = world["sim"]
    case_id, _ = world["referred"][0]
    shown = stored(sim, case_id)
    # pluck(:transitioned_to).uniq of one remote referral is [nil], and [nil].present? is true.
    assert shown["referred_users"] == [None]
    assert shown["referred_users_present"] is True
    assert shown["referred_users_pending_present"] is True
    assert shown["referred_users_accepted_present"] is False


# -- write-back: the link's status is the guess, the PATCH's answer the check ----------------


def _status_write_back(case_id: str, referral_id: str, status: str) -> WriteBack:
    return WriteBack(
        link_key=f"police:ref-{referral_id}",
        department="police",
        case_id=case_id,
        referral_id=referral_id,
        case_code="cp1.police.1.ABC",
        status=status,
        reason="no-capacity" if status == REJECTED else None,
        note="Seen by the desk officer." if status == COMPLETED else None,
        outputs=(),
        external_ref=None,
        updated_at="2026-03-01T10:00:00+00:00",
    )


@pytest.fixture
def primero(world: dict[str, Any]) -> Iterator[PrimeroClient]:
    with PrimeroClient(
        world["sim"].url, auth="basic", username=ADAPTER[0], password=ADAPTER[1]
    ) as client:
        yield client


def test_a_completed_referral_moves_on_without_reading_it_first(
    world: dict[str, Any], primero: PrimeroClient
) -> None:
    sim = world["sim"]
    case_id, referral_id = world["referred"][0]
    done = _status_write_back(case_id, referral_id, COMPLETED)
    before = requests_made(sim)
    applied = apply_part(primero, done, PART_STATUS, known_status="in_progress")
    made = requests_made(sim) - before
    assert applied == {"primero_status": "done"}
    assert referral_status(sim.url, case_id, referral_id) == "done"
    assert made[LIST_REFERRALS] == 0
    assert made["PATCH /api/v2/cases/{case_id}/referrals/{referral_id}"] == 2  # accept, done
    # Redelivered (the outcome was not recorded before a crash): same answer, nothing moves.
    again = apply_part(primero, done, PART_STATUS, known_status="in_progress")
    assert again == {"primero_status": "done"}
    assert referral_status(sim.url, case_id, referral_id) == "done"


def test_a_referral_revoked_meanwhile_stops_the_write_back_and_is_recorded(
    world: dict[str, Any], primero: PrimeroClient
) -> None:
    sim = world["sim"]
    case_id, referral_id = world["referred"][1]
    requests.delete(
        f"{sim.url}/api/v2/cases/{case_id}/referrals/{referral_id}", auth=CPO, timeout=30
    ).raise_for_status()
    before = requests_made(sim)
    # The pull saw it in progress; the CPO revoked it since. One PATCH, answered "revoked".
    applied = apply_part(
        primero,
        _status_write_back(case_id, referral_id, COMPLETED),
        PART_STATUS,
        known_status="in_progress",
    )
    made = requests_made(sim) - before
    assert applied == {"primero_status": "revoked"}
    assert made[LIST_REFERRALS] == 0
    assert made["PATCH /api/v2/cases/{case_id}/referrals/{referral_id}"] == 1
    assert referral_status(sim.url, case_id, referral_id) == "revoked"


def test_nothing_is_sent_when_the_known_status_says_there_is_nothing_to_do(
    world: dict[str, Any], primero: PrimeroClient
) -> None:
    sim = world["sim"]
    case_id, referral_id = world["referred"][2]
    before = requests_made(sim)
    # Never backwards: an accepted referral is not rejected; a final one is left alone.
    for status, known in ((REJECTED, "accepted"), (ACCEPTED, "accepted"), (COMPLETED, "done")):
        applied = apply_part(
            primero, _status_write_back(case_id, referral_id, status), PART_STATUS, known
        )
        assert applied == {"primero_status": known}
    made = requests_made(sim) - before
    assert sum(n for route, n in made.items() if "/referrals" in route) == 0
    assert referral_status(sim.url, case_id, referral_id) == "in_progress"


def test_without_a_known_status_the_referral_is_read_first(
    world: dict[str, Any], primero: PrimeroClient
) -> None:
    sim = world["sim"]
    case_id, referral_id = world["referred"][2]
    before = requests_made(sim)
    applied = apply_part(
        primero, _status_write_back(case_id, referral_id, ACCEPTED), PART_STATUS, None
    )
    made = requests_made(sim) - before
    assert applied == {"primero_status": "accepted"}
    assert made[LIST_REFERRALS] == 1
