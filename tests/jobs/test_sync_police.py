"""End to end: referrals from the Primero simulator to the police simulator and FIR links back.

Children referred to the Sindh Police WCPC in Primero (with consent, or under a mandatory report
a supervisor recorded) → exactly one police record per referral, through the police allow-list
and the police mapping file (config/mappings/police.toml), over OAuth2 → the police register
FIRs → the next sync writes each FIR link into the case's "Linked department records" and moves
the Primero referral on. A child in conflict with the law goes to the juvenile desk.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from typing import Any

import pytest
import sqlalchemy as sa

from adapter.app.jobs import open_job
from adapter.clock import utcnow
from adapter.config import Settings
from adapter.primero import PrimeroClient
from adapter.primero.linked_records import SUBFORM_FIELD
from adapter.privacy import KeyRing
from adapter.simulator.departments import DepartmentSimulator, Desk
from adapter.simulator.departments.scenario import (
    police_settings,
    record_override,
    refer_children,
)
from adapter.simulator.primero import PrimeroSimulator
from adapter.simulator.scenario import cpo_edit, install_linked_records_form, referral_status
from adapter.state import StateStore, schema

N = 3  # consented referrals; plus one juvenile and one under a mandatory report
DEPARTMENTS = ["health", "police", "birth_registration", "courts"]


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
        consented = refer_children(sim.url, N)
        (juvenile,) = refer_children(sim.url, 1, concerns=["arrested_detained"])
        (reported,) = refer_children(sim.url, 1, concerns=["sexually_exploited"], consent=False)
        record_override(state_url, kek, reported[0], "police")
        yield {
            "sim": sim,
            "desk": desk,
            "settings": police_settings(
                primero_url=sim.url, police_url=police.url, state_url=state_url, kek=kek
            ),
            "consented": consented,
            "juvenile": juvenile,
            "reported": reported,
            "all": [*consented, juvenile, reported],
            "state_url": state_url,
            "kek": kek,
        }


def sync(settings: Settings) -> Any:
    with open_job(settings, "police") as job:
        return job.run()


def key(pair: tuple[str, str]) -> str:
    return f"ref-{pair[1]}"


def linked_rows(sim: PrimeroSimulator, case_id: str) -> list[dict[str, Any]]:
    with PrimeroClient(
        sim.url, auth="basic", username="cpims-adapter", password="sim-password"
    ) as client:
        return list(client.get_case(case_id).get(SUBFORM_FIELD) or [])


def writes(desk: Desk) -> list[dict[str, Any]]:
    return [r for r in desk.requests() if r["method"] != "GET"]


def test_each_referral_reaches_the_police_exactly_once(world: dict[str, Any]) -> None:
    desk, settings = world["desk"], world["settings"]
    everyone = world["all"]

    first = sync(settings)
    assert first.delivered == {"referral": N + 2}
    records = {r["referral_key"]: r for r in desk.records()}
    assert set(records) == {key(pair) for pair in everyone}
    assert all(r["versions"] == 1 for r in records.values())
    # Every write carried the adapter's idempotency key.
    assert all(w["idempotency_key"] for w in writes(desk))

    # Consented: the police allow-list, expressed through the mapping file.
    body = records[key(world["consented"][0])]["body"]
    referral = body["referral"]
    assert referral["case_code"].startswith("cp1.police.")
    assert referral["basis"] == "consent" and referral["priority"] == "emergency"
    assert referral["child"] == {
        "name": "Synthetic Child 0",
        "date_of_birth": "2010-01-15",
        "sex": "M",
    }
    assert referral["whereabouts"]["address"] == "House 0, Street 4, Lyari"
    assert referral["service"] == "police_other_service"
    assert "age" not in str(body) and "consent_for_services" not in str(body)

    # A mandatory report for an S3 case: the name only (privacy.md §6.5), nothing else leaves.
    reported = records[key(world["reported"])]["body"]["referral"]
    assert reported["basis"] == "mandatory_report"
    assert reported["child"] == {"name": "Synthetic Child 0"}
    assert "protection_concerns" not in reported and "whereabouts" not in reported

    # The juvenile-in-conflict case went to the juvenile desk.
    assert records[key(world["juvenile"])]["collection"] == "juvenile"
    assert {r["collection"] for k, r in records.items() if k != key(world["juvenile"])} == {
        "protection"
    }

    # A re-run sends nothing.
    sent = len(writes(desk))
    again = sync(settings)
    assert not again.enqueued and not again.delivered
    assert len(writes(desk)) == sent and len(desk.records()) == N + 2


def test_a_lost_answer_is_resent_and_replayed_not_duplicated(world: dict[str, Any]) -> None:
    desk, settings = world["desk"], world["settings"]
    # The police system takes every referral, but a proxy loses the first two answers.
    desk.fail_next(502, count=2, path_prefix="/api/v1/referrals", after=True)
    first = sync(settings)
    assert first.retrying == 2 and first.delivered == {"referral": N + 2 - 2}
    assert len(desk.records()) == N + 2  # the two whose answers were lost were taken too
    # Time passes; the outbox retries with the same idempotency keys.
    with StateStore(world["state_url"]) as store, store.transaction() as conn:
        conn.execute(sa.update(schema.outbox).values(next_attempt_at=utcnow()))
    second = sync(settings)
    assert second.delivered == {"referral": 2}
    records = desk.records()
    assert len(records) == N + 2 and all(r["versions"] == 1 for r in records)
    keys = [w["idempotency_key"] for w in writes(desk)]
    assert len(keys) == N + 2 + 2 and len(set(keys)) == N + 2  # two replays, same keys


def test_fir_links_are_written_into_primero(world: dict[str, Any]) -> None:
    sim, desk, settings = world["sim"], world["desk"], world["settings"]
    sync(settings)
    case_id, referral_id = world["consented"][0]
    desk.register_fir(
        f"ref-{referral_id}",
        station="PS-Kalri",
        year=2026,
        sections=["PPC 328-A", "PPC 337-A"],
        investigating_officer={"rank": "SI", "name": "Synthetic Officer"},
        medico_legal_required=True,
    )
    juvenile_case, juvenile_referral = world["juvenile"]
    desk.register_fir(
        f"ref-{juvenile_referral}",
        station="PS-Kalri",
        year=2026,
        sections=["PPC 379"],
        investigating_officer={"rank": "ASI", "name": "Synthetic Officer Two"},
    )
    report = sync(settings)
    assert report.status_updates == 2 and report.write_backs == 2

    (row,) = linked_rows(sim, case_id)
    assert row["link_department"] == "police" and row["link_record_type"] == "fir"
    assert row["link_external_reference"] == "PS-Kalri/2026/1"
    assert row["link_status"] == "accepted"
    assert row["link_case_code"].startswith("cp1.police.")
    note = row["link_status_note"]
    assert "fir_sections: PPC 328-A, PPC 337-A" in note
    assert "investigating_officer: SI Synthetic Officer" in note
    assert "medico_legal: medico-legal examination required" in note
    assert "case_status: registered" in note
    assert referral_status(sim.url, case_id, referral_id) == "accepted"
    (juvenile_row,) = linked_rows(sim, juvenile_case)
    # The station's next annual serial (Police Rules 1934 r.24.5).
    assert juvenile_row["link_external_reference"] == "PS-Kalri/2026/2"
    assert "desk: juvenile" in juvenile_row["link_status_note"]

    # The investigation ends with a challan: the referral is done in Primero.
    desk.set_status(f"ref-{referral_id}", "challan_submitted", note="Challan submitted to court.")
    sync(settings)
    (row,) = linked_rows(sim, case_id)
    assert row["link_status"] == "completed"
    assert row["link_external_reference"] == "PS-Kalri/2026/1"
    assert referral_status(sim.url, case_id, referral_id) == "done"
    # Nothing more to do.
    again = sync(settings)
    assert not again.enqueued and not again.delivered and again.status_updates == 0


def test_an_expired_token_is_renewed_once(world: dict[str, Any]) -> None:
    desk, settings = world["desk"], world["settings"]
    sync(settings)
    assert desk.token_fetches() == 1  # one token served the whole run
    desk.expire_tokens()
    desk.register_fir(key(world["consented"][1]), station="PS-Preedy", sections=["PPC 328-A"])
    report = sync(settings)  # a new job: a new token
    assert report.status_updates == 1
    assert desk.token_fetches() == 2


def test_without_consent_or_override_nothing_leaves(world: dict[str, Any]) -> None:
    sim, desk, settings = world["sim"], world["desk"], world["settings"]
    (unconsented,) = refer_children(sim.url, 1, consent=False)
    report = sync(settings)
    assert sum(report.refused.values()) == 1
    assert key(unconsented) not in {r["referral_key"] for r in desk.records()}


def test_withdrawn_consent_asks_the_police_to_erase(world: dict[str, Any]) -> None:
    sim, desk, settings = world["sim"], world["desk"], world["settings"]
    case_id, referral_id = world["consented"][2]
    sync(settings)
    cpo_edit(sim.url, case_id, {"consent_for_services": False})
    report = sync(settings)
    assert report.delivered.get("withdraw") == 1
    record = desk.record(f"ref-{referral_id}")
    assert record["body"] is None and record["status"] == "erased"
