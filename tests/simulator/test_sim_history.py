"""Record history and users as Primero's code serves them (record_histories_controller.rb,
index.json.jbuilder, historical.rb; users_controller.rb#index, permitted_users_service.rb)."""

from __future__ import annotations

import re

import requests

from adapter.primero import PrimeroClient
from adapter.simulator.primero import PrimeroSimulator
from adapter.simulator.scenario import install_linked_records_form

from .sim_helpers import ADAPTER, PASSWORD, new_case, url

ISO_SECONDS = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$")


def test_every_save_is_one_entry_by_the_signed_in_user_newest_first(
    sim: PrimeroSimulator, api: requests.Session
) -> None:
    case = new_case(api, sim, age=9)
    worker = requests.Session()
    worker.auth = ("cpims-adapter", PASSWORD)
    worker.patch(
        url(sim, f"/api/v2/cases/{case['id']}"), json={"data": {"age": 10}}
    ).raise_for_status()
    # A request cannot choose the name the history records: last_updated_by is overwritten.
    worker.patch(
        url(sim, f"/api/v2/cases/{case['id']}"),
        json={"data": {"age": 11, "last_updated_by": "cp_supervisor1"}},
    ).raise_for_status()
    body = api.get(url(sim, f"/api/v2/cases/{case['id']}/record_history")).json()
    assert body["metadata"] == {"total": 3, "per": 20, "page": 1}
    newest, middle, created = body["data"]
    assert [e["action"] for e in body["data"]] == ["update", "update", "create"]
    assert {e["user_name"] for e in body["data"]} == {"cpims-adapter"}
    assert newest["record_changes"] == [{"age": {"from": 10, "to": 11}}]
    assert middle["record_changes"] == [{"age": {"from": 9, "to": 10}}]
    assert {"age": {"from": None, "to": 9}} in created["record_changes"]
    assert all(ISO_SECONDS.match(e["datetime"]) for e in body["data"])
    assert set(newest) == {
        "record_id",
        "record_type",
        "datetime",
        "user_name",
        "action",
        "record_changes",
    }
    assert newest["record_type"] == "cases" and newest["record_id"] == case["id"]


def test_filters_paging_and_the_change_log_permission(
    sim: PrimeroSimulator, api: requests.Session
) -> None:
    case = new_case(api, sim)
    for age in range(3, 8):
        api.patch(url(sim, f"/api/v2/cases/{case['id']}"), json={"data": {"age": age}})
    api.patch(url(sim, f"/api/v2/cases/{case['id']}"), json={"data": {"sex": "male"}})
    path = url(sim, f"/api/v2/cases/{case['id']}/record_history")
    only_sex = api.get(path, params={"filters[field_names][0]": "sex"}).json()
    assert only_sex["metadata"]["total"] == 2  # the create and the one edit
    page2 = api.get(path, params={"per": 3, "page": 2}).json()
    assert page2["metadata"] == {"total": 7, "per": 3, "page": 2} and len(page2["data"]) == 3
    viewer = requests.get(path, auth=("cp_viewer", PASSWORD), timeout=10)
    assert viewer.status_code == 403  # no case:change_log


def test_users_index_filters_and_scopes(sim: PrimeroSimulator, api: requests.Session) -> None:
    body = api.get(url(sim, "/api/v2/users"), params={"user_name": "cp_supervisor1"}).json()
    (user,) = body["data"]
    assert user["role_unique_id"] == "role-cp-supervisor"
    assert user["user_group_unique_ids"] == ["usergroup-cpu-sindh-supervisors"]
    assert "encrypted_password" not in user and "role_id" not in user
    everyone = api.get(url(sim, "/api/v2/users"), params={"per": 100}).json()
    assert "primero_admin" not in {u["user_name"] for u in everyone["data"]}  # super user
    refused = requests.get(url(sim, "/api/v2/users"), auth=("cp_worker1", PASSWORD), timeout=10)
    assert refused.status_code == 403


def test_a_rehearsal_plays_the_supervisor_and_the_client_reads_who_it_was(
    sim: PrimeroSimulator, api: requests.Session
) -> None:
    install_linked_records_form(sim.url)
    case = new_case(api, sim)
    answer = requests.post(
        url(sim, f"/_sim/cases/{case['id']}/decisions"),
        json={"user_name": "cp_supervisor1", "department": "health", "basis": "s3_approval"},
        timeout=10,
    )
    assert answer.status_code == 200, answer.text
    (row,) = answer.json()["data"]
    with PrimeroClient(sim.url, auth="basic", username=ADAPTER[0], password=PASSWORD) as client:
        (entry,) = client.iter_record_history(case["id"], ["disclosure_decisions_section"])
        assert client.find_user("cp_supervisor1")["role_unique_id"] == "role-cp-supervisor"
        assert client.find_user("nobody") is None
    assert entry["user_name"] == "cp_supervisor1"
    changes = {k: v for change in entry["record_changes"] for k, v in change.items()}
    assert changes["disclosure_decisions_section"] == {"from": None, "to": [row]}
