"""`status` says what the queues need: messages retrying too long, a permission missing in
Primero, a destination unreachable, a job delivering nothing while its outbox grows — in one
line each, with names, counts and ages, never an error's text."""

from __future__ import annotations

import json
from datetime import datetime, timedelta

import sqlalchemy as sa
from typer.testing import CliRunner

from adapter.cli import app
from adapter.config import Settings
from adapter.config.ops import OpsSettings
from adapter.jobs.writeback import PART_FIELDS, PART_ROW, PART_STATUS, part_kind
from adapter.ops.status import collect_status
from adapter.primero.linked_records import FORM_ID
from adapter.state import StateStore, schema
from tests.ops.test_status import NOW, add_run, configured, settings_for

__all__ = ["configured"]  # the fixture, shared with test_status

SECRET_TEXT = "PATCH /api/v2/cases/3f0e-synthetic-case: Synthetic Child 7"


def queue(
    store: StateStore,
    key: str,
    *,
    destination: str = "police",
    job: str = "police",
    kind: str = "referral",
    created: datetime = NOW,
    attempts: int = 0,
    error_class: str | None = None,
    status: str = "pending",
    updated: datetime | None = None,
    sent: datetime | None = None,
) -> None:
    with store.transaction() as conn:
        conn.execute(
            schema.outbox.insert().values(
                idempotency_key=key,
                job=job,
                destination=destination,
                kind=kind,
                link_key=f"{destination}:{key}",
                payload=b"x",
                status=status,
                attempts=attempts,
                next_attempt_at=NOW,
                created_at=created,
                updated_at=updated or created,
                sent_at=sent,
                last_error_class=error_class,
                last_error=SECRET_TEXT if error_class else None,
            )
        )


def with_ops(settings: Settings, **values: int) -> Settings:
    return settings.model_copy(update={"ops": OpsSettings(**values)})


def healthy_police(store: StateStore) -> Settings:
    add_run(store, "police", "ok", started=NOW - timedelta(minutes=1))
    return settings_for(store, every_seconds=300)


def test_a_message_retrying_longer_than_the_threshold_needs_attention(store: StateStore) -> None:
    settings = with_ops(healthy_police(store), retrying_attention_minutes=30)
    queue(store, "a", created=NOW - timedelta(minutes=20), attempts=3, error_class="Retryable")
    status = collect_status(settings, store, now=NOW)
    (age,) = status.attention.retrying if status.attention else []
    assert age.destination == "police" and age.retrying == 1 and age.over_limit == 0
    assert age.oldest_seconds == 20 * 60
    assert not [p for p in status.problems if "retrying" in p]

    later = NOW + timedelta(minutes=15)
    status = collect_status(settings, store, now=later)
    (line,) = [p for p in status.problems if "retrying" in p]
    assert line == (
        "1 messages to police retrying for more than 30 min, the oldest for 35 min "
        "(Retryable; cpims-adapter outbox list --destination police --status retrying)"
    )
    assert "Synthetic" not in json.dumps(status.to_json())


def test_a_missing_permission_names_the_form_the_fields_and_the_fix(store: StateStore) -> None:
    settings = settings_for(store, primero_fields={"fir.sections": "fir_sections"})
    for n in range(3):
        queue(
            store,
            f"row-{n}",
            destination="primero",
            kind=part_kind(PART_ROW),
            attempts=2,
            error_class="PrimeroNotPermitted",
        )
    queue(
        store,
        "fields",
        destination="primero",
        kind=part_kind(PART_FIELDS),
        attempts=1,
        error_class="PrimeroNotPermitted",
    )
    # A status that Primero refused to move is not a permission problem.
    queue(
        store,
        "status",
        destination="primero",
        kind=part_kind(PART_STATUS),
        attempts=1,
        error_class="PrimeroNoOp",
    )
    status = collect_status(settings, store, now=NOW)
    assert status.attention is not None
    fields, row = sorted(status.attention.grants, key=lambda g: g.target)
    assert row.target == f"the form '{FORM_ID}'" and row.messages == 3 and row.jobs == ("police",)
    assert fields.target == "the case fields fir_sections" and fields.messages == 1
    lines = [p for p in status.problems if "waits for a permission" in p]
    assert len(lines) == 2 and not status.healthy
    assert any(FORM_ID in line and "Read and write" in line for line in lines)
    assert "Synthetic" not in json.dumps(status.to_json())


def test_a_department_that_cannot_be_reached_needs_attention(store: StateStore) -> None:
    settings = healthy_police(store)
    since = NOW - timedelta(minutes=5)
    queue(store, "old", status="sent", sent=NOW - timedelta(hours=1))
    queue(store, "a", attempts=2, error_class="Unreachable", created=since, updated=since)
    queue(store, "b", attempts=1, error_class="Unreachable", updated=NOW)
    status = collect_status(settings, store, now=NOW)
    assert status.attention is not None
    (place,) = status.attention.unreachable
    assert place.destination == "police" and place.messages == 2 and place.since == since
    (line,) = [p for p in status.problems if "unreachable" in p]
    assert line.startswith("police unreachable: 2 messages cannot connect")

    # Once a delivery gets through, it is reachable again (the rest retry as usual).
    queue(store, "c", status="sent", sent=NOW + timedelta(minutes=1))
    later = collect_status(settings, store, now=NOW + timedelta(minutes=2))
    assert later.attention is not None and later.attention.unreachable == []


def test_a_job_delivering_nothing_while_its_outbox_grows_needs_attention(
    store: StateStore,
) -> None:
    settings = with_ops(settings_for(store, every_seconds=300), stalled_after_runs=3)
    for n in range(3):
        add_run(
            store,
            "police",
            "ok",
            started=NOW - timedelta(minutes=15 - 5 * n),
            stats={"delivered": {}, "write_backs": 0, "enqueued": {"referral": 1}},
        )
        queue(store, f"r-{n}", created=NOW - timedelta(minutes=15 - 5 * n))
    status = collect_status(settings, store, now=NOW)
    (line,) = [p for p in status.problems if "delivered nothing" in p]
    assert line.startswith("job police: its last 3 runs delivered nothing while 3 messages")

    # A run that delivers ends it.
    add_run(store, "police", "ok", started=NOW, stats={"delivered": {"referral": 3}})
    status = collect_status(settings, store, now=NOW + timedelta(minutes=1))
    assert not [p for p in status.problems if "delivered nothing" in p]


def test_a_quiet_job_with_an_empty_outbox_is_not_stalled(store: StateStore) -> None:
    settings = settings_for(store, every_seconds=300)
    for n in range(4):
        add_run(store, "police", "ok", started=NOW - timedelta(minutes=20 - 5 * n))
    status = collect_status(settings, store, now=NOW)
    assert status.attention is not None and status.attention.stalled == []
    with store.transaction() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(schema.outbox)).scalar() == 0


def test_outbox_list_and_show_the_messages_behind_the_problems(
    configured: StateStore,
) -> None:
    store = configured
    queue(store, "never", created=NOW)
    queue(store, "again", created=NOW - timedelta(hours=2), attempts=4, error_class="Retryable")
    queue(
        store,
        "row",
        destination="primero",
        kind=part_kind(PART_ROW),
        attempts=1,
        error_class="PrimeroNotPermitted",
    )
    queue(store, "gone", attempts=8, error_class="Fatal", status="dead")
    queue(store, "done", status="sent", sent=NOW)
    runner = CliRunner()

    result = runner.invoke(app, ["outbox", "list", "--format", "json"], terminal_width=200)
    assert result.exit_code == 0, result.output
    listed = [json.loads(line) for line in result.output.splitlines()]
    assert [m["status"] for m in listed] == ["pending", "retrying", "retrying", "dead"]
    assert listed[1]["age_seconds"] >= 2 * 3600 and listed[1]["error_class"] == "Retryable"

    result = runner.invoke(
        app,
        ["outbox", "list", "--destination", "primero", "--status", "retrying"],
        terminal_width=200,
    )
    assert result.exit_code == 0, result.output
    assert "1 messages" in result.output  # the table: one row
    result = runner.invoke(app, ["outbox", "list", "--destination", "primero", "--format", "json"])
    (row,) = [json.loads(line) for line in result.output.splitlines()]
    assert row["kind"] == "writeback.row" and row["status"] == "retrying"

    row_id = listed[2]["id"]
    result = runner.invoke(app, ["outbox", "show", str(row_id)], terminal_width=200)
    assert result.exit_code == 0, result.output
    shown = json.loads(result.output)
    assert FORM_ID in shown["needs"] and "Read and write" in shown["needs"]

    sent_id = listed[-1]["id"] + 1
    result = runner.invoke(app, ["outbox", "show", str(sent_id)], terminal_width=200)
    assert result.exit_code == 2 and "waits in the outbox" in result.output
