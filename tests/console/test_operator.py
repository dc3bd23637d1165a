"""The operator's page: the status view, retry/drop one dead letter, run a job now, runs."""

from __future__ import annotations

from fastapi import FastAPI

from adapter.config import DepartmentSettings, JobSettings, Settings
from adapter.config.console import ConsoleSettings
from adapter.console.app import Console, build_console
from adapter.privacy.audit import AuditLog
from adapter.state.outbox import DEAD, DROPPED, PENDING, Outbox
from adapter.state.service import Instances
from tests.console.conftest import World, csrf_of, sign_in


def with_job(world: World) -> World:
    """The world's console over settings with one sync job, and a dead letter in its outbox."""
    settings = Settings(
        console=ConsoleSettings(enabled=True, cookie_secure=False),
        departments={
            "health": DepartmentSettings(
                base_url="http://127.0.0.1:9", organization="Organization/h1"
            )
        },
        jobs={"health_sync": JobSettings(department="health", agencies=["agency-health"])},
    )
    old = world.console
    console = Console.build(settings, old.store, old.keyring, old.registry)
    app = FastAPI()
    app.mount("/console", build_console(console))
    store = old.store
    outbox = Outbox(store)
    with store.transaction() as conn:
        for key in ("k1", "k2"):
            outbox.enqueue(
                conn,
                idempotency_key=key,
                job="health_sync",
                destination="health",
                kind="referral",
                link_key=f"case-{key}",
                payload=b'{"child": "never shown"}',
            )
    for message in outbox.waiting():
        outbox.mark_failed(
            message.id,
            error_class="DestinationError",
            error="HTTP 500 from the department",
            retry_after=None,
            max_attempts=1,
        )
    return World(console, world.registry, app, world.totp)


def test_the_status_view_shows_jobs_queues_and_dead_letters_without_payloads(world: World) -> None:
    world = with_job(world)
    client = sign_in(world, world.client(), "operator1")
    page = client.get("/console/operator").text
    assert "health_sync" in page and "DestinationError: HTTP 500" in page
    assert 'href="/metrics"' in page
    assert "never shown" not in page and "case-k1" not in page


def test_retry_and_drop_one_dead_letter(world: World) -> None:
    world = with_job(world)
    client = sign_in(world, world.client(), "operator1")
    first, second = [m.id for m in Outbox(world.console.store).waiting(status=DEAD)]
    csrf = csrf_of(client.get("/console/operator").text)
    retried = client.post(f"/console/operator/outbox/{first}/retry", data={"csrf_token": csrf})
    assert retried.headers["location"] == "/console/operator?done=retry"
    dropped = client.post(f"/console/operator/outbox/{second}/drop", data={"csrf_token": csrf})
    assert dropped.headers["location"] == "/console/operator?done=drop"
    outbox = Outbox(world.console.store)
    assert outbox.get(first).status == PENDING  # type: ignore[union-attr]
    assert outbox.get(second).status == DROPPED  # type: ignore[union-attr]
    again = client.post(f"/console/operator/outbox/{second}/retry", data={"csrf_token": csrf})
    assert again.headers["location"] == "/console/operator?done=none"  # dropped stays dropped
    events = [r.entry for r in AuditLog(world.console.store, world.console.keyring).entries()]
    assert {"console_outbox_retry", "console_outbox_drop"} <= {e["event"] for e in events}


def test_run_now_wakes_the_job_and_unknown_jobs_are_refused(world: World) -> None:
    world = with_job(world)
    client = sign_in(world, world.client(), "operator1")
    csrf = csrf_of(client.get("/console/operator").text)
    woken = client.post("/console/operator/jobs/health_sync/run", data={"csrf_token": csrf})
    assert woken.headers["location"] == "/console/operator?done=woken"
    assert "health_sync" in Instances(world.console.store).wakeups()
    assert (
        client.post("/console/operator/jobs/nope/run", data={"csrf_token": csrf}).status_code == 404
    )


def test_run_history_per_job(world: World) -> None:
    world = with_job(world)
    store = world.console.store
    run = store.start_run("health_sync", "host:1")
    store.finish_run(run, "failed", {}, "DestinationError")
    client = sign_in(world, world.client(), "operator1")
    page = client.get("/console/operator/runs", params={"job": "health_sync"}).text
    assert "DestinationError" in page and "failed" in page
