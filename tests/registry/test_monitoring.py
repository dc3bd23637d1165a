"""Continuous monitoring: engaged workers, notifications to the two named officers
(issue 6 item 5; privacy.md §6.6 item 8)."""

from __future__ import annotations

import pytest

from adapter.registry import (
    Establishment,
    InvalidState,
    Notification,
    Outcome,
    Registry,
    UnknownReference,
    WorkerRegistration,
)
from tests.registry.conftest import CNIC, NOW, order, request


def engage(registry: Registry, school: Establishment, **identity: str) -> str:
    made = registry.check(request(**identity), school, now=NOW)
    assert made.status is Outcome.CLEAR
    data = {
        "check_ref": made.check_ref,
        "cnic": CNIC,
        "full_name": "Muhammad Ali",
        "father_name": "Muhammad Aslam",
        "date_of_birth": "1990-05-01",
        **identity,
    }
    return registry.register_worker(school, WorkerRegistration(**data), now=NOW)


def test_a_worker_who_becomes_do_not_engage_is_reported_to_both_officers(
    registry: Registry, school: Establishment, notified: list[Notification]
) -> None:
    worker = engage(registry, school)
    registry.ingest_conviction(order(full_name="Mohd. Ali"), now=NOW)
    rows = registry.notifications()
    assert {(n.officer_name, n.officer_email) for n in rows} == set(school.officers)
    assert {n.worker_ref for n in rows} == {worker}
    assert {n.status for n in rows} == {"DO_NOT_ENGAGE"}
    assert [n.id for n in notified] == [n.id for n in rows]  # the hook saw each one
    assert all(n.delivered_at is not None for n in registry.notifications())
    message = rows[0].message(registry.settings.how_to_appeal)
    assert "Ali" not in message and "377" not in message and worker in message
    assert registry.check_status(rows[0].check_ref, school).status is Outcome.DO_NOT_ENGAGE


def test_a_monitored_worker_with_a_mismatching_name_goes_to_review_first(
    registry: Registry, school: Establishment, notified: list[Notification]
) -> None:
    engage(registry, school)
    registry.ingest_conviction(order(full_name="Ahmed Raza"), now=NOW)
    assert registry.notifications() == []
    (item,) = registry.review_queue()
    assert item.monitoring and item.rule == "monitoring_cnic_hit_mismatch"
    registry.resolve(item.check_ref, Outcome.DO_NOT_ENGAGE, "r.officer", "Verisys", now=NOW)
    assert len(registry.notifications()) == 2 and len(notified) == 2


def test_a_failing_hook_leaves_notifications_undelivered(
    registry: Registry, school: Establishment, notified: list[Notification]
) -> None:
    engage(registry, school)

    def broken(_: Notification) -> None:
        raise ConnectionError("smtp down")

    registry.context.notifier = broken
    registry.ingest_conviction(order(), now=NOW)
    assert len(registry.notifications(undelivered=True)) == 2
    for n in registry.notifications(undelivered=True):
        registry.mark_notification_delivered(n.id, now=NOW)
    assert registry.notifications(undelivered=True) == []


def test_only_a_clear_check_of_the_same_person_can_be_monitored(
    registry: Registry, school: Establishment
) -> None:
    registry.ingest_conviction(order(), now=NOW)
    made = registry.check(request(), school, now=NOW)
    registration = WorkerRegistration(
        check_ref=made.check_ref,
        cnic=CNIC,
        full_name="Muhammad Ali",
        father_name="Muhammad Aslam",
        date_of_birth="1990-05-01",
    )
    with pytest.raises(InvalidState):
        registry.register_worker(school, registration, now=NOW)
    other = registration.model_copy(update={"cnic": "4210176543213"})
    with pytest.raises(UnknownReference):
        registry.register_worker(school, other, now=NOW)


def test_ended_monitoring_is_not_notified(registry: Registry, school: Establishment) -> None:
    worker = engage(registry, school)
    registry.end_worker(school, worker, now=NOW)
    registry.ingest_conviction(order(), now=NOW)
    assert registry.notifications() == []
    with pytest.raises(UnknownReference):
        registry.end_worker(school, worker, now=NOW)
