"""The collector: counters from the runs table that never go down or double-count, and the
in-process counters, in a registry of their own."""

from __future__ import annotations

import secrets
from datetime import UTC, datetime, timedelta

from prometheus_client import generate_latest

from adapter.config import Settings
from adapter.instruments import Instruments, instruments
from adapter.ops.metrics import build_registry
from adapter.ops.status import collect_status
from adapter.privacy import KeyRing
from adapter.registry import Outcome, Registry, RegistrySettings
from adapter.simulator.departments.scenario import police_settings
from adapter.state import StateStore, schema
from adapter.state.held import Held, HeldReferrals
from tests.ops.conftest import worked_in
from tests.registry.conftest import NOW as REGISTRY_NOW
from tests.registry.conftest import add_school, order
from tests.registry.conftest import request as check_request

NOW = datetime.now(UTC)  # runs "running" for days stop counting (STUCK_RUN)


def sample(registry_text: str, name: str, **labels: str) -> float | None:
    for line in registry_text.splitlines():
        if line.startswith("#"):
            continue
        wanted = name + ("{" + ",".join(f'{k}="{v}"' for k, v in labels.items()) + "}")
        if line.split(" ")[0] == (wanted if labels else name):
            return float(line.split(" ")[1])
    return None


def offline_settings(store: StateStore) -> Settings:
    """A police job whose Primero and department are nowhere (the metrics read the store only)."""
    return police_settings(
        primero_url="http://127.0.0.1:9",
        police_url="http://127.0.0.1:9",
        state_url=store.url,
        kek=secrets.token_bytes(32),
        auth="api_key",
    )


def add_run(store: StateStore, status: str, stats: dict[str, object]) -> int:
    with store.transaction() as conn:
        result = conn.execute(
            schema.runs.insert().values(
                job="police",
                owner="h:1:1:a",
                started_at=NOW,
                finished_at=None if status == "running" else NOW + timedelta(seconds=5),
                status=status,
                stats=stats,
            )
        )
        return int(result.inserted_primary_key[0])  # type: ignore[index]


def test_record_and_run_counters_count_each_finished_run_once(store: StateStore) -> None:
    settings = offline_settings(store)
    process = Instruments()
    registry = build_registry(settings, store, process=process)

    def scrape() -> str:
        return generate_latest(registry).decode()

    def records(outcome: str) -> float | None:
        return sample(scrape(), "cpims_adapter_records_total", job="police", outcome=outcome)

    stats = {"enqueued": {"referral": 3}, "delivered": {"referral": 2}, "dead_lettered": 1}
    add_run(store, "ok", stats)
    add_run(store, "ok", {"dry_run": True, "enqueued": {"referral": 50}})  # sends nothing
    assert records("enqueued") == 3 and records("delivered") == 2
    assert records("enqueued") == 3  # a second scrape adds nothing

    running = add_run(store, "running", {})
    add_run(store, "ok", {"enqueued": {"probe": 4}, "refused": {"no_consent": 2}})
    text = scrape()
    assert sample(text, "cpims_adapter_records_total", job="police", outcome="enqueued") == 7
    assert sample(text, "cpims_adapter_records_total", job="police", outcome="refused") == 2
    runs = {"job": "police", "outcome": "ok"}
    assert sample(text, "cpims_adapter_runs_total", **runs) == 3
    assert "running" not in text.split("cpims_adapter_runs_total")[1].split("#")[0]

    # The run that was still going finishes later: counted then, once.
    with store.transaction() as conn:
        conn.execute(
            schema.runs.update()
            .where(schema.runs.c.id == running)
            .values(status="failed", finished_at=NOW, stats={"enqueued": {"referral": 1}})
        )
    assert records("enqueued") == 8
    assert records("enqueued") == 8
    failed = {"job": "police", "outcome": "failed"}
    assert sample(scrape(), "cpims_adapter_runs_total", **failed) == 1

    process.delivery_error("police", "Retryable")
    process.delivery_error("police", "Retryable")
    process.registry_check("CLEAR")
    text = scrape()
    errors = {"destination": "police", "kind": "Retryable"}
    assert sample(text, "cpims_adapter_delivery_errors_total", **errors) == 2
    assert sample(text, "cpims_adapter_registry_checks_total", outcome="CLEAR") == 1
    assert sample(text, "cpims_adapter_state_store_up") == 1


def test_registry_checks_are_counted_and_reviews_wait_in_status(store: StateStore) -> None:
    ring = KeyRing.init(store, secrets.token_bytes(32), ["health"], now=REGISTRY_NOW)
    registry = Registry.open(
        store, ring, RegistrySettings(), notifier=lambda _sent: None, now=REGISTRY_NOW
    )
    school = add_school(registry)
    registry.ingest_conviction(order(), now=REGISTRY_NOW)
    before = dict(instruments.registry_checks())
    pending = registry.check(check_request(full_name="Ahmed Raza"), school, now=REGISTRY_NOW)
    clear = registry.check(
        check_request(cnic="42101-7654321-3", full_name="Bilal Ahmed"), school, now=REGISTRY_NOW
    )
    assert (pending.status, clear.status) == (Outcome.PENDING_REVIEW, Outcome.CLEAR)
    after = instruments.registry_checks()
    assert after["PENDING_REVIEW"] - before.get("PENDING_REVIEW", 0) == 1
    assert after["CLEAR"] - before.get("CLEAR", 0) == 1

    settings = offline_settings(store)
    status = collect_status(settings, store, now=REGISTRY_NOW + timedelta(days=30))
    assert (status.pending_reviews, status.overdue_reviews) == (1, 1)
    assert any("registry reviews past their due date" in w for w in status.warnings)
    text = generate_latest(build_registry(settings, store)).decode()
    assert sample(text, "cpims_adapter_registry_pending_reviews", outcome="pending") == 1
    assert sample(text, "cpims_adapter_registry_checks_total", outcome="CLEAR") == after["CLEAR"]
    assert "Ahmed" not in text and "42101" not in text


def test_referrals_waiting_for_a_decision_show_in_status_and_metrics(store: StateStore) -> None:
    """A held referral is never silent: counted per department with the oldest wait, a warning
    in `status`, a problem once it waits longer than decisions.attention_after_hours."""
    settings = offline_settings(store)
    held = HeldReferrals(store)
    with store.transaction() as conn:
        held.hold_many(
            conn,
            [
                Held(
                    link_key=f"police:ref-{n}",
                    job="police",
                    department="police",
                    case_id=f"case-{n}",
                    referral_id=None,
                    awaiting="consent_or_override",
                    reason="no consent recorded",
                    held_since=NOW - timedelta(hours=hours),
                    checked_at=NOW,
                )
                for n, hours in enumerate((2, 5))
            ],
        )
    worked_in(store, "police")
    status = collect_status(settings, store, now=NOW)
    (waiting,) = status.held
    assert (waiting.department, waiting.count) == ("police", 2)
    assert round(waiting.oldest_seconds) == 5 * 3600
    assert any("2 police referrals wait for a person's decision" in w for w in status.warnings)
    assert status.healthy
    text = generate_latest(build_registry(settings, store, process=Instruments())).decode()
    assert sample(text, "cpims_adapter_referrals_awaiting_decision", department="police") == 2
    wait = sample(text, "cpims_adapter_referral_decision_wait_seconds", department="police")
    assert wait is not None and wait >= 5 * 3600

    later = collect_status(settings, store, now=NOW + timedelta(hours=20))
    assert not later.healthy
    assert any("longer than" in p and "decisions held" in p for p in later.problems)


def test_run_durations_latency_retrying_age_and_key_age_in_seconds(store: StateStore) -> None:
    settings = offline_settings(store)
    KeyRing.init(store, secrets.token_bytes(32), ["police"])
    process = Instruments()
    registry = build_registry(settings, store, process=process)
    add_run(store, "ok", {})  # 5 s
    add_run(store, "running", {})  # not finished: not observed
    with store.transaction() as conn:
        conn.execute(
            schema.outbox.insert().values(
                idempotency_key="k",
                job="police",
                destination="primero",
                kind="writeback.row",
                link_key="police:ref-1",
                payload=b"x",
                status="pending",
                attempts=3,
                next_attempt_at=NOW,
                created_at=datetime.now(UTC) - timedelta(minutes=10),
                updated_at=NOW,
                last_error_class="PrimeroNotPermitted",
            )
        )
    process.http_request("primero", "2xx", 0.03)
    with process.calling("police"):
        process.http_request(None, "5xx", 2.0)
    process.http_request(None, "error", 0.2)  # outside a delivery: a department's call

    text = generate_latest(registry).decode()
    runs = "cpims_adapter_run_duration_seconds"
    assert sample(text, f"{runs}_bucket", job="police", le="1.0") == 0
    assert sample(text, f"{runs}_bucket", job="police", le="5.0") == 1
    assert sample(text, f"{runs}_bucket", job="police", le="+Inf") == 1
    assert sample(text, f"{runs}_count", job="police") == 1
    assert sample(text, f"{runs}_sum", job="police") == 5.0
    http = "cpims_adapter_http_request_duration_seconds"
    # The exposition sorts a histogram's labels: le comes between destination and outcome.
    assert sample(text, f"{http}_bucket", destination="primero", le="0.05", outcome="2xx") == 1
    assert sample(text, f"{http}_bucket", destination="police", le="1.0", outcome="5xx") == 0
    assert sample(text, f"{http}_count", destination="police", outcome="5xx") == 1
    assert sample(text, f"{http}_count", destination="department", outcome="error") == 1
    oldest = "cpims_adapter_outbox_oldest_retrying_age_seconds"
    assert 600 <= (sample(text, oldest, destination="primero") or 0) < 900
    assert sample(text, oldest, destination="police") == 0
    age = sample(text, "cpims_adapter_key_age_seconds", kind="audit")
    assert age is not None and 0 <= age < 60

    # A second scrape observes each run once.
    text = generate_latest(registry).decode()
    assert sample(text, f"{runs}_count", job="police") == 1
