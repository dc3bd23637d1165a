"""Write-back into Primero: department facts into configured case fields, never silently lost;
each part its own message, so none holds another back."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace

import pytest
import requests

from adapter.errors import PrimeroNotPermitted
from adapter.jobs.sync import _case_fields
from adapter.jobs.writeback import (
    KIND_WRITEBACK,
    PART_FIELDS,
    PART_ROW,
    PART_STATUS,
    PART_SYNCED,
    WriteBack,
    apply_write_back,
    needed_grant,
    part_kind,
    write_back_messages,
)
from adapter.mappings.vocabulary import StatusUpdate
from adapter.primero import PrimeroClient
from adapter.primero.linked_records import FORM_ID
from adapter.simulator.primero import PrimeroSimulator
from adapter.simulator.scenario import (
    SIM_PASSWORD,
    install_linked_records_form,
    refer_children_to_health,
)
from adapter.state.outbox import NewMessage, link_of


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
        pytest.raises(PrimeroNotPermitted, match="no_such_field"),
    ):
        apply_write_back(client, court_order(case_id, {"no_such_field": "x"}))


def test_each_part_is_its_own_message_with_its_own_key_and_lane() -> None:
    write_back = replace(
        court_order("case-1", {"court_order_type": "supervision"}),
        referral_id="referral-1",
        mark_synced=True,
    )

    def queued() -> list[NewMessage]:
        return write_back_messages(
            write_back, idempotency_key="k-1", job="courts", encrypt=lambda plain, _: plain
        )

    messages = queued()
    assert [m.kind for m in messages] == [
        part_kind(PART_STATUS),
        part_kind(PART_ROW),
        part_kind(PART_FIELDS),
        part_kind(PART_SYNCED),
    ]
    # The row keeps the whole write-back's key and the link's own lane; the others have theirs.
    row = messages[1]
    assert row.idempotency_key == "k-1" and row.link_key == write_back.link_key
    assert len({m.idempotency_key for m in messages}) == 4
    assert len({m.link_key for m in messages}) == 4
    assert {link_of(m.link_key) for m in messages} == {write_back.link_key}
    assert {m.destination for m in messages} == {"primero"}
    # Re-reading the same answer queues the same keys: the outbox keeps one of each.
    assert [m.idempotency_key for m in queued()] == [m.idempotency_key for m in messages]
    # A record without a referral, facts or sync status is one row.
    (only,) = write_back_messages(
        court_order("case-1", {}), idempotency_key="k-2", job="courts", encrypt=lambda p, _: p
    )
    assert only.kind == part_kind(PART_ROW)
    # A status that moves no Primero referral (the department received it, or cancelled)
    # has no status part: it would be a message that sends nothing.
    for status in ("requested", "cancelled"):
        (row_only,) = write_back_messages(
            replace(court_order("case-1", {}), referral_id="referral-1", status=status),
            idempotency_key=f"k-{status}",
            job="courts",
            encrypt=lambda p, _: p,
        )
        assert row_only.kind == part_kind(PART_ROW)


def test_a_message_queued_whole_still_applies_every_part_it_can(
    world: tuple[PrimeroSimulator, str],
) -> None:
    """A write-back queued by an older version (every part in one message): the facts reach
    the case even though the row cannot be written, and the failure names the grant."""
    sim, case_id = world
    grant = f"{sim.url}/_sim/roles/role-integration/forms"
    requests.put(grant, json={"forms": {FORM_ID: "r"}}, timeout=10).raise_for_status()
    try:
        with (
            PrimeroClient(
                sim.url, auth="basic", username="cpims-adapter", password=SIM_PASSWORD
            ) as client,
            pytest.raises(PrimeroNotPermitted, match=FORM_ID) as refused,
        ):
            whole = court_order(case_id, {"other_agency_id": "JC-115/2026"})
            apply_write_back(client, replace(whole, link_key="courts:ref-2"))  # a new row
        assert "Read and write" in refused.value.grant
        with PrimeroClient(
            sim.url, auth="basic", username="cpims-adapter", password=SIM_PASSWORD
        ) as client:
            assert client.get_case(case_id)["other_agency_id"] == "JC-115/2026"
            assert needed_grant(KIND_WRITEBACK) == needed_grant(part_kind(PART_ROW))
    finally:
        requests.put(grant, json={"forms": {FORM_ID: "rw"}}, timeout=10).raise_for_status()
