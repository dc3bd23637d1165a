"""Write-back into Primero: department facts into configured case fields, never silently lost."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from adapter.departments.base import StatusUpdate
from adapter.errors import PrimeroNoOp
from adapter.jobs.sync import _case_fields
from adapter.jobs.writeback import WriteBack, apply_write_back
from adapter.primero import PrimeroClient
from adapter.simulator.primero import PrimeroSimulator
from adapter.simulator.scenario import (
    SIM_PASSWORD,
    install_linked_records_form,
    refer_children_to_health,
)


@pytest.fixture(scope="module")
def world() -> Iterator[tuple[PrimeroSimulator, str]]:
    with PrimeroSimulator(cases=0) as sim:
        install_linked_records_form(sim.url)
        ((case_id, _),) = refer_children_to_health(sim.url, 1)
        yield sim, case_id


def court_order(case_id: str, case_fields: dict[str, str]) -> WriteBack:
    return WriteBack(
        link_key="courts:ref-1",
        department="courts",
        case_id=case_id,
        referral_id=None,
        case_code="cp1.courts.1.ABC",
        status="in_progress",
        reason=None,
        note=None,
        outputs=(),
        external_ref="JC-114/2026",
        updated_at="2026-03-01T10:00:00+00:00",
        record_type="court_order",
        details={"order_type": "supervision", "review_date": "2026-09-01"},
        case_fields=case_fields,
    )


def test_configured_facts_are_picked_by_record_type() -> None:
    update = StatusUpdate(
        referral_key="ref-1",
        status="in_progress",
        record_type="court_order",
        details={"order_type": "supervision", "court": "Juvenile Court Karachi"},
    )
    configured = {
        "court_order.order_type": "court_order_type",
        "court_order.review_date": "court_review_date",  # absent in this update: not sent
        "fir.sections": "fir_sections",  # another record type
    }
    assert _case_fields(configured, update) == {"court_order_type": "supervision"}


def test_facts_land_in_the_configured_primero_field(world: tuple[PrimeroSimulator, str]) -> None:
    sim, case_id = world
    with PrimeroClient(
        sim.url, auth="basic", username="cpims-adapter", password=SIM_PASSWORD
    ) as client:
        apply_write_back(client, court_order(case_id, {"other_agency_id": "JC-114/2026"}))
        assert client.get_case(case_id)["other_agency_id"] == "JC-114/2026"


def test_a_field_primero_drops_is_an_error_not_a_silent_loss(
    world: tuple[PrimeroSimulator, str],
) -> None:
    sim, case_id = world
    with (
        PrimeroClient(
            sim.url, auth="basic", username="cpims-adapter", password=SIM_PASSWORD
        ) as client,
        pytest.raises(PrimeroNoOp, match="no_such_field"),
    ):
        apply_write_back(client, court_order(case_id, {"no_such_field": "x"}))
