"""Which referrals of a case a user sees: Transitionable#referrals_for_user
(app/models/concerns/transitionable.rb), used by ReferralsController#index
(app/controllers/api/v2/referrals_controller.rb) and the transitions listing."""

from __future__ import annotations

import pytest

from adapter.simulator.primero import permissions, referrals
from adapter.simulator.primero.server import build_state
from adapter.simulator.primero.state import Case, Role, SimulatorState, User

AGENCY_A, AGENCY_B = "agency-a", "agency-b"


def _role(state: SimulatorState, unique_id: str, group_permission: str, actions: set[str]) -> None:
    state.roles[unique_id] = Role(
        unique_id=unique_id,
        name=unique_id,
        group_permission=group_permission,
        permissions={"case": actions},
        form_permissions={},
        module_unique_ids=["primeromodule-cp"],
    )


def _user(state: SimulatorState, name: str, role: str, agency: str, groups: list[str]) -> None:
    state.users[name] = User(
        id=state.next_id(),
        user_name=name,
        password="x",
        role_unique_id=role,
        agency_unique_id=agency,
        full_name=name,
        user_group_unique_ids=groups,
    )


@pytest.fixture
def state() -> SimulatorState:
    state = build_state()
    _role(state, "r-agency-referrer", "agency", {"read", "referral"})
    _role(state, "r-agency-reader", "agency", {"read"})
    _role(state, "r-group-referrer", "group", {"read", "referral"})
    _role(state, "r-group-reader", "group", {"read"})
    _role(state, "r-self", "self", {"read", "referral"})
    _user(state, "owner", "r-self", AGENCY_A, ["g-1"])
    _user(state, "same_agency", "r-agency-referrer", AGENCY_A, [])
    _user(state, "other_agency", "r-agency-referrer", AGENCY_B, [])
    _user(state, "agency_reader", "r-agency-reader", AGENCY_B, [])
    _user(state, "same_group", "r-group-referrer", AGENCY_B, ["g-1"])
    _user(state, "other_group", "r-group-referrer", AGENCY_B, ["g-2"])
    _user(state, "g2_peer", "r-self", AGENCY_B, ["g-2"])
    _user(state, "group_reader", "r-group-reader", AGENCY_B, ["g-2"])
    case = Case(id="case-1", data={"owned_by": "owner", "owned_by_groups": ["g-1"]})
    state.cases[case.id] = case
    sent = [
        ("to-agency-b", "someone", AGENCY_B, "in_progress"),
        ("to-g2-peer", "g2_peer", None, "in_progress"),
        ("to-agency-reader", "agency_reader", None, "accepted"),
        ("to-agency-reader-done", "agency_reader", None, "done"),
        ("to-group-reader", "group_reader", None, "in_progress"),
    ]
    for transition_id, to_user, to_agency, status in sent:
        state.transitions[transition_id] = {
            "id": transition_id,
            "type": "Referral",
            "record_id": case.id,
            "transitioned_to": to_user,
            "transitioned_to_agency": to_agency,
            "status": status,
        }
        case.transition_ids.append(transition_id)
    return state


def seen(state: SimulatorState, user_name: str) -> set[str]:
    case = state.cases["case-1"]
    return {t["id"] for t in referrals.visible_referrals(state, state.users[user_name], case)}


ALL = {"to-agency-b", "to-g2-peer", "to-agency-reader", "to-agency-reader-done", "to-group-reader"}


def test_the_owner_sees_every_referral(state: SimulatorState) -> None:
    assert seen(state, "owner") == ALL


def test_agency_scope_follows_the_owners_agency_then_the_receiving_agency(
    state: SimulatorState,
) -> None:
    # referrals_agency_scope: owner's agency + can_view_referrals? -> all; else by
    # transitioned_to_agency.
    assert seen(state, "same_agency") == ALL
    assert seen(state, "other_agency") == {"to-agency-b"}


def test_agency_user_who_cannot_view_referrals_sees_only_open_ones_sent_to_them(
    state: SimulatorState,
) -> None:
    # referrals_to_user: transitioned_to the user, status in_progress or accepted.
    assert seen(state, "agency_reader") == {"to-agency-reader"}


def test_group_scope_follows_the_case_groups_then_the_users_of_ones_groups(
    state: SimulatorState,
) -> None:
    # referrals_group_scope: owned_by_groups shared + can_view_referrals? -> all; else the
    # referrals sent to users of the user's groups (User.by_user_group).
    assert seen(state, "same_group") == ALL
    assert seen(state, "other_group") == {"to-g2-peer", "to-group-reader"}
    assert seen(state, "group_reader") == {"to-group-reader"}


def test_a_group_user_may_read_a_case_of_a_shared_group(state: SimulatorState) -> None:
    # ReferralsController#index authorizes :read first; User#group_permits_access? (user.rb).
    case = state.cases["case-1"]
    assert permissions.in_scope(state, state.users["same_group"], case)
    assert not permissions.in_scope(state, state.users["other_group"], case)
