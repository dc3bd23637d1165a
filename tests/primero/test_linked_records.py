"""Linked department records against the Primero simulator: install the form, write rows."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
import requests

from adapter.errors import PrimeroForbidden, PrimeroNoOp, PrimeroValidationError
from adapter.primero import PrimeroClient
from adapter.primero.linked_records import (
    FORM_ID,
    STATUS_NOTE_MAX,
    SUBFORM_FIELD,
    SUBFORM_ID,
    install_forms,
    linked_record_row,
    subform_definition,
    write_linked_record,
)
from adapter.simulator.primero import PrimeroSimulator

PASSWORD = "sim-password"
CP, GBV = "primeromodule-cp", "primeromodule-gbv"
WHEN = datetime(2025, 3, 1, 9, 30, 15, 123456, tzinfo=UTC)


@pytest.fixture
def sim() -> Iterator[PrimeroSimulator]:
    """A fresh simulator per test: the tests change forms and role grants."""
    with PrimeroSimulator(cases=0) as simulator:
        yield simulator


def connect(sim: PrimeroSimulator, user: str = "cpims-adapter") -> PrimeroClient:
    return PrimeroClient(sim.url, username=user, password=PASSWORD, sleep=lambda _: None)


def control(sim: PrimeroSimulator, method: str, path: str, body: Any = None) -> Any:
    response = requests.request(method, f"{sim.url}/_sim{path}", json=body, timeout=10)
    response.raise_for_status()
    return response.json()


def grant(sim: PrimeroSimulator, access: str = "rw", role: str = "role-integration") -> None:
    control(sim, "PUT", f"/roles/{role}/forms", {"forms": {FORM_ID: access}})


def new_case(client: PrimeroClient, module: str = CP) -> str:
    case_id = str(uuid.uuid4())
    client.create_case({"name_first": "Test", "sex": "female", "module_id": module}, id=case_id)
    return case_id


def row(link_key: str = "health:referral:Task/123", **changes: Any) -> dict[str, Any]:
    values: dict[str, Any] = {
        "link_key": link_key,
        "department": "health-sindh",
        "record_type": "referral",
        "case_code": "H-7F3K",
        "external_reference": "Task/123",
        "status": "accepted",
        "status_note": "Appointment booked",
        "last_update": WHEN,
    }
    values.update(changes)
    return linked_record_row(**values)


def form_writes(sim: PrimeroSimulator) -> int:
    stats = control(sim, "GET", "/stats")["requests"]
    return sum(n for key, n in stats.items() if "/api/v2/forms" in key and "GET" not in key)


def forms_by_id(client: PrimeroClient) -> dict[str, dict[str, Any]]:
    return {form["unique_id"]: form for form in client.list_forms(record_type="case")}


# --- installing the form ----------------------------------------------------------------------


def test_install_creates_the_forms_once_then_changes_nothing(sim: PrimeroSimulator) -> None:
    with connect(sim, "primero_admin") as admin:
        first = install_forms(admin)
        writes = form_writes(sim)
        second = install_forms(admin)
        forms = forms_by_id(admin)

    assert [(c.unique_id, c.action) for c in first.forms] == [
        (SUBFORM_ID, "created"),
        (FORM_ID, "created"),
    ]
    assert first.changed and not second.changed
    assert {c.action for c in second.forms} == {"unchanged"}
    assert form_writes(sim) == writes, "a second install must not write"
    parent, nested = forms[FORM_ID], forms[SUBFORM_ID]
    assert nested["is_nested"] and not parent["is_nested"]
    (link,) = parent["fields"]
    assert link["name"] == SUBFORM_FIELD and link["type"] == "subform"
    assert link["subform_section_id"] == nested["id"]
    assert parent["module_ids"] == [CP]
    grants = first.permissions_text()
    for needed in (f"{FORM_ID}: Read and write", f"{FORM_ID}: Read", "sync_external", "flag"):
        assert needed in grants
    assert "receive_referral" in grants and "referral" in grants


def test_install_completes_a_partial_form_and_never_deletes(sim: PrimeroSimulator) -> None:
    partial = subform_definition()
    partial["fields"] = [
        {**partial["fields"][0], "display_name": {"en": "Idara"}},  # an admin's own label
        {"name": "admin_remark", "type": "text_field", "display_name": {"en": "Remark"}},
    ]
    with connect(sim, "primero_admin") as admin:
        admin.create_form(partial)
        report = install_forms(admin, module_ids=(CP, GBV))
        nested = forms_by_id(admin)[SUBFORM_ID]

    change = report.forms[0]
    assert change.action == "updated"
    assert any(d.startswith("added fields link_record_type") for d in change.details)
    assert f"attached to {GBV}" in change.details
    names = [f["name"] for f in nested["fields"]]
    assert names[:2] == ["link_department", "admin_remark"]
    assert set(names) >= {"link_key", "link_status", "link_last_update"}
    # Primero lists every locale of a label (FieldI18nService.fill_keys): "" for Urdu here.
    assert nested["fields"][0]["display_name"] == {"en": "Idara", "ur": ""}
    assert nested["module_ids"] == [CP, GBV]


def test_the_integration_account_may_not_install_forms(sim: PrimeroSimulator) -> None:
    with connect(sim) as client, pytest.raises(PrimeroForbidden) as raised:
        install_forms(client)
    message = str(raised.value)
    assert "metadata:manage" in message
    assert "CPIMS_ADAPTER_PRIMERO__USERNAME" in message


def test_the_record_type_select_offers_the_configured_record_types(
    sim: PrimeroSimulator,
) -> None:
    # Which record types exist is configuration (the mapping files' [record_types]): Primero
    # refuses a row whose type the installed select does not offer, and install-forms adds a
    # record type a new department declares, keeping what an administrator changed.
    grant(sim)
    enrolment = row("education:school_enrolment:E-1", record_type="school_enrolment")
    with connect(sim, "primero_admin") as admin:
        install_forms(admin, record_types={"fir": "First Information Report (FIR)"})
    with connect(sim) as client:
        case_id = new_case(client)
        with pytest.raises(PrimeroValidationError, match="link_record_type"):
            write_linked_record(client, case_id, enrolment)
    with connect(sim, "primero_admin") as admin:
        report = install_forms(
            admin,
            record_types={
                "fir": "First Information Report (FIR)",
                "school_enrolment": "School enrolment",
            },
        )
        nested = forms_by_id(admin)[SUBFORM_ID]
    assert report.forms[0].details == ("added options to link_record_type",)
    (select,) = [f for f in nested["fields"] if f["name"] == "link_record_type"]
    options = {o["id"]: o["display_text"]["en"] for o in select["option_strings_text"]}
    assert options == {
        "referral": "Referral",
        "deletion_request": "Deletion request",
        "fir": "First Information Report (FIR)",
        "school_enrolment": "School enrolment",
    }
    with connect(sim) as client:
        write_linked_record(client, case_id, enrolment)
        (stored,) = client.get_case(case_id)[SUBFORM_FIELD]
    assert stored["link_record_type"] == "school_enrolment"


# --- writing rows -----------------------------------------------------------------------------


def test_rows_are_dropped_until_the_role_is_granted_the_form(sim: PrimeroSimulator) -> None:
    with connect(sim, "primero_admin") as admin:
        install_forms(admin)
    with connect(sim) as client:
        case_id = new_case(client)
        with pytest.raises(PrimeroNoOp) as raised:
            write_linked_record(client, case_id, row())
        grant(sim, "r")  # read-only is not enough either
        with pytest.raises(PrimeroNoOp):
            write_linked_record(client, case_id, row())

    message = str(raised.value)
    assert "install-forms" in message and FORM_ID in message and "Read and write" in message
    assert SUBFORM_FIELD not in control(sim, "GET", f"/cases/{case_id}")["data"]


def test_granted_rows_persist_update_in_place_and_append(sim: PrimeroSimulator) -> None:
    with connect(sim, "primero_admin") as admin:
        install_forms(admin, record_types={"fir": "First Information Report (FIR)"})
    grant(sim)
    with connect(sim) as client:
        case_id = new_case(client)
        first = row()
        result = write_linked_record(client, case_id, first)
        assert result.dropped_fields == []
        (stored,) = client.get_case(case_id)[SUBFORM_FIELD]
        assert stored["unique_id"] == first["unique_id"]
        assert stored["link_status"] == "accepted"
        assert stored["link_external_reference"] == "Task/123"
        assert stored["link_last_update"] == "2025-03-01T09:30:15Z"

        later = WHEN + timedelta(days=2)
        write_linked_record(client, case_id, row(status="done", last_update=later))
        (updated,) = client.get_case(case_id)[SUBFORM_FIELD]
        assert updated["unique_id"] == first["unique_id"]
        assert updated["link_status"] == "done"

        fir = row(
            "police:fir:PS-Saddar/2025/123",
            department="police-sindh",
            record_type="fir",
            case_code=None,
            external_reference="PS-Saddar/2025/123",
            status="registered",
            status_note=None,
        )
        write_linked_record(client, case_id, fir)
        rows = client.get_case(case_id)[SUBFORM_FIELD]

    assert len(rows) == 2
    by_key = {r["link_key"]: r for r in rows}
    assert by_key["health:referral:Task/123"]["link_status"] == "done"
    assert by_key["police:fir:PS-Saddar/2025/123"]["link_record_type"] == "fir"
    assert "link_case_code" not in by_key["police:fir:PS-Saddar/2025/123"]


def test_a_case_in_a_module_without_the_form_is_a_clear_error(sim: PrimeroSimulator) -> None:
    with connect(sim, "primero_admin") as admin:
        install_forms(admin)  # CP only
    grant(sim)
    with connect(sim) as client:
        case_id = new_case(client, GBV)
        with pytest.raises(PrimeroNoOp, match="module"):
            write_linked_record(client, case_id, row())


# --- rows, without a server -------------------------------------------------------------------


def test_the_same_link_always_gets_the_same_row_id() -> None:
    assert row()["unique_id"] == row(status="done")["unique_id"]
    assert row()["unique_id"] != row("health:referral:Task/124")["unique_id"]
    assert str(uuid.UUID(row()["unique_id"])) == row()["unique_id"]


def test_status_note_is_one_short_line_and_times_are_utc() -> None:
    note = "Seen by\n  doctor. " + "x" * 500
    made = row(
        status_note=note,
        last_update=datetime(2025, 3, 1, 14, 0, tzinfo=timezone(timedelta(hours=5))),
    )
    assert made["link_status_note"].startswith("Seen by doctor. x")
    assert len(made["link_status_note"]) == STATUS_NOTE_MAX
    assert made["link_status_note"].endswith("…")
    assert made["link_last_update"] == "2025-03-01T09:00:00Z"


@pytest.mark.parametrize(
    ("changes", "problem"),
    [
        ({"record_type": "Medical report"}, "record_type"),
        ({"last_update": datetime(2025, 3, 1)}, "timezone-aware"),
        ({"external_reference": "R" * 201}, "external_reference"),
        ({"department": "  "}, "department"),
    ],
)
def test_invalid_rows_are_refused(changes: dict[str, Any], problem: str) -> None:
    with pytest.raises(ValueError, match=problem):
        row(**changes)
