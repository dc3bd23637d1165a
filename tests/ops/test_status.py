"""`collect_status` and `cpims-adapter status` say what needs attention, from the store alone."""

from __future__ import annotations

import base64
import json
import secrets
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from typer.testing import CliRunner

from adapter.cli import app
from adapter.config import JobSettings, Settings
from adapter.jobs.watermark import Watermark
from adapter.ops.status import (
    AUDIT_VERIFY_JOB,
    KEY_AGE_WARN_DAYS,
    collect_status,
    record_next_run,
    recorded_run,
)
from adapter.privacy import KeyRing
from adapter.privacy._tables import keys as keys_table
from adapter.simulator.departments.scenario import police_settings
from adapter.state import StateStore, schema
from adapter.state.outbox import Outbox
from tests.ops.conftest import worked_in

NOW = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)


def settings_for(store: StateStore, **job: object) -> Settings:
    base = police_settings(
        primero_url="http://127.0.0.1:9",
        police_url="http://127.0.0.1:9",
        state_url=store.url,
        kek=secrets.token_bytes(32),
        auth="api_key",
    )
    police = base.jobs["police"].model_copy(update=job)
    return base.model_copy(update={"jobs": {"police": JobSettings.model_validate(police)}})


def add_run(
    store: StateStore,
    job: str,
    status: str,
    *,
    started: datetime,
    seconds: float = 30,
    error_class: str | None = None,
    stats: dict[str, object] | None = None,
) -> None:
    with store.transaction() as conn:
        conn.execute(
            schema.runs.insert().values(
                job=job,
                owner="host-a:4242:1:abcd",
                started_at=started,
                finished_at=None if status == "running" else started + timedelta(seconds=seconds),
                status=status,
                stats=stats or {},
                error_class=error_class,
            )
        )


def set_watermark(store: StateStore, job: str, second: datetime) -> None:
    store.set_cursor(job, "cases", Watermark(second, frozenset({"x@y"})).to_text())


def test_a_healthy_job_shows_its_last_run_lag_and_next_run(store: StateStore) -> None:
    settings = settings_for(store, every_seconds=300)
    worked_in(store)
    add_run(store, "police", "ok", started=NOW - timedelta(minutes=4))
    set_watermark(store, "police", NOW - timedelta(minutes=5))

    status = collect_status(settings, store, now=NOW)

    (job,) = status.jobs
    assert job.last_run is not None and job.last_run.outcome == "ok"
    assert job.last_run.duration_seconds == 30
    assert job.lag_seconds == 300
    assert job.lag_limit_seconds == 3 * 300 + settings.sync.lag_seconds
    # Anchored on the last run's start: the scheduler fires every_seconds after it.
    assert job.next_run_at == NOW - timedelta(minutes=4) + timedelta(seconds=300)
    assert not job.running and job.running_on is None
    assert (status.incidents.open, status.incidents.overdue) == (0, 0)
    assert status.healthy, status.problems


def test_a_failed_run_and_a_stale_watermark_need_attention(store: StateStore) -> None:
    settings = settings_for(store, every_seconds=300)
    add_run(store, "police", "ok", started=NOW - timedelta(hours=3))
    add_run(
        store,
        "police",
        "failed",
        started=NOW - timedelta(hours=2),
        error_class="PrimeroUnavailable",
    )
    set_watermark(store, "police", NOW - timedelta(hours=3))

    status = collect_status(settings, store, now=NOW)

    (job,) = status.jobs
    assert job.last_run is not None and job.last_run.outcome == "failed"
    assert job.last_run.error_class == "PrimeroUnavailable"
    assert job.lag_seconds == 3 * 3600
    assert not status.healthy
    assert any("last run failed (PrimeroUnavailable)" in p for p in status.problems)
    assert any("3 h behind Primero" in p for p in status.problems)


def test_a_quiet_primero_is_not_lag(store: StateStore) -> None:
    """No change for a day: the watermark is old, but the last run looked up to its signpost."""
    settings = settings_for(store, every_seconds=300)
    set_watermark(store, "police", NOW - timedelta(days=1))
    signpost = NOW - timedelta(minutes=3)
    add_run(
        store,
        "police",
        "ok",
        started=NOW - timedelta(minutes=3),
        stats={"dry_run": False, "pull": {"window_to": signpost.isoformat()}},
    )
    (job,) = collect_status(settings, store, now=NOW).jobs
    assert job.watermark == NOW - timedelta(days=1)
    assert job.lag_seconds == 180


def test_a_cron_job_next_run_and_a_recorded_next_run(store: StateStore) -> None:
    settings = settings_for(store, cron="*/15 * * * *")
    add_run(store, "police", "ok", started=NOW)  # the 12:00 run
    (job,) = collect_status(settings, store, now=NOW).jobs
    assert job.cron == "*/15 * * * *" and job.every_seconds is None
    assert job.next_run_at == NOW + timedelta(minutes=15)
    assert job.lag_limit_seconds == 3 * 900 + settings.sync.lag_seconds

    # The daemon knows better (jitter, misfires): what it records wins.
    record_next_run(store, "police", NOW + timedelta(minutes=7))
    (job,) = collect_status(settings, store, now=NOW).jobs
    assert job.next_run_at == NOW + timedelta(minutes=7)
    # One left over from a daemon that stopped before the last run is ignored.
    record_next_run(store, "police", NOW - timedelta(hours=1))
    (job,) = collect_status(settings, store, now=NOW).jobs
    assert job.next_run_at == NOW + timedelta(minutes=15)


def test_a_running_job_shows_where(store: StateStore) -> None:
    settings = settings_for(store)
    lease = store.acquire_lease("job:police", "host-b:77:123:ffff", 600)
    assert lease is not None
    (job,) = collect_status(settings, store).jobs
    assert job.running and job.running_on == "host-b:77"
    store.release_lease(lease)
    (job,) = collect_status(settings, store).jobs
    assert not job.running


def test_outbox_depth_dead_letters_and_housekeeping(store: StateStore) -> None:
    settings = settings_for(store)
    outbox = Outbox(store)
    with store.transaction() as conn:
        for n in range(4):
            outbox.enqueue(
                conn,
                idempotency_key=f"k{n}",
                job="police",
                destination="police",
                kind="referral",
                link_key=f"police:ref-{n}",
                payload=b"sealed",
            )
    due = outbox.due("police")
    outbox.mark_failed(
        due[0].id, error_class="Retryable", error="500", retry_after=1, max_attempts=5
    )
    outbox.mark_failed(
        due[1].id, error_class="Fatal", error="422", retry_after=None, max_attempts=5, fatal=True
    )
    with recorded_run(store, AUDIT_VERIFY_JOB) as run:
        run.stats["entries"] = 3
        run.fail("AuditChainBroken")
    add_run(store, "retention", "ok", started=NOW - timedelta(hours=1))

    status = collect_status(settings, store, now=NOW)

    (depth,) = status.outbox
    assert (depth.destination, depth.pending, depth.retrying, depth.dead) == ("police", 2, 1, 1)
    assert status.dead_letters == 1
    assert any("1 dead letters to police" in p for p in status.problems)
    audit = status.last_audit_verification
    assert audit is not None and audit.outcome == "failed"
    assert audit.error_class == "AuditChainBroken"
    assert any(p.startswith("audit-verify: last run failed") for p in status.problems)
    by_name = {h.name: h for h in status.housekeeping}
    assert by_name["retention"].last_run is not None
    assert by_name["retention"].last_run.outcome == "ok"
    assert by_name["incidents"].last_run is None


def test_key_ages_warn_after_a_year(store: StateStore) -> None:
    settings = settings_for(store)
    KeyRing.init(store, secrets.token_bytes(32), ["police"])
    with store.transaction() as conn:
        conn.execute(
            keys_table.update()
            .where(keys_table.c.role == "token")
            .values(created_at=NOW - timedelta(days=KEY_AGE_WARN_DAYS + 10))
        )
        conn.execute(keys_table.update().where(keys_table.c.role != "token").values(created_at=NOW))
    worked_in(store, "police")
    status = collect_status(settings, store, now=NOW)
    ages = {key.role: key for key in status.keys}
    assert ages["token"].warn and ages["token"].age_days == KEY_AGE_WARN_DAYS + 10
    assert not ages["audit"].warn
    assert any("token key v1" in w for w in status.warnings)
    assert status.healthy  # an old key is a warning, not an outage


def test_incidents_come_from_the_incidents_hook(store: StateStore) -> None:
    settings = settings_for(store)
    status = collect_status(
        settings, store, now=NOW, incident_summary=lambda _store: {"open": 2, "overdue": 1}
    )
    assert status.incidents is not None and status.incidents.overdue == 1
    assert any("past their notification deadline" in p for p in status.problems)


def test_the_json_document_has_stable_keys_and_no_error_text(store: StateStore) -> None:
    settings = settings_for(store)
    with store.transaction() as conn:
        conn.execute(
            schema.runs.insert().values(
                job="police",
                owner="h:1:1:a",
                started_at=NOW,
                finished_at=NOW,
                status="failed",
                stats={},
                error_class="Retryable",
                error_message="department said: Synthetic Child 0 unknown",
            )
        )
    document = collect_status(settings, store, now=NOW).to_json()
    assert set(document) == {
        "healthy",
        "generated_at",
        "config_file",
        "problems",
        "warnings",
        "jobs",
        "housekeeping",
        "outbox",
        "held_for_decision",
        "dead_letters",
        "registry",
        "keys",
        "audit",
        "incidents",
        "service",
        "retrying",
        "grants_needed",
        "unreachable",
        "stalled_jobs",
    }
    (job,) = document["jobs"]
    assert set(job) >= {
        "name",
        "department",
        "last_run",
        "last_success_at",
        "watermark",
        "lag_seconds",
        "lag_limit_seconds",
        "next_run_at",
        "running",
        "running_on",
    }
    assert job["last_run"]["outcome"] == "failed"
    assert "Synthetic" not in json.dumps(document)


# -- the command --------------------------------------------------------------------------


def write_config(path: Path, state_url: str) -> Path:
    path.write_text(
        f"""
[state]
url = "{state_url}"

[departments.police]
connector = "rest"
base_url = "http://127.0.0.1:9"

[jobs.police]
department = "police"
agencies = ["agency-sindh-police"]
every_seconds = 300
""",
        encoding="utf-8",
    )
    return path


@pytest.fixture
def configured(tmp_path: Path, store: StateStore, monkeypatch: pytest.MonkeyPatch) -> StateStore:
    monkeypatch.setenv("CPIMS_ADAPTER_CONFIG", str(write_config(tmp_path / "a.toml", store.url)))
    return store


def test_status_command_exit_codes_and_json(configured: StateStore) -> None:
    now = datetime.now(UTC)
    worked_in(configured)
    add_run(configured, "police", "ok", started=now - timedelta(minutes=1))
    with recorded_run(configured, AUDIT_VERIFY_JOB):
        pass
    result = CliRunner().invoke(app, ["status", "--format", "json"], terminal_width=200)
    assert result.exit_code == 0, result.output
    document = json.loads(result.output)
    assert document["healthy"] is True and document["jobs"][0]["name"] == "police"

    result = CliRunner().invoke(app, ["status"], terminal_width=200)
    assert result.exit_code == 0, result.output
    assert "police" in result.output and "healthy" in result.output

    add_run(configured, "police", "failed", started=now, error_class="PrimeroUnavailable")
    result = CliRunner().invoke(app, ["status"], terminal_width=200)
    assert result.exit_code == 1
    assert "needs attention" in result.output and "PrimeroUnavailable" in result.output
    result = CliRunner().invoke(app, ["status", "--format", "json"], terminal_width=200)
    assert result.exit_code == 1 and json.loads(result.output)["healthy"] is False


def test_a_job_no_longer_configured_does_not_count(store: StateStore) -> None:
    settings = settings_for(store)
    worked_in(store, "police")
    add_run(store, "some-old-job", "failed", started=NOW)
    status = collect_status(settings, store, now=NOW)
    assert [job.name for job in status.jobs] == ["police"]
    assert status.healthy, status.problems


def test_audit_verify_records_a_run_status_shows(
    tmp_path: Path, store: StateStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    kek = secrets.token_bytes(32)
    KeyRing.init(store, kek, ["police"])
    config = write_config(tmp_path / "a.toml", store.url)
    config.write_text(
        config.read_text(encoding="utf-8")
        + f'\n[privacy]\nkek = "{base64.b64encode(kek).decode()}"\n',
        encoding="utf-8",
    )
    monkeypatch.setenv("CPIMS_ADAPTER_CONFIG", str(config))
    result = CliRunner().invoke(app, ["audit", "verify"], terminal_width=200)
    assert result.exit_code == 0, result.output

    audit = collect_status(settings_for(store), store).last_audit_verification
    assert audit is not None and audit.outcome == "ok" and audit.error_class is None
