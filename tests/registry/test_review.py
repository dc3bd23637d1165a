"""Review queue, subject access, appeals, corrections, periodic review and court orders
(issue 6 item 3; privacy.md §6.6 items 6 and 9, §7 item 24)."""

from __future__ import annotations

from datetime import date, timedelta

import pytest

from adapter.registry import Establishment, InvalidState, Outcome, Registry, UnknownReference
from tests.registry.conftest import CNIC, NOW, add_school, order, request


def test_pending_checks_wait_in_the_queue_until_an_officer_resolves_them(
    registry: Registry, school: Establishment
) -> None:
    registry.ingest_conviction(order(), now=NOW)
    made = registry.check(request(full_name="Ahmed Raza"), school, now=NOW)
    queue = registry.review_queue()
    assert [i.check_ref for i in queue] == [made.check_ref]
    assert queue[0].rule == "cnic_hit_mismatch" and queue[0].due_by == NOW + timedelta(days=7)

    detail = registry.review_detail(made.check_ref, "r.officer", now=NOW)
    assert detail.submitted is not None and detail.submitted.full_name == "Ahmed Raza"
    assert [c.identity.full_name for c in detail.candidates] == ["Muhammad Ali"]
    assert detail.candidates[0].offence_code == "ppc_377a"

    registry.resolve(
        made.check_ref, Outcome.DO_NOT_ENGAGE, "r.officer", "Verisys: same person", now=NOW
    )
    assert registry.review_queue() == []
    assert registry.check_status(made.check_ref, school).status is Outcome.DO_NOT_ENGAGE
    with pytest.raises(InvalidState):
        registry.resolve(made.check_ref, Outcome.CLEAR, "r.officer", now=NOW)


def test_a_check_is_visible_only_to_the_establishment_that_made_it(
    registry: Registry, school: Establishment
) -> None:
    made = registry.check(request(), school, now=NOW)
    other = add_school(registry, "SCH-999")
    with pytest.raises(UnknownReference):
        registry.check_status(made.check_ref, other)


def test_subject_access_lists_every_establishment_that_checked(
    registry: Registry, school: Establishment
) -> None:
    other = add_school(registry, "SCH-002")
    registry.check(request(), school, now=NOW)
    registry.check(request(cnic="35202 1234567 1"), other, now=NOW + timedelta(hours=1))
    registry.check(request(cnic="42101-7654321-3"), other, now=NOW)  # someone else
    rows = registry.subject_access("٣٥٢٠٢-١٢٣٤٥٦٧-١", "r.officer", now=NOW)
    assert [(r.registration_number, r.kind) for r in rows] == [
        ("SCH-001", "check"),
        ("SCH-002", "check"),
    ]


def test_appeal_of_a_check_granted_makes_it_clear(
    registry: Registry, school: Establishment
) -> None:
    registry.ingest_conviction(order(), now=NOW)
    made = registry.check(request(date_of_birth="1990-05-02"), school, now=NOW)
    ref = registry.appeal(
        check_ref=made.check_ref, grounds="I am not this person", received_by="desk", now=NOW
    )
    registry.decide_appeal(ref, granted=True, officer="r.officer", note="Verisys", now=NOW)
    assert registry.check_status(made.check_ref, school).status is Outcome.CLEAR
    with pytest.raises(InvalidState):
        registry.decide_appeal(ref, granted=False, officer="r.officer", now=NOW)


def test_appeal_of_an_entry_holds_it_under_appeal_then_decides(
    registry: Registry, school: Establishment
) -> None:
    entry = registry.ingest_conviction(order(), now=NOW).entry_ref
    assert entry is not None
    ref = registry.appeal(
        entry_ref=entry, grounds="wrong person convicted", received_by="desk", now=NOW
    )
    # While under appeal a corroborated hit goes to a person, not to an automatic bar.
    assert registry.check(request(), school, now=NOW).status is Outcome.PENDING_REVIEW
    registry.decide_appeal(ref, granted=False, officer="r.officer", now=NOW)
    assert registry.check(request(), school, now=NOW).status is Outcome.DO_NOT_ENGAGE
    again = registry.appeal(entry_ref=entry, grounds="new evidence", received_by="desk", now=NOW)
    registry.decide_appeal(again, granted=True, officer="r.officer", now=NOW)
    assert registry.check(request(), school, now=NOW).status is Outcome.CLEAR


def test_correction_changes_what_matches(registry: Registry, school: Establishment) -> None:
    entry = registry.ingest_conviction(order(full_name="Muhammad Naeem"), now=NOW).entry_ref
    assert entry is not None
    assert registry.check(request(), school, now=NOW).status is Outcome.PENDING_REVIEW
    registry.correct_entry(
        entry, "r.officer", "court record typo", full_name="Muhammad Ali", now=NOW
    )
    assert registry.check(request(), school, now=NOW).status is Outcome.DO_NOT_ENGAGE
    registry.correct_entry(
        entry,
        "r.officer",
        "wrong CNIC on the order",
        cnic="42101-7654321-3",
        date_of_birth=date(1990, 5, 1),
        now=NOW,
    )
    assert registry.check(request(), school, now=NOW).status is Outcome.PENDING_REVIEW  # fuzzy only
    assert (
        registry.check(request(cnic="42101-7654321-3"), school, now=NOW).status
        is Outcome.DO_NOT_ENGAGE
    )


def test_entries_come_up_for_review_every_three_years(registry: Registry) -> None:
    entry = registry.ingest_conviction(order(), now=NOW).entry_ref
    assert registry.entries_due_for_review(now=NOW + timedelta(days=365 * 3 - 2)) == []
    later = NOW + timedelta(days=365 * 3 + 1)
    assert [e[0] for e in registry.entries_due_for_review(now=later)] == [entry]
    assert entry is not None
    registry.confirm_review(entry, "r.officer", now=later)
    assert registry.entries_due_for_review(now=later) == []


def test_court_orders_are_idempotent_and_follow_the_appeal(
    registry: Registry, school: Establishment
) -> None:
    first = order(order_ref="CRL-77/2024")
    assert registry.ingest_conviction(first, now=NOW).action == "created"
    assert registry.ingest_conviction(first, now=NOW).action == "unchanged"
    pending = order(order_ref="CRL-77/2024", appeal_state="under_appeal")
    assert registry.ingest_conviction(pending, now=NOW).action == "status_changed"
    assert registry.check(request(), school, now=NOW).status is Outcome.PENDING_REVIEW
    quashed = order(order_ref="CRL-77/2024", appeal_state="overturned")
    assert registry.ingest_conviction(quashed, now=NOW).action == "removed"
    assert registry.check(request(), school, now=NOW).status is Outcome.CLEAR
    # Re-delivering the original order never brings a removed entry back.
    assert registry.ingest_conviction(first, now=NOW).action == "unchanged"
    assert registry.check(request(), school, now=NOW).status is Outcome.CLEAR


def test_offences_outside_the_configured_list_are_not_registered(registry: Registry) -> None:
    result = registry.ingest_conviction(order(offence_code="ppc_379"), now=NOW)
    assert (result.action, result.entry_ref) == ("not_registrable", None)


def test_removing_twice_is_refused(registry: Registry) -> None:
    entry = registry.ingest_conviction(order(cnic=CNIC), now=NOW).entry_ref
    assert entry is not None
    registry.remove(entry, "error", "r.officer", now=NOW)
    with pytest.raises(InvalidState):
        registry.remove(entry, "error", "r.officer", now=NOW)
