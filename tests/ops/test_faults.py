"""Injected failures show in `status` and in the metrics: a department answering 500, Primero
down, a stale watermark."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families
from typer.testing import CliRunner

from adapter.app.jobs import open_job
from adapter.cli import app
from adapter.config import PrimeroSettings
from adapter.errors import AdapterError
from adapter.instruments import instruments
from adapter.jobs.watermark import Watermark
from adapter.ops.metrics import build_registry
from adapter.ops.status import collect_status
from adapter.state import StateStore
from tests.ops.conftest import CHILDREN, PoliceWorld, adapter_logging_kept, write_config


def samples(text: str, name: str) -> dict[tuple[tuple[str, str], ...], float]:
    """``{sorted labels: value}`` of every sample called ``name`` in a metrics page."""
    found = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name:
                found[tuple(sorted(sample.labels.items()))] = sample.value
    return found


def scrape(world: PoliceWorld, store: StateStore) -> str:
    from prometheus_client import generate_latest

    return generate_latest(build_registry(world.settings, store)).decode()


def police_errors() -> int:
    return sum(n for (dest, _kind), n in instruments.delivery_errors().items() if dest == "police")


def status_command(
    tmp_path: Path, world: PoliceWorld, monkeypatch: pytest.MonkeyPatch
) -> tuple[int, dict[str, Any]]:
    config = write_config(tmp_path / "adapter.toml", world.settings)
    monkeypatch.setenv("CPIMS_ADAPTER_CONFIG", str(config))
    with adapter_logging_kept():
        result = CliRunner().invoke(app, ["status", "--format", "json"], terminal_width=200)
    return result.exit_code, json.loads(result.output)


def test_a_department_answering_500_shows_as_dead_letters_and_errors(
    police_world: PoliceWorld, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    world = police_world
    errors_before = police_errors()
    world.desk.fail_next(500, count=CHILDREN, path_prefix="/api/v1/referrals")

    with open_job(world.settings, "police") as job:
        report = job.run()
    assert report.dead_lettered == CHILDREN
    assert world.desk.records() == []

    # status: the run itself finished ok, but its messages are dead letters → exit 1.
    exit_code, document = status_command(tmp_path, world, monkeypatch)
    assert exit_code == 1
    assert document["healthy"] is False
    assert document["dead_letters"] == CHILDREN
    assert document["outbox"] == [
        {"destination": "police", "pending": 0, "retrying": 0, "dead": CHILDREN}
    ]
    assert any("dead letters to police" in p for p in document["problems"])
    (job_status,) = document["jobs"]
    assert job_status["last_run"]["outcome"] == "ok"

    # metrics: the HTTP errors by destination and class, the dead-letter gauge, the records.
    with StateStore(world.state_url) as store:
        text = scrape(world, store)
    errors = samples(text, "cpims_adapter_delivery_errors_total")
    police = {labels: n for labels, n in errors.items() if ("destination", "police") in labels}
    assert sum(police.values()) - errors_before >= CHILDREN
    assert police_errors() - errors_before == CHILDREN
    assert samples(text, "cpims_adapter_dead_letters") == {
        (("destination", "police"),): CHILDREN,
        (("destination", "primero"),): 0,
    }
    outbox = samples(text, "cpims_adapter_outbox_messages")
    assert outbox[(("destination", "police"), ("outcome", "dead"))] == CHILDREN
    records = samples(text, "cpims_adapter_records_total")
    assert records[(("job", "police"), ("outcome", "dead_lettered"))] == CHILDREN
    assert records[(("job", "police"), ("outcome", "enqueued"))] == CHILDREN
    runs = samples(text, "cpims_adapter_runs_total")
    assert runs[(("job", "police"), ("outcome", "ok"))] == 1
    # Labels carry names and classes only: no case id, no child's name.
    for case_id, _referral in world.referred:
        assert case_id not in text
    assert "Synthetic" not in text

    # The department recovers; the operator retries; the next run delivers and all is well.
    from adapter.state.outbox import Outbox

    with StateStore(world.state_url) as store:
        Outbox(store).retry([letter.id for letter in Outbox(store).dead_letters()])
    with open_job(world.settings, "police") as job:
        job.run()
    assert len(world.desk.records()) == CHILDREN
    exit_code, document = status_command(tmp_path, world, monkeypatch)
    assert exit_code == 0, document["problems"]
    with StateStore(world.state_url) as store:
        text = scrape(world, store)
    assert samples(text, "cpims_adapter_dead_letters")[(("destination", "police"),)] == 0
    delivered = samples(text, "cpims_adapter_records_total")
    assert delivered[(("job", "police"), ("outcome", "delivered"))] == CHILDREN


def test_primero_down_shows_as_a_failed_run(
    police_world: PoliceWorld, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    world = police_world
    down = world.settings.primero.model_dump()
    down.update(url="http://127.0.0.1:9", max_retries=0)
    settings = world.settings.model_copy(update={"primero": PrimeroSettings(**down)})
    with pytest.raises(AdapterError), open_job(settings, "police") as job:
        job.run()

    with StateStore(world.state_url) as store:
        status = collect_status(world.settings, store)
        text = scrape(world, store)
    (job_status,) = status.jobs
    assert job_status.last_run is not None and job_status.last_run.outcome == "failed"
    assert job_status.last_run.error_class is not None
    assert not status.healthy
    assert samples(text, "cpims_adapter_runs_total") == {
        (("job", "police"), ("outcome", "failed")): 1
    }
    assert samples(text, "cpims_adapter_last_success_timestamp_seconds") == {}
    exit_code, document = status_command(tmp_path, world, monkeypatch)
    assert exit_code == 1
    assert document["jobs"][0]["last_run"]["error_class"] == job_status.last_run.error_class


def test_a_stale_watermark_shows_as_lag(
    police_world: PoliceWorld, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    world = police_world
    with open_job(world.settings, "police") as job:
        job.run()
    with StateStore(world.state_url) as store:
        fresh = collect_status(world.settings, store)
        assert fresh.healthy, fresh.problems
        # The job has not managed to run for a day: its watermark and last look are old.
        stale = datetime.now(UTC) - timedelta(days=1)
        store.set_cursor("police", "cases", Watermark(stale).to_text())
        later = datetime.now(UTC) + timedelta(days=1)
        status = collect_status(world.settings, store, now=later)
        (job_status,) = status.jobs
        assert job_status.lag_seconds is not None and job_status.lag_seconds > 86400
        assert any("behind Primero" in p for p in status.problems)
        text = scrape(world, store)
    lag = samples(text, "cpims_adapter_lag_seconds")[(("job", "police"),)]
    assert lag < 3600  # the scrape's now: the last successful run looked recently
