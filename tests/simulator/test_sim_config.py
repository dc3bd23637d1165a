"""Settings, forms, lookups, agencies, refer-to, modules, webhooks and their delivery (§1.2, §7)."""

from __future__ import annotations

import time

import requests

from adapter.simulator.primero import PrimeroSimulator
from tests.simulator.sim_helpers import Receiver, new_case, url, wait_for


def test_system_settings_and_public_bootstrap(api: requests.Session, sim: PrimeroSimulator) -> None:
    settings = api.get(url(sim, "/api/v2/system_settings"), timeout=5).json()["data"]
    assert settings["primero_version"] == "2.15.2.1"
    public = requests.get(url(sim, "/api/v2/primero"), timeout=5)
    assert public.status_code == 200 and public.json()["data"]["agencies"]
    health = requests.get(url(sim, "/health"), timeout=5)
    assert health.status_code == 204 and health.content == b""


def test_primero_version_is_an_option() -> None:
    with PrimeroSimulator(primero_version="2.11.0") as other:
        body = requests.get(
            url(other, "/api/v2/system_settings"), auth=("cpims-adapter", "sim-password"), timeout=5
        ).json()
        assert body["data"]["primero_version"] == "2.11.0"


def test_forms_filters(api: requests.Session, sim: PrimeroSimulator) -> None:
    forms = api.get(
        url(sim, "/api/v2/forms"),
        params={"record_type": "case", "module_id": "primeromodule-cp"},
        timeout=5,
    ).json()["data"]
    by_id = {f["unique_id"]: f for f in forms}
    assert "basic_identity" in by_id and "services_section" in by_id
    services = by_id["services"]["fields"][0]
    assert services["type"] == "subform"
    assert services["subform_section_unique_id"] == "services_section"
    # FieldI18nService.fill_keys lists every locale.
    assert by_id["basic_identity"]["name"] == {"en": "Basic Identity", "ur": ""}
    assert (
        api.get(url(sim, "/api/v2/forms"), params={"record_type": "incident"}, timeout=5).json()[
            "data"
        ]
        == []
    )


def test_new_form_fields_are_writable_only_once_granted(
    admin: requests.Session, api: requests.Session, sim: PrimeroSimulator
) -> None:
    nested = admin.post(
        url(sim, "/api/v2/forms"),
        json={
            "data": {
                "unique_id": "external_links_section",
                "name": {"en": "External links"},
                "parent_form": "case",
                "is_nested": True,
                "module_ids": ["primeromodule-cp"],
                "fields": [
                    {"name": "system", "type": "text_field"},
                    {"name": "external_id", "type": "text_field"},
                    {"name": "status", "type": "text_field"},
                ],
            }
        },
        timeout=5,
    )
    assert nested.status_code == 200
    parent = admin.post(
        url(sim, "/api/v2/forms"),
        json={
            "data": {
                "unique_id": "external_links",
                "name": {"en": "External links"},
                "parent_form": "case",
                "module_ids": ["primeromodule-cp"],
                "fields": [
                    {
                        "name": "external_links_section",
                        "type": "subform",
                        "subform_section_unique_id": "external_links_section",
                    }
                ],
            }
        },
        timeout=5,
    )
    assert parent.status_code == 200
    duplicate = admin.post(
        url(sim, "/api/v2/forms"),
        json={"data": {"unique_id": "external_links", "parent_form": "case"}},
        timeout=5,
    )
    assert duplicate.status_code == 422
    assert duplicate.json()["errors"][0]["detail"] == "unique_id"

    case = new_case(api, sim)
    link = {"external_links_section": [{"system": "health", "external_id": "H-1"}]}
    api.patch(url(sim, f"/api/v2/cases/{case['id']}"), json={"data": link}, timeout=5)
    stored = requests.get(url(sim, f"/_sim/cases/{case['id']}"), timeout=5).json()["data"]
    assert "external_links_section" not in stored

    grant = requests.put(
        url(sim, "/_sim/roles/role-integration/forms"),
        json={"forms": {"external_links": "rw"}},
        timeout=5,
    )
    assert grant.status_code == 200
    response = api.patch(url(sim, f"/api/v2/cases/{case['id']}"), json={"data": link}, timeout=5)
    row = response.json()["data"]["external_links_section"][0]
    assert row["external_id"] == "H-1" and row["unique_id"]


def test_creating_a_form_with_a_client_id_is_204_without_a_body(
    admin: requests.Session, sim: PrimeroSimulator
) -> None:
    # form_sections_controller.rb#create: `params[:data][:id].present? ? 204 : 200`; `id` is in
    # FormSection.permitted_api_params, so the form keeps it; a taken id is RecordNotUnique (409).
    body = {"data": {"id": 9001, "unique_id": "client_id_form", "name": {"en": "Client id"}}}
    created = admin.post(url(sim, "/api/v2/forms"), json=body, timeout=5)
    assert created.status_code == 204 and created.content == b""
    shown = admin.get(url(sim, "/api/v2/forms/9001"), timeout=5).json()["data"]
    assert shown["unique_id"] == "client_id_form"
    body["data"]["unique_id"] = "client_id_form_again"
    taken = admin.post(url(sim, "/api/v2/forms"), json=body, timeout=5)
    assert taken.status_code == 409
    plain = {"data": {"unique_id": "server_id_form", "name": {"en": "Server id"}}}
    answered = admin.post(url(sim, "/api/v2/forms"), json=plain, timeout=5)
    assert answered.status_code == 200 and answered.json()["data"]["id"]


def test_only_admins_manage_forms(api: requests.Session, sim: PrimeroSimulator) -> None:
    response = api.post(url(sim, "/api/v2/forms"), json={"data": {"unique_id": "x"}}, timeout=5)
    assert response.status_code == 403


def test_lookups_and_agencies(api: requests.Session, sim: PrimeroSimulator) -> None:
    lookups = api.get(url(sim, "/api/v2/lookups"), params={"per": 100}, timeout=5).json()
    by_id = {x["unique_id"]: x for x in lookups["data"]}
    assert {"lookup-service-type", "lookup-protection-concerns", "lookup-gender"} <= set(by_id)
    values = [v["id"] for v in by_id["lookup-protection-concerns"]["values"]]
    assert {"sexually_exploited", "gbv_survivor", "trafficked_smuggled"} <= set(values)
    agencies = api.get(url(sim, "/api/v2/agencies"), params={"per": 100}, timeout=5).json()
    ids = {a["unique_id"] for a in agencies["data"]}
    assert {"agency-civil-hospital-karachi", "agency-nadra", "agency-sindh-police"} <= ids


def test_refer_to_filters_with_the_singular_service_param(
    api: requests.Session, sim: PrimeroSimulator
) -> None:
    def names(**params: str) -> list[str]:
        base = {"record_type": "case", "record_module_id": "primeromodule-cp"}
        body = api.get(
            url(sim, "/api/v2/users/refer-to"), params={**base, **params}, timeout=5
        ).json()
        return sorted(u["user_name"] for u in body["data"])

    everyone = names()
    assert "health_gateway" in everyone and "system_monitor" not in everyone
    assert "cpims-adapter" not in everyone  # never oneself
    assert names(service="health_medical_service") == ["health_gateway"]
    assert names(services="health_medical_service") == everyone  # plural is ignored
    assert names(agency="agency-civil-hospital-karachi") == ["health_gateway"]
    assert names(location="PK-KP-PEW") == ["cp_worker2"]


def test_webhook_registration_rules(admin: requests.Session, sim: PrimeroSimulator) -> None:
    body = {
        "events": "case.update",
        "url": "http://127.0.0.1:9/x",
        "role_unique_id": "role-integration",
        "metadata": {"tag": "adapter"},
        "auth_type": "api_key",
        "auth_secret": "s3cret",
    }
    created = admin.post(url(sim, "/api/v2/webhooks"), json={"data": body}, timeout=5)
    assert created.status_code == 200
    webhook = created.json()["data"]
    assert set(webhook) == {"id", "events", "url", "role_unique_id", "metadata"}
    assert "auth_type" not in sim.state.webhooks[webhook["id"]]
    as_list = admin.post(
        url(sim, "/api/v2/webhooks"),
        json={"data": {**body, "events": ["case.create", "case.update"]}},
        timeout=5,
    )
    assert as_list.status_code == 422
    assert as_list.json()["errors"][0]["detail"] == "events"
    updated = admin.patch(
        url(sim, f"/api/v2/webhooks/{webhook['id']}"),
        json={"data": {"events": "case.create"}},
        timeout=5,
    ).json()["data"]
    assert updated["events"] == "case.create"
    assert [w["id"] for w in admin.get(url(sim, "/api/v2/webhooks"), timeout=5).json()["data"]] == [
        webhook["id"]
    ]
    assert admin.delete(url(sim, f"/api/v2/webhooks/{webhook['id']}"), timeout=5).status_code == 200
    forbidden = requests.get(
        url(sim, "/api/v2/webhooks"), auth=("cpims-adapter", "sim-password"), timeout=5
    )
    assert forbidden.status_code == 403


def test_webhooks_fire_only_when_enabled_and_never_retry(
    admin: requests.Session, api: requests.Session, sim: PrimeroSimulator, receiver: Receiver
) -> None:
    for event in ("case.create", "case.update"):
        admin.post(
            url(sim, "/api/v2/webhooks"),
            json={
                "data": {
                    "events": event,
                    "url": receiver.url + "/inbox",
                    "role_unique_id": "role-integration",
                }
            },
            timeout=5,
        )
    new_case(api, sim, name="Before Enabling")
    modules = {
        m["unique_id"]: m
        for m in admin.get(url(sim, "/api/v2/primero_modules"), timeout=5).json()["data"]
    }
    assert modules["primeromodule-cp"]["module_options"]["use_webhooks_for"] == []
    # The API drops module_options; the option is set in Primero's configuration instead.
    requests.patch(
        url(sim, "/_sim/modules/primeromodule-cp"),
        json={"module_options": {"use_webhooks_for": ["case"]}},
        timeout=5,
    )

    case = new_case(api, sim, name="Webhook Child")
    first = wait_for(lambda: receiver.posts)[0]
    data = first["body"]["data"]
    assert data["record_id"] == case["id"] and data["record_type"] == "case"
    assert data["hostname"] and data["name"] == "Webhook Child"
    assert "notes_section" not in data and "id" not in data
    assert len(receiver.posts) == 1  # the case created before enabling was not sent

    receiver.status = 500
    api.patch(url(sim, f"/api/v2/cases/{case['id']}"), json={"data": {"age": 3}}, timeout=5)
    wait_for(lambda: len(receiver.posts) == 2)
    deliveries = wait_for(
        lambda: [
            d
            for d in requests.get(url(sim, "/_sim/webhook_deliveries"), timeout=5).json()["data"]
            if d["record_id"] == case["id"] and d["status_code"] == 500
        ]
    )
    assert deliveries[0]["event"] == "case.update"
    shown = api.get(url(sim, f"/api/v2/cases/{case['id']}"), timeout=5).json()["data"]
    assert shown["sync_status"] == "failed"
    time.sleep(0.3)
    assert len(receiver.posts) == 2  # no retry
    requests.patch(
        url(sim, "/_sim/modules/primeromodule-cp"),
        json={"module_options": {"use_webhooks_for": []}},
        timeout=5,
    )


def test_module_patch_drops_options_and_detaches_unlisted_forms(
    admin: requests.Session, api: requests.Session, sim: PrimeroSimulator
) -> None:
    module = next(
        m
        for m in admin.get(url(sim, "/api/v2/primero_modules"), timeout=5).json()["data"]
        if m["unique_id"] == "primeromodule-gbv"
    )
    path = f"/api/v2/primero_modules/{module['id']}"
    forms = module["form_section_unique_ids"]
    assert "basic_identity" in forms
    assert (
        admin.get(url(sim, "/api/v2/primero_modules/primeromodule-gbv"), timeout=5).status_code
        == 404
    )  # found by numeric id only
    gbv = new_case(api, sim, module_id="primeromodule-gbv", age=4)
    dropped = admin.patch(
        url(sim, path), json={"data": {"module_options": {"use_webhooks_for": ["case"]}}}, timeout=5
    ).json()["data"]
    assert dropped["module_options"]["use_webhooks_for"] == []
    assert dropped["form_section_unique_ids"] == []  # no list sent: every form detached
    api.patch(url(sim, f"/api/v2/cases/{gbv['id']}"), json={"data": {"age": 5}}, timeout=5)
    stored = requests.get(url(sim, f"/_sim/cases/{gbv['id']}"), timeout=5).json()["data"]
    assert stored["age"] == 4  # no form, no writable field
    restored = admin.patch(
        url(sim, path), json={"data": {"form_section_unique_ids": forms}}, timeout=5
    ).json()["data"]
    assert sorted(restored["form_section_unique_ids"]) == sorted(forms)


def test_locations_list_short_items_unless_hierarchy_and_page_by_100(
    api: requests.Session, sim: PrimeroSimulator
) -> None:
    # locations_controller.rb: per = params[:per]&.to_i || 100 (no 1000 cap);
    # locations/_location.json.jbuilder: admin_level, placename, hierarchy only with_hierarchy.
    short = api.get(url(sim, "/api/v2/locations"), timeout=5).json()
    assert short["metadata"]["per"] == 100 and short["metadata"]["page"] == 1
    assert short["data"] and all(
        set(item) == {"id", "code", "type", "disabled", "name"} for item in short["data"]
    )
    full = api.get(url(sim, "/api/v2/locations"), params={"hierarchy": "true"}, timeout=5).json()
    assert all({"admin_level", "placename", "hierarchy"} <= set(item) for item in full["data"])
    big = api.get(url(sim, "/api/v2/locations"), params={"per": 5000}, timeout=5).json()
    assert big["metadata"]["per"] == 5000


def test_form_json_carries_collapsed_field_names_and_every_field_column(
    admin: requests.Session, sim: PrimeroSimulator
) -> None:
    # form_sections/_form_section.json.jbuilder: form.as_json.compact + fields' as_json.compact
    # + module_ids + collapsed_field_names (sorted by field order); columns from db/schema.rb.
    body = {
        "data": {
            "unique_id": "collapsed_rows_section",
            "name": {"en": "Rows"},
            "is_nested": True,
            "collapsed_field_names": ["row_b", "row_a"],
            "fields": [
                {"name": "row_a", "type": "text_field"},
                {"name": "row_b", "type": "date_field"},
                {"name": "row_c", "type": "text_field"},
            ],
        }
    }
    form = admin.post(url(sim, "/api/v2/forms"), json=body, timeout=5).json()["data"]
    assert form["collapsed_field_names"] == ["row_a", "row_b"]
    assert form["name"] == {"en": "Rows", "ur": ""}
    assert form["is_first_tab"] is False and form["subform_header_links"] == []
    row_b = form["fields"][1]
    assert isinstance(row_b["id"], int) and row_b["form_section_id"] == form["id"]
    assert row_b["order"] == 1
    assert row_b["date_validation"] == "default_date_validation"
    assert row_b["mobile_visible"] is True and row_b["hide_on_view_page"] is False
    assert row_b["display_name"] == {"en": "row_b", "ur": ""}
    again = admin.get(url(sim, f"/api/v2/forms/{form['id']}"), timeout=5).json()["data"]
    assert [f["id"] for f in again["fields"]] == [f["id"] for f in form["fields"]]
    seeded = admin.get(url(sim, "/api/v2/forms"), timeout=5).json()["data"]
    assert all("collapsed_field_names" in f for f in seeded)
    assert all("form_section_id" in field for f in seeded for field in f["fields"])
