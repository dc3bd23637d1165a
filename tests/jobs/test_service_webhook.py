"""The in-process service: scheduled first run, and Primero webhooks as an early trigger."""

from __future__ import annotations

import hashlib
import secrets
import time
from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import requests

from adapter.api.inbound import start_inbound_api
from adapter.app.service import running
from adapter.config.api import ApiSettings
from adapter.config.ops import OpsSettings, SchedulerSettings
from adapter.privacy import KeyRing
from adapter.simulator.fhir_server import start_fhir_server
from adapter.simulator.hospital import Hospital
from adapter.simulator.primero import PrimeroSimulator
from adapter.simulator.scenario import (
    SIM_PASSWORD,
    health_settings,
    install_linked_records_form,
    refer_children_to_health,
)
from adapter.state import StateStore

WEBHOOK_SECRET = "primero-webhook-secret-for-tests"


def _wait(condition: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


@pytest.fixture
def world(tmp_path: Path) -> Iterator[dict[str, Any]]:
    fhir = start_fhir_server(tmp_path)
    try:
        with PrimeroSimulator(cases=0) as sim, Hospital(fhir.base_url) as hospital:
            install_linked_records_form(sim.url)
            kek = secrets.token_bytes(32)
            state_url = f"sqlite:///{tmp_path}/state.sqlite3"
            base = health_settings(
                primero_url=sim.url, fhir_url=fhir.base_url, state_url=state_url, kek=kek
            )
            job = base.jobs["health"].model_copy(update={"every_seconds": 3600})
            settings = base.model_copy(
                update={
                    "jobs": {"health": job},
                    "scheduler": SchedulerSettings(jitter_seconds=0, serve_api=True),
                    "ops": OpsSettings(port=0),
                    "api": ApiSettings(
                        port=0,
                        primero_webhook_key_sha256=hashlib.sha256(
                            WEBHOOK_SECRET.encode()
                        ).hexdigest(),
                    ),
                }
            )
            with StateStore(state_url) as store:
                KeyRing.init(store, kek, ["health"])
            yield {"sim": sim, "hospital": hospital, "settings": settings}
    finally:
        fhir.cleanup()


def _register_webhook(sim_url: str, url: str) -> None:
    """What a Primero administrator does: a case.update webhook with an API key, and
    webhooks switched on for the CP module."""
    admin = requests.Session()
    admin.auth = ("primero_admin", SIM_PASSWORD)
    for event in ("case.create", "case.update"):
        made = admin.post(
            f"{sim_url}/api/v2/webhooks",
            json={"data": {"events": event, "url": url, "role_unique_id": "role-integration"}},
            timeout=10,
        )
        made.raise_for_status()
        webhook_id = made.json()["data"]["id"]
        requests.patch(
            f"{sim_url}/_sim/webhooks/{webhook_id}/auth",
            json={"auth_type": "api_key", "auth_secret": WEBHOOK_SECRET},
            timeout=10,
        ).raise_for_status()
    requests.patch(
        f"{sim_url}/_sim/modules/primeromodule-cp",
        json={"module_options": {"use_webhooks_for": ["case"]}},
        timeout=10,
    ).raise_for_status()


def test_a_primero_webhook_runs_the_job_now_instead_of_in_an_hour(
    world: dict[str, Any],
) -> None:
    sim, hospital, settings = world["sim"], world["hospital"], world["settings"]
    with running(settings, inbound_api=start_inbound_api) as service:
        assert service.api_url is not None
        # The start-up run finds nothing to do; the next scheduled one is an hour away.
        _wait(
            lambda: any(o.job == "health" and o.status == "ok" for o in service.outcomes),
            60,
            "the start-up run",
        )
        _register_webhook(sim.url, f"{service.api_url}/v1/primero/webhook")
        referred = refer_children_to_health(sim.url, 2)
        # Primero's webhook wakes the job: the referrals reach the hospital in seconds.
        _wait(lambda: len(hospital.referral_tasks()) == len(referred), 60, "the webhook's run")
        deliveries = requests.get(f"{sim.url}/_sim/webhook_deliveries", timeout=10).json()
        assert deliveries["data"] and all(d["status_code"] == 202 for d in deliveries["data"])


def test_the_webhook_route_refuses_a_wrong_key_and_says_nothing_of_the_body(
    world: dict[str, Any],
) -> None:
    with running(world["settings"], inbound_api=start_inbound_api) as service:
        url = f"{service.api_url}/v1/primero/webhook"
        wrong = requests.post(url, json={"data": {"record_type": "case"}}, timeout=10)
        assert wrong.status_code == 401
        bad = requests.post(
            url, data=b"not json", headers={"x-api-key": WEBHOOK_SECRET}, timeout=10
        )
        assert bad.status_code == 400 and "record_type" in bad.json()["message"]
        ok = requests.post(
            url,
            json={"data": {"record_type": "case", "name": "Ayesha Bibi"}},
            headers={"x-api-key": WEBHOOK_SECRET},
            timeout=10,
        )
        assert ok.status_code == 202 and "Ayesha" not in ok.text
        huge = requests.post(
            url,
            data=b'{"data": {"record_type": "case", "x": "' + b"a" * 100_000 + b'"}}',
            headers={"x-api-key": WEBHOOK_SECRET, "Content-Type": "application/json"},
            timeout=10,
        )
        assert huge.status_code == 413


def test_the_service_serves_health_and_metrics_and_does_its_housekeeping(
    world: dict[str, Any],
) -> None:
    """A forged code presented before start-up becomes an incident at the first incident
    check; the audit chain is verified; /healthz, /readyz and /metrics answer; a stopped
    service leaves its instance row marked stopped."""
    from adapter.incidents import list_incidents
    from adapter.privacy.events import SecurityEventKind, record_security_event
    from adapter.state.service import Instances

    settings = world["settings"]
    with StateStore(settings.state.url) as store:
        with store.transaction() as conn:
            record_security_event(
                conn, SecurityEventKind.FORGED_CODE, department="health", detail="test: forged"
            )
    with running(settings, ops_port=0, inbound_api=start_inbound_api) as service:
        assert service.ops_url is not None
        _wait(
            lambda: (
                {"incidents", "audit-verify", "keys-expire"}
                <= {o.job for o in service.outcomes if o.status == "ok"}
            ),
            60,
            "the first housekeeping runs",
        )
        health = requests.get(f"{service.ops_url}/healthz", timeout=10)
        ready = requests.get(f"{service.ops_url}/readyz", timeout=10)
        metrics = requests.get(f"{service.ops_url}/metrics", timeout=10)
        assert health.status_code == 200, health.text
        assert ready.status_code == 200, ready.text
        assert metrics.status_code == 200 and "cpims_adapter_" in metrics.text
        (incident,) = list_incidents(service.store)
        assert incident.kind == SecurityEventKind.FORGED_CODE
        assert incident.deadline_at - incident.opened_at == timedelta(hours=24)
    with StateStore(settings.state.url) as store:
        (instance,) = Instances(store).all()
        runs = {run.job: run.status for run in store.recent_runs(limit=50)}
    assert instance.stopped_at is not None
    assert runs["audit-verify"] == runs["incidents"] == runs["retention"] == "ok"


def test_a_taken_ops_port_is_a_clear_configuration_error(tmp_path: Path) -> None:
    """A second instance on the same host with the default [ops] port: one line that names
    the setting, no traceback (the CLI prints ConfigError as one line)."""
    import socket

    from adapter.app.service import Service
    from adapter.config import PrimeroSettings, Settings, StateSettings
    from adapter.errors import ConfigError

    taken = socket.socket()
    taken.bind(("127.0.0.1", 0))
    taken.listen(1)
    port = taken.getsockname()[1]
    settings = Settings(
        primero=PrimeroSettings(url="http://127.0.0.1:9"),
        state=StateSettings(url=f"sqlite:///{tmp_path}/state.sqlite3"),
        ops=OpsSettings(port=port),
    )
    service = Service(settings, housekeeping=[])
    try:
        with pytest.raises(ConfigError, match=r"\[ops\] port"):
            service.start()
    finally:
        taken.close()
