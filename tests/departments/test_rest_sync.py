"""End to end through the engine for the other REST departments: birth registration (a DCI
verification search per referral, its answer written back) and courts (a case summary under a
court-order override, the court's order written back)."""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from typing import Any

import pytest

from adapter.app.jobs import open_job
from adapter.primero import PrimeroClient
from adapter.primero.linked_records import SUBFORM_FIELD
from adapter.privacy import KeyRing, OverrideBasis
from adapter.simulator.departments import DepartmentSimulator, Desk
from adapter.simulator.departments.scenario import (
    COURT_AGENCY,
    COURT_SERVICE,
    NADRA_AGENCY,
    record_override,
    refer_children,
    rest_settings,
)
from adapter.simulator.primero import PrimeroSimulator
from adapter.simulator.scenario import install_linked_records_form, referral_status
from adapter.state import StateStore

DEPARTMENTS = ["health", "police", "birth_registration", "courts"]


@pytest.fixture
def primero(state_url: str) -> Iterator[tuple[PrimeroSimulator, bytes]]:
    kek = secrets.token_bytes(32)
    with PrimeroSimulator(cases=0) as sim:
        install_linked_records_form(sim.url)
        with StateStore(state_url) as store:
            KeyRing.init(store, kek, DEPARTMENTS)
        yield sim, kek


def linked_row(sim: PrimeroSimulator, case_id: str) -> dict[str, Any]:
    with PrimeroClient(
        sim.url, auth="basic", username="cpims-adapter", password="sim-password"
    ) as client:
        (row,) = client.get_case(case_id)[SUBFORM_FIELD]
    return dict(row)


def run(settings: Any, job: str) -> Any:
    with open_job(settings, job) as sync:
        return sync.run()


def test_birth_registration_searches_and_writes_the_answer_back(
    primero: tuple[PrimeroSimulator, bytes], state_url: str
) -> None:
    sim, kek = primero
    with (
        DepartmentSimulator("birth_registration", auth="oauth2") as nadra,
        Desk(nadra.url) as desk,
    ):
        registered, unregistered = refer_children(
            sim.url, 2, agency=NADRA_AGENCY, service="registration_service"
        )
        desk.add_registered_child(
            given_name="Synthetic",
            family_name="Child0",
            birth_date="2010-01-15",
            sex="male",
            registration_number="BRN-4220-2010-000042",
        )
        settings = rest_settings(
            primero_url=sim.url,
            state_url=state_url,
            kek=kek,
            department="birth_registration",
            base_url=nadra.url,
            agencies=[NADRA_AGENCY],
            services=["registration_service"],
            purpose="birth_registration",
            auth="oauth2",
        )
        report = run(settings, "birth_registration")
        # The search is answered at once: delivered, polled and written back in one run.
        assert report.delivered == {"referral": 2} and report.write_backs == 2
        searches = {r["referral_key"]: r for r in desk.records()}
        body = searches[f"ref-{registered[1]}"]["body"]
        # The search carries demographics only: no protection concern, no address.
        assert "protection" not in str(body) and "Lyari" not in str(body)

    row = linked_row(sim, registered[0])
    assert row["link_record_type"] == "birth_registration"
    assert row["link_external_reference"] == "BRN-4220-2010-000042"
    assert "result: birth registered" in row["link_status_note"]
    assert referral_status(sim.url, *registered) == "done"
    other = linked_row(sim, unregistered[0])
    # No registration number: the reference is the registry's search transaction.
    assert other["link_external_reference"].startswith("TX-")
    assert "no registration found" in other["link_status_note"]


def test_courts_get_a_case_summary_and_their_order_is_written_back(
    primero: tuple[PrimeroSimulator, bytes], state_url: str
) -> None:
    sim, kek = primero
    with DepartmentSimulator("courts", auth="basic") as court, Desk(court.url) as desk:
        (ordered,) = refer_children(sim.url, 1, agency=COURT_AGENCY, service=COURT_SERVICE)
        (consented,) = refer_children(sim.url, 1, agency=COURT_AGENCY, service=COURT_SERVICE)
        record_override(
            state_url,
            kek,
            ordered[0],
            "courts",
            basis=OverrideBasis.COURT_ORDER,
            legal_reference="Juvenile Court Karachi, order JC-114/2026",
        )
        settings = rest_settings(
            primero_url=sim.url,
            state_url=state_url,
            kek=kek,
            department="courts",
            base_url=court.url,
            agencies=[COURT_AGENCY],
            services=[COURT_SERVICE],
            purpose="court_order",
            auth="basic",
        )
        assert run(settings, "courts").delivered == {"referral": 2}
        summaries = {r["referral_key"]: r["body"]["case_summary"] for r in desk.records()}
        # Identity and address only by court order (privacy.md §6.4).
        by_order = summaries[f"ref-{ordered[1]}"]
        assert by_order["basis"] == "consent+court_order"
        assert by_order["child"]["name"] == "Synthetic Child 0"
        assert by_order["child"]["address"] == "House 0, Street 4, Lyari"
        assert "name" not in summaries[f"ref-{consented[1]}"]["child"]

        desk.make_order(
            f"ref-{ordered[1]}",
            court={"type": "juvenile", "name": "Juvenile Court Karachi", "district": "South"},
            case_number="JC-114",
            case_year=2026,
            order_type="supervision",
            order_date="2026-03-01",
        )
        run(settings, "courts")
    row = linked_row(sim, ordered[0])
    assert row["link_record_type"] == "court_order" and row["link_status"] == "in_progress"
    assert row["link_external_reference"] == "JC-114/2026 order ORD-000001"
    assert "order_type: supervision" in row["link_status_note"]
    assert referral_status(sim.url, *ordered) == "accepted"
