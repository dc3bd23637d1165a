"""Create, update, disable, validation, silent drops, flags and sync (§4, §6-8, §10 #5, #6, #12)."""

from __future__ import annotations

import uuid
from typing import Any

import requests

from adapter.simulator.primero import PrimeroSimulator
from tests.simulator.sim_helpers import ADMIN, new_case, url

CASES = "/api/v2/cases"


def patch(
    api: requests.Session, sim: PrimeroSimulator, case_id: str, data: dict[str, Any]
) -> requests.Response:
    return api.patch(url(sim, f"{CASES}/{case_id}"), json={"data": data}, timeout=5)


def stored(sim: PrimeroSimulator, case_id: str) -> dict[str, Any]:
    return dict(requests.get(url(sim, f"/_sim/cases/{case_id}"), timeout=5).json())


def test_create_echoes_saved_fields_with_a_server_id(
    api: requests.Session, sim: PrimeroSimulator
) -> None:
    response = api.post(
        url(sim, CASES), json={"data": {"name": "Test", "age": 12, "sex": "female"}}, timeout=5
    )
    assert response.status_code == 200
    data = response.json()["data"]
    assert data["id"] and (data["name"], data["age"], data["sex"]) == ("Test", 12, "female")
    assert data["enabled"] is True and data["owned_by"] == "cpims-adapter"
    assert data["short_id"] == data["case_id"][-7:] == data["case_id_display"]
    assert data["case_id"] != data["id"]


def test_create_with_client_id_is_204_then_409(
    api: requests.Session, sim: PrimeroSimulator
) -> None:
    client_id = str(uuid.uuid4())
    body = {"data": {"id": client_id, "name": "Client Id", "age": 9}}
    first = api.post(url(sim, CASES), json=body, timeout=5)
    assert first.status_code == 204 and first.content == b""
    assert api.get(url(sim, f"{CASES}/{client_id}"), timeout=5).json()["data"]["age"] == 9
    again = api.post(url(sim, CASES), json=body, timeout=5)
    assert again.status_code == 409
    assert again.json()["errors"][0]["resource"] == "/api/v2/cases"


def test_type_validation_is_422_with_pointers(api: requests.Session, sim: PrimeroSimulator) -> None:
    case_id = new_case(api, sim)["id"]
    cases = {
        "/age": {"age": "twelve"},
        "/estimated": {"estimated": "yes"},
        "/sex": {"sex": "unknown"},
        "/date_of_birth": {"date_of_birth": "is invalid"},
        "/name": {"name": 42},
        "/protection_concerns/0": {"protection_concerns": ["not_a_concern"]},
    }
    for pointer, data in cases.items():
        response = patch(api, sim, case_id, data)
        assert response.status_code == 422, data
        assert response.json() == {
            "errors": [
                {
                    "status": 422,
                    "resource": f"/api/v2/cases/{case_id}",
                    "message": "Invalid Record JSON",
                    "detail": [pointer],
                }
            ]
        }
    created = api.post(url(sim, CASES), json={"data": {"date_of_birth": "is invalid"}}, timeout=5)
    assert created.status_code == 422


def test_future_date_of_birth_is_a_model_error(
    api: requests.Session, sim: PrimeroSimulator
) -> None:
    response = api.post(url(sim, CASES), json={"data": {"date_of_birth": "2999-01-01"}}, timeout=5)
    assert response.status_code == 422
    error = response.json()["errors"][0]
    assert error["detail"] == "date_of_birth" and isinstance(error["message"], list)


def test_patch_returns_changed_fields_and_bumps_last_updated(
    api: requests.Session, sim: PrimeroSimulator
) -> None:
    case = new_case(api, sim, age=12)
    response = patch(api, sim, case["id"], {"age": 10, "name": "Test Child"})
    assert response.status_code == 200
    data = response.json()["data"]
    assert data["age"] == 10 and "name" not in data  # unchanged fields are not echoed
    assert set(data) >= {"id", "enabled", "last_updated_at"}
    assert data["last_updated_at"] > case["last_updated_at"]
    as_admin = requests.patch(
        url(sim, f"{CASES}/{case['id']}"), auth=ADMIN, json={"data": {"age": 11}}, timeout=5
    ).json()["data"]
    assert as_admin["last_updated_by"] == "primero_admin"


def test_unknown_id_is_a_404_with_resource(api: requests.Session, sim: PrimeroSimulator) -> None:
    response = patch(api, sim, "thisdoesntexist", {"age": 1})
    assert response.status_code == 404
    error = response.json()["errors"][0]
    assert error["resource"] == "/api/v2/cases/thisdoesntexist"
    assert error["status"] == 404 and error["message"] == "Not Found"
    assert api.get(url(sim, f"{CASES}/thisdoesntexist"), timeout=5).status_code == 404


def test_subform_rows_merge_append_and_destroy(
    api: requests.Session, sim: PrimeroSimulator
) -> None:
    case = new_case(
        api,
        sim,
        family_details_section=[
            {"relation": "mother", "relation_name": "Ammi"},
            {"relation": "uncle", "relation_name": "Chacha"},
        ],
    )
    rows = stored(sim, case["id"])["data"]["family_details_section"]
    mother, uncle = rows
    assert all(uuid.UUID(r["unique_id"]) for r in rows)
    response = patch(
        api,
        sim,
        case["id"],
        {
            "family_details_section": [
                {"unique_id": mother["unique_id"], "relation_name": "Ammi Jan"},
                {"unique_id": uncle["unique_id"], "_destroy": True},
                {"relation": "aunt", "relation_name": "Khala"},
            ]
        },
    )
    assert response.status_code == 200
    after = stored(sim, case["id"])["data"]["family_details_section"]
    assert [r["relation_name"] for r in after] == ["Ammi Jan", "Khala"]
    assert after[0]["relation"] == "mother" and after[1]["unique_id"]
    # An empty array merges with nothing: the rows stay.
    patch(api, sim, case["id"], {"family_details_section": []})
    assert len(stored(sim, case["id"])["data"]["family_details_section"]) == 2


def test_unpermitted_and_unknown_fields_are_dropped_silently(
    api: requests.Session, sim: PrimeroSimulator
) -> None:
    case = new_case(api, sim)
    response = patch(
        api,
        sim,
        case["id"],
        {
            "name": "Kept Name",
            "favourite_colour": "blue",
            "notes_section": [{"note_text": "not allowed"}],
            "protection_concern_detail_subform_section": [{"protection_concern_type": "other"}],
            "case_id": "overwritten",
            "short_id": "1234567",
            "age": [3],
        },
    )
    assert response.status_code == 200
    data = stored(sim, case["id"])["data"]
    assert data["name"] == "Kept Name"
    for dropped in (
        "favourite_colour",
        "notes_section",
        "protection_concern_detail_subform_section",
    ):
        assert dropped not in data
    assert data["case_id"] == case["case_id"] and data["short_id"] == case["short_id"]
    assert data["age"] == 12


def test_delete_disables_the_record(api: requests.Session, sim: PrimeroSimulator) -> None:
    case = new_case(api, sim)
    response = api.delete(url(sim, f"{CASES}/{case['id']}"), timeout=5)
    assert response.status_code == 200 and response.json() == {"data": {"id": case["id"]}}
    shown = api.get(url(sim, f"{CASES}/{case['id']}"), timeout=5).json()["data"]
    assert shown["enabled"] is False and shown["record_state"] is False


def test_sync_then_mark_synced_write_back(api: requests.Session, sim: PrimeroSimulator) -> None:
    case = new_case(api, sim)
    sync = api.post(url(sim, f"{CASES}/{case['id']}/sync"), timeout=5)
    assert sync.status_code == 200
    assert sync.json()["data"]["sync_status"] == "sending"
    assert sync.json()["data"]["record_type"] == "case"
    response = patch(
        api, sim, case["id"], {"mark_synced": True, "mark_synced_url": "https://dept.example/inbox"}
    )
    assert response.status_code == 200
    shown = api.get(url(sim, f"{CASES}/{case['id']}"), timeout=5).json()["data"]
    assert shown["sync_status"] == "synced" and shown["synced_at"]
    assert "mark_synced" not in stored(sim, case["id"])["data"]


def test_flags_create_list_and_unflag(api: requests.Session, sim: PrimeroSimulator) -> None:
    case = new_case(api, sim)
    created = api.post(
        url(sim, f"{CASES}/{case['id']}/flags"),
        json={"data": {"message": "Check consent", "date": "2025-01-01"}},
        timeout=5,
    )
    assert created.status_code == 200
    flag = created.json()["data"]
    assert flag["message"] == "Check consent" and flag["removed"] is False
    assert flag["record_type"] == "cases" and flag["flagged_by"] == "cpims-adapter"
    listed = api.get(url(sim, f"{CASES}/{case['id']}/flags"), timeout=5).json()["data"]
    assert [f["id"] for f in listed] == [flag["id"]]
    shown = api.get(url(sim, f"{CASES}/{case['id']}"), timeout=5).json()["data"]
    assert shown["flag_count"] == 1 and shown["flagged"] is True
    resolved = api.patch(
        url(sim, f"{CASES}/{case['id']}/flags/{flag['id']}"),
        json={"data": {"unflag_message": "resolved"}},
        timeout=5,
    ).json()["data"]
    assert resolved["removed"] is True and resolved["unflag_message"] == "resolved"
    assert api.get(url(sim, f"{CASES}/{case['id']}"), timeout=5).json()["data"]["flag_count"] == 0


def test_missing_data_is_parameter_missing(api: requests.Session, sim: PrimeroSimulator) -> None:
    response = api.post(url(sim, CASES), json={"name": "no envelope"}, timeout=5)
    assert response.status_code == 422
    assert "data" in response.json()["errors"][0]["message"]


def test_read_only_role_cannot_write(sim: PrimeroSimulator) -> None:
    response = requests.post(
        url(sim, CASES), auth=("cp_viewer", "sim-password"), json={"data": {"name": "x"}}, timeout=5
    )
    assert response.status_code == 403
    assert response.json() == {
        "errors": [{"status": 403, "resource": "/api/v2/cases", "message": "Forbidden"}]
    }
