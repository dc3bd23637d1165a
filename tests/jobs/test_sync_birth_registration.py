"""End to end: an unregistered child's birth is verified with NADRA, then the Union Council is
asked to register it (departments.md §3).

A CPO asks for a child's birth registration to be verified → the registry knows no such child →
the next sync writes "no registration found" into the case's "Linked department records" → the
CPO refers the child to the Union Council → the ``registration_request`` job (same department,
purpose ``registration_request`` in config/policy/birth_registration.toml) sends exactly one
registration request, carrying what a registration entry needs and never why the child is known
to child protection, nor a parent's CNIC or phone.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from typing import Any

import pytest

from adapter.app.jobs import open_job
from adapter.config import Settings
from adapter.primero import PrimeroClient
from adapter.primero.linked_records import SUBFORM_FIELD
from adapter.privacy import KeyRing
from adapter.simulator.departments import DepartmentSimulator, Desk
from adapter.simulator.departments.scenario import (
    NADRA_AGENCY,
    NADRA_SERVICE,
    UNION_COUNCIL_AGENCY,
    add_union_council,
    birth_registration_settings,
    refer_again,
    refer_children,
)
from adapter.simulator.primero import PrimeroSimulator
from adapter.simulator.scenario import install_linked_records_form
from adapter.state import StateStore

DEPARTMENTS = ["health", "police", "birth_registration", "courts"]
CNIC = "42101-1234567-8"
PHONE = "+923001234567"
PARENT = {
    "unique_id": "9b7c3f4e-6a1d-4f0e-9c2a-1d5e8f7a6b30",
    "relation": "mother",
    "relation_name": "Synthetic Mother",
    "relation_national_id": CNIC,
    "relation_telephone": PHONE,
    "relation_is_caregiver": True,
}


@pytest.fixture
def world(state_url: str) -> Iterator[dict[str, Any]]:
    with (
        PrimeroSimulator(cases=0) as sim,
        DepartmentSimulator("birth_registration", auth="oauth2") as nadra,
        Desk(nadra.url) as desk,
    ):
        install_linked_records_form(sim.url)
        add_union_council(sim)
        kek = secrets.token_bytes(32)
        with StateStore(state_url) as store:
            KeyRing.init(store, kek, DEPARTMENTS)
        (child,) = refer_children(
            sim.url,
            1,
            agency=NADRA_AGENCY,
            service=NADRA_SERVICE,
            concerns=["physically_or_mentally_abused"],
            fields={"family_details_section": [PARENT]},
        )
        yield {
            "sim": sim,
            "desk": desk,
            "child": child,
            "settings": birth_registration_settings(
                primero_url=sim.url, nadra_url=nadra.url, state_url=state_url, kek=kek
            ),
        }


def sync(settings: Settings, job: str) -> Any:
    with open_job(settings, job) as running:
        return running.run()


def linked_rows(sim: PrimeroSimulator, case_id: str) -> list[dict[str, Any]]:
    with PrimeroClient(
        sim.url, auth="basic", username="cpims-adapter", password="sim-password"
    ) as client:
        return list(client.get_case(case_id).get(SUBFORM_FIELD) or [])


def registration_writes(desk: Desk) -> list[dict[str, Any]]:
    return [
        r
        for r in desk.requests()
        if r["method"] == "POST" and r["path"].startswith("/registry/registration-requests")
    ]


def test_an_unregistered_child_is_referred_to_the_union_council_once(
    world: dict[str, Any],
) -> None:
    sim, desk, settings = world["sim"], world["desk"], world["settings"]
    case_id, search_referral = world["child"]

    # 1. Verification: the registry does not know the child; "no match" shows in Primero.
    verified = sync(settings, "birth_registration")
    assert verified.delivered == {"referral": 1}
    assert desk.record(f"ref-{search_referral}")["status"] == "no_match"
    (row,) = linked_rows(sim, case_id)
    assert row["link_department"] == "birth_registration"
    assert row["link_record_type"] == "birth_registration"
    assert "no registration found" in row["link_status_note"]
    assert not registration_writes(desk)  # a search never asks for a registration

    # 2. The CPO refers the child to the Union Council for registration.
    request_referral = refer_again(
        sim.url, case_id, agency=UNION_COUNCIL_AGENCY, service=NADRA_SERVICE
    )
    requested = sync(settings, "registration_request")
    assert requested.delivered == {"referral": 1}
    (sent,) = registration_writes(desk)
    assert sent["idempotency_key"]
    record = desk.record(f"ref-{request_referral}")
    body = record["body"]
    assert body["requested_by"] == "child-protection-unit"
    registration = body["registration"]
    assert registration["case_code"].startswith("cp1.birth_registration.")
    assert registration["child"] == {
        "name": "Synthetic Child 0",
        "given_name": "Synthetic",
        "family_name": "Child0",
        "date_of_birth": "2010-01-15",
        "sex": "male",
    }
    assert "address" not in registration.get("residence", {})
    parents = registration["parents"]
    assert [p.get("relation_name") for p in parents] == ["Synthetic Mother"]
    # Never why the child is known to child protection, never a CNIC or a phone, never an id.
    text = str(body)
    for withheld in ("protection_concerns", "physically_or_mentally_abused", CNIC, PHONE):
        assert withheld not in text
    assert case_id not in text and search_referral not in text

    # 3. A re-run of either job sends nothing more.
    again = sync(settings, "registration_request")
    assert not again.enqueued and not again.delivered
    assert not sync(settings, "birth_registration").delivered
    assert len(registration_writes(desk)) == 1
