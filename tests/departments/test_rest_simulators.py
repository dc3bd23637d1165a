"""The shipped mapping files against the department simulators, through the REST connector:
every authentication mode on a real server, the DCI search and registration requests for birth
registration, and court orders back from the courts."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from pydantic import SecretStr

from adapter.app.departments import load_mapping
from adapter.config import DepartmentSettings
from adapter.departments.rest import RestConnector
from adapter.errors import Fatal
from adapter.mappings.routing import RoutedReferral
from adapter.mappings.vocabulary import StatusUpdate
from adapter.privacy import Disclosure, Stage
from adapter.simulator.departments import (
    API_KEY,
    BASIC_PASSWORD,
    BASIC_USER,
    CLIENT_ID,
    CLIENT_SECRET,
    DepartmentSimulator,
    Desk,
)

MAPPINGS = Path(__file__).resolve().parents[2] / "config" / "mappings"


def credentials(auth: str, url: str, *, wrong: bool = False) -> dict[str, Any]:
    secret = "wrong" if wrong else None
    if auth == "api_key":
        return {"api_key": SecretStr(secret or API_KEY)}
    if auth == "basic":
        return {"username": BASIC_USER, "password": SecretStr(secret or BASIC_PASSWORD)}
    return {
        "token_url": f"{url}/oauth/token",
        "client_id": CLIENT_ID,
        "client_secret": SecretStr(secret or CLIENT_SECRET),
    }


def open_connector(department: str, url: str, auth: str, **extra: Any) -> RestConnector:
    mapping = load_mapping(MAPPINGS / f"{department}.toml", department)
    settings = DepartmentSettings(
        connector="rest", base_url=url, auth=auth, two_stage=False, **extra
    )
    return RestConnector.from_settings(department, settings, mapping)


def routed(key: str, service: str) -> RoutedReferral:
    return RoutedReferral(key, "referral", key[4:], "row", service, "1_day", "in_progress", None)


def disclosed(department: str, purpose: str, payload: dict[str, Any]) -> Disclosure:
    code = f"cp1.{department}.1.CODE"
    return Disclosure(
        allowed=True,
        reason="",
        department=department,
        purpose=purpose,
        stage=Stage.IDENTIFIED,
        payload={"case_code": code, **payload},
        fields_out=(),
        fields_withheld=(),
        sensitivity="S1",
        consent_basis="consent",
        case_code=code,
    )


def send(connector: RestConnector, kind: str, body: dict[str, Any], key: str) -> str | None:
    return connector.deliver(kind, body, idempotency_key=key).external_ref


def updates(connector: RestConnector) -> dict[str, StatusUpdate]:
    return {u.referral_key: u for u, _ in connector.status_updates(None)}


@pytest.fixture
def police_document() -> dict[str, Any]:
    police = load_mapping(MAPPINGS / "police.toml", "police")
    document = police.referral(
        routed("ref-a1", "police_other_service"),
        disclosed("police", "referral", {"sex": "male"}),
        after_probe=False,
    )
    return document.body


@pytest.mark.parametrize("auth", ["api_key", "basic", "oauth2"])
def test_each_authentication_mode_against_a_real_server(
    auth: str, police_document: dict[str, Any]
) -> None:
    with DepartmentSimulator("police", auth=auth) as sim, Desk(sim.url) as desk:
        police = open_connector("police", sim.url, auth, **credentials(auth, sim.url))
        try:
            assert send(police, "referral", police_document, "k-1") == "PR-000001"
            # A replay of the same key is answered from the first answer: still one record.
            assert send(police, "referral", police_document, "k-1") == "PR-000001"
        finally:
            police.close()
        (record,) = desk.records()
        assert record["versions"] == 1 and record["body"]["referral"]["child"] == {"sex": "M"}
        wrong = open_connector("police", sim.url, auth, **credentials(auth, sim.url, wrong=True))
        try:
            with pytest.raises(Fatal, match="401"):
                send(wrong, "referral", police_document, "k-2")
        finally:
            wrong.close()


def test_an_expired_oauth2_token_is_renewed_on_a_real_server(
    police_document: dict[str, Any],
) -> None:
    with DepartmentSimulator("police", auth="oauth2") as sim, Desk(sim.url) as desk:
        police = open_connector("police", sim.url, "oauth2", **credentials("oauth2", sim.url))
        try:
            send(police, "referral", police_document, "k-1")
            desk.expire_tokens()
            desk.register_fir("ref-a1", station="PS-Kalri", year=2026, sections=["PPC 328-A"])
            (update,) = updates(police).values()
        finally:
            police.close()
        assert update.external_ref == "PS-Kalri/2026/1" and desk.token_fetches() == 2


@pytest.fixture
def nadra() -> Iterator[tuple[RestConnector, Desk]]:
    with DepartmentSimulator("birth_registration", auth="api_key") as sim, Desk(sim.url) as desk:
        connector = open_connector(
            "birth_registration", sim.url, "api_key", **credentials("api_key", sim.url)
        )
        try:
            yield connector, desk
        finally:
            connector.close()


CHILD = {
    "name_first": "Ayesha",
    "name_last": "Synthetic",
    "date_of_birth": "2015-06-01",
    "sex": "female",
    "services_section": [{"service_type": "registration_service"}],
}


def nadra_document(key: str, purpose: str, payload: dict[str, Any]) -> dict[str, Any]:
    mapping = load_mapping(MAPPINGS / "birth_registration.toml", "birth_registration")
    return mapping.referral(
        routed(key, "registration_service"),
        disclosed("birth_registration", purpose, payload),
        after_probe=False,
    ).body


def test_a_dci_search_finds_a_registered_child(nadra: tuple[RestConnector, Desk]) -> None:
    connector, desk = nadra
    desk.add_registered_child(
        given_name="Ayesha",
        family_name="Synthetic",
        birth_date="2015-06-01",
        sex="female",
        registration_number="BRN-4220-2015-000123",
    )
    found = nadra_document("ref-b1", "birth_registration", CHILD)
    missing = nadra_document("ref-b2", "birth_registration", {**CHILD, "name_first": "Sana"})
    assert send(connector, "referral", found, "k-1") == "TX-000001"
    send(connector, "referral", missing, "k-2")
    seen = updates(connector)
    assert seen["ref-b1"].status == "completed"
    assert seen["ref-b1"].record_type == "birth_registration"
    assert seen["ref-b1"].external_ref == "BRN-4220-2015-000123"
    assert seen["ref-b1"].details["result"] == "birth registered"
    assert seen["ref-b2"].external_ref is None
    assert seen["ref-b2"].details["result"].startswith("no registration found")


def test_a_registration_request_comes_back_with_a_registration_number(
    nadra: tuple[RestConnector, Desk],
) -> None:
    connector, desk = nadra
    request = nadra_document("ref-b3", "registration_request", CHILD)
    assert request["route"] == "registration_request"
    assert send(connector, "referral", request, "k-3") == "RR-000001"
    assert updates(connector) == {}  # nothing to say until the Union Council registers it
    desk.register_birth("ref-b3", registration_number="BRN-4220-2026-000007")
    (update,) = updates(connector).values()
    assert update.status == "completed" and update.external_ref == "BRN-4220-2026-000007"
    record = desk.record("ref-b3")
    assert record["collection"] == "registration"
    assert record["body"]["registration"]["child"]["given_name"] == "Ayesha"


def test_a_court_order_comes_back_as_a_linked_record() -> None:
    mapping = load_mapping(MAPPINGS / "courts.toml", "courts")
    document = mapping.referral(
        routed("ref-c1", "legal_assistance_service"),
        disclosed(
            "courts",
            "court_order",
            {"date_of_birth": "2012-02-02", "protection_concerns": ["child_labour"]},
        ),
        after_probe=False,
    ).body
    with DepartmentSimulator("courts", auth="basic") as sim, Desk(sim.url) as desk:
        courts = open_connector("courts", sim.url, "basic", **credentials("basic", sim.url))
        try:
            assert send(courts, "referral", document, "k-1") == "CF-000001"
            desk.make_order(
                "ref-c1",
                court={"type": "juvenile", "name": "Juvenile Court Karachi", "district": "South"},
                case_number="JC-114",
                case_year=2026,
                order_type="supervision",
                order_date="2026-03-01",
                next_hearing_date="2026-04-01",
            )
            (update,) = updates(courts).values()
        finally:
            courts.close()
    assert update.record_type == "court_order" and update.status == "in_progress"
    assert update.external_ref == "JC-114/2026 order ORD-000001"
    assert update.details == {
        "court": "Juvenile Court Karachi (juvenile)",
        "order_type": "supervision",
        "order_date": "2026-03-01",
        "next_hearing": "2026-04-01",
        "order_status": "active",
    }
