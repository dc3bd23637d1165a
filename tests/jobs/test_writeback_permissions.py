"""A Primero whose integration role may not write the "Linked department records" form yet (a
normal first-day misconfiguration): referral statuses still reach Primero, the rows wait for
the grant without becoming dead letters, `status` names the form and the fix, and granting the
permission heals it without a duplicate row."""

from __future__ import annotations

import json
import logging
import secrets
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
import sqlalchemy as sa
from typer.testing import CliRunner

from adapter.app.jobs import open_job
from adapter.cli import app
from adapter.clock import utcnow
from adapter.config import Settings
from adapter.jobs.writeback import PART_ROW, PART_STATUS, part_kind
from adapter.primero import PrimeroClient
from adapter.primero.linked_records import FORM_ID, SUBFORM_FIELD
from adapter.privacy import KeyRing
from adapter.simulator.fhir_server import start_fhir_server
from adapter.simulator.hospital import Hospital
from adapter.simulator.primero import PrimeroSimulator
from adapter.simulator.scenario import (
    SIM_PASSWORD,
    health_settings,
    install_linked_records_form,
    refer_children_to_health,
    referral_status,
)
from adapter.state import StateStore, schema
from adapter.state.outbox import DEAD, PENDING, SENT

N = 4
GRANT_WARNING = "wait for a Primero permission"


def grant_linked_records(primero_url: str, access: str) -> None:
    """What an administrator does in Settings › Roles › Forms for the integration role."""
    answer = requests.put(
        f"{primero_url}/_sim/roles/role-integration/forms",
        json={"forms": {FORM_ID: access}},
        timeout=10,
    )
    answer.raise_for_status()


@pytest.fixture
def world(tmp_path: Path, state_url: str) -> Iterator[dict[str, Any]]:
    fhir = start_fhir_server(tmp_path)
    try:
        with PrimeroSimulator(cases=0) as sim, Hospital(fhir.base_url) as hospital:
            install_linked_records_form(sim.url)
            grant_linked_records(sim.url, "r")  # the forgotten step: read, not read and write
            kek = secrets.token_bytes(32)
            settings = health_settings(
                primero_url=sim.url, fhir_url=fhir.base_url, state_url=state_url, kek=kek
            )
            with StateStore(state_url) as store:
                KeyRing.init(store, kek, ["health", "police", "birth_registration", "courts"])
            config = tmp_path / "adapter.toml"
            config.write_text(
                f"""
[state]
url = "{state_url}"

[departments.health]
base_url = "{fhir.base_url}"
organization = "civil-hospital-karachi"

[jobs.health]
department = "health"
agencies = ["agency-health"]
""",
                encoding="utf-8",
            )
            yield {
                "sim": sim,
                "hospital": hospital,
                "settings": settings,
                "referred": refer_children_to_health(sim.url, N),
                "state_url": state_url,
                "config": config,
            }
    finally:
        fhir.cleanup()


def sync(settings: Settings) -> Any:
    with open_job(settings, "health") as job:
        return job.run()


def linked_rows(sim: PrimeroSimulator, case_id: str) -> list[dict[str, Any]]:
    with PrimeroClient(
        sim.url, auth="basic", username="cpims-adapter", password=SIM_PASSWORD
    ) as client:
        return list(client.get_case(case_id).get(SUBFORM_FIELD) or [])


def primero_messages(state_url: str) -> list[Any]:
    table = schema.outbox
    with StateStore(state_url) as store, store.transaction() as conn:
        return list(
            conn.execute(
                sa.select(table).where(table.c.destination == "primero").order_by(table.c.id)
            )
        )


def time_passes(state_url: str) -> None:
    """The retry delay of the waiting messages is over."""
    with StateStore(state_url) as store, store.transaction() as conn:
        conn.execute(sa.update(schema.outbox).values(next_attempt_at=utcnow()))


def grant_warnings(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [
        r.getMessage()
        for r in caplog.records
        if r.levelno == logging.WARNING and GRANT_WARNING in r.getMessage()
    ]


def status(config: Path, monkeypatch: pytest.MonkeyPatch, *args: str) -> Any:
    monkeypatch.setenv("CPIMS_ADAPTER_CONFIG", str(config))
    return CliRunner().invoke(app, ["status", *args], terminal_width=240)


def test_statuses_reach_primero_while_the_rows_wait_for_the_grant(
    world: dict[str, Any], caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    sim, hospital, settings = world["sim"], world["hospital"], world["settings"]
    referred: list[tuple[str, str]] = world["referred"]
    caplog.set_level(logging.WARNING, logger="adapter")
    first = sync(settings)  # capacity probes; their rows ("requested") cannot be written

    # The rows wait for the grant: retrying, never dead letters; said once, with the fix.
    assert first.delivered == {"probe": N}
    assert first.waiting_for_grant == {part_kind(PART_ROW): N}
    rows = [m for m in primero_messages(world["state_url"]) if m.kind == part_kind(PART_ROW)]
    assert len(rows) == N and {m.status for m in rows} == {PENDING}
    assert {m.last_error_class for m in rows} == {"PrimeroNotPermitted"}
    (warning,) = grant_warnings(caplog)
    assert f"{N} write-back message(s)" in warning and FORM_ID in warning
    assert "Read and write" in warning

    keys = sorted(Hospital.referral_key(t) for t in hospital.referral_tasks())
    accepted, rejected = keys[:3], keys[3:]
    for key in accepted:
        hospital.accept(key)
    for key in rejected:
        hospital.reject(key, "no-capacity")
    report = sync(settings)

    # Every referral's status is in Primero, although no row could be written.
    statuses = {f"ref-{r}": referral_status(sim.url, c, r) for c, r in referred}
    assert sorted(statuses[k] for k in accepted) == ["accepted"] * 3
    assert [statuses[k] for k in rejected] == ["rejected"]
    assert report.written_back[PART_STATUS] >= N and PART_ROW not in report.written_back
    assert all(linked_rows(sim, case_id) == [] for case_id, _ in referred)
    messages = primero_messages(world["state_url"])
    assert {m.status for m in messages if m.kind == part_kind(PART_STATUS)} == {SENT}

    # Runs go on: the rows are tried again each run, and never become dead letters.
    for _ in range(settings.departments["health"].max_attempts + 1):
        time_passes(world["state_url"])
        sync(settings)
    assert {m.status for m in primero_messages(world["state_url"])} <= {PENDING, SENT}
    assert DEAD not in {m.status for m in primero_messages(world["state_url"])}

    # `status` needs attention, names the form and the fix, and no case.
    result = status(world["config"], monkeypatch)
    assert result.exit_code == 1, result.output
    assert FORM_ID in result.output and "Read and write" in result.output
    document = json.loads(status(world["config"], monkeypatch, "--format", "json").output)
    assert document["healthy"] is False
    (grant,) = document["grants_needed"]
    assert grant["target"] == f"the form '{FORM_ID}'" and grant["messages"] == N
    text = json.dumps(document)
    assert not any(case_id in text for case_id, _ in referred)

    # The administrator grants Read and write: the next run heals it, once.
    grant_linked_records(sim.url, "rw")
    time_passes(world["state_url"])
    healed = sync(settings)
    assert set(healed.written_back) == {PART_ROW} and not healed.waiting_for_grant
    for case_id, referral_id in referred:
        (row,) = linked_rows(sim, case_id)  # every row update of the lane, in order, in one
        assert row["link_status"] == statuses[f"ref-{referral_id}"]
    assert {m.status for m in primero_messages(world["state_url"])} == {SENT}
    assert FORM_ID not in status(world["config"], monkeypatch).output

    # Re-running changes nothing: still one row per referral, nothing queued.
    again = sync(settings)
    assert not again.written_back and not again.enqueued
    assert all(len(linked_rows(sim, case_id)) == 1 for case_id, _ in referred)
