"""may_have_referrals: what Primero's referral summary on a case proves (transitionable.rb)."""

from __future__ import annotations

from typing import Any

import pytest

from adapter.mappings.routing import may_have_referrals

NONE_YET: dict[str, Any] = {
    "referred_users_present": False,
    "last_referral_rejected_at": None,
    "last_referral_done_at": None,
}


def test_a_case_whose_summary_shows_no_referral_needs_no_lookup() -> None:
    assert may_have_referrals({"id": "c1", **NONE_YET}) is False


@pytest.mark.parametrize(
    "summary",
    [
        # An open remote referral: pluck(:transitioned_to) is [nil], and [nil].present? is true.
        {"referred_users_present": True},
        {"last_referral_rejected_at": "2026-03-01T10:00:00.000Z"},
        {"last_referral_done_at": "2026-03-01T10:00:00.000Z"},
    ],
)
def test_an_open_rejected_or_done_referral_shows(summary: dict[str, Any]) -> None:
    assert may_have_referrals({**NONE_YET, **summary}) is True


def test_a_referred_service_row_shows_even_after_its_referral_ended() -> None:
    case = {**NONE_YET, "services_section": [{"unique_id": "r1", "service_status_referred": True}]}
    assert may_have_referrals(case) is True


def test_other_dashboards_forms_of_the_summary_are_read_too() -> None:
    closed = {"last_referral_rejected_at": None, "last_referral_done_at": None}
    parts = {"referred_users_pending_present": False, "referred_users_accepted_present": True}
    assert may_have_referrals({**closed, **parts}) is True
    assert may_have_referrals({**closed, "referred_users": [None]}) is True
    assert may_have_referrals({**closed, "referred_users": []}) is False


@pytest.mark.parametrize(
    "missing", ["referred_users_present", "last_referral_rejected_at", "last_referral_done_at"]
)
def test_a_listing_without_the_summary_cannot_tell(missing: str) -> None:
    case = {k: v for k, v in NONE_YET.items() if k != missing}
    assert may_have_referrals(case) is None
