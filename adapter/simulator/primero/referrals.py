"""Referrals: create, status changes and revocation (app/models/referral.rb, transition.rb).

- Create validates consent (CP: `consent_for_services` and `disclosure_other_orgs`; GBV:
  `consent_for_services`; or `consent_overridden`) and, unless `remote`, that the target user can
  receive. An unknown target user makes Primero call `user_name` on nil: a 500.
- Validations run again on *every* save of the transition (accept, reject, done, revoke), so a
  consent withdrawn after the referral turns a later accept into a 422 (the receiver check is
  skipped for `revoked`).
- `process!` ignores a repeated status and any transition it does not know: 200, unchanged.
- Each effective change saves the case (bumps `last_updated_at`, fires `case.update`).
"""

from __future__ import annotations

import copy
from typing import Any

from adapter.simulator.primero import permissions, records
from adapter.simulator.primero.errors import internal_error, record_invalid
from adapter.simulator.primero.state import Case, Json, SimulatorState, User

REFERRAL_KEYS = (
    "transitioned_to",
    "transitioned_to_remote",
    "transitioned_to_agency",
    "service",
    "service_record_id",
    "remote",
    "type_of_export",
    "notes",
    "consent_overridden",
    "authorized_role_unique_id",
    "allow_case_creation",
)
BOOLEAN_KEYS = ("remote", "consent_overridden", "allow_case_creation")
GBV = "primeromodule-gbv"


def cast_boolean(value: Any) -> bool:
    """ActiveRecord::Type::Boolean: false for nil, false, "false", "0", "f", "off", ""."""
    return value not in (None, False, 0, "", "0", "f", "F", "false", "FALSE", "off", "OFF")


def consent_given(case: Case) -> bool:
    """Referral#consent_given?"""
    data = case.data
    if data.get("module_id") == GBV:
        return bool(data.get("consent_for_services"))
    return bool(data.get("disclosure_other_orgs")) and bool(data.get("consent_for_services"))


def _validate(state: SimulatorState, transition: Json, case: Case, resource: str) -> None:
    errors: list[tuple[str, list[str]]] = []
    if not transition.get("consent_overridden") and not consent_given(case):
        errors.append(("consent", ["transition.errors.consent"]))
    if not transition["remote"] and transition["status"] != "revoked":
        sender = state.users[transition["transitioned_by"]]
        receiver = state.users.get(transition.get("transitioned_to") or "")
        try:
            ok = permissions.can_receive_referral(
                state, sender, receiver, case.data.get("module_id")
            )
        except LookupError as error:
            raise internal_error(resource, str(error)) from error
        if not ok:
            errors.append(("transitioned_to", ["transition.errors.to_user_can_receive"]))
    if errors:
        raise record_invalid(resource, errors)


def _service_row(case: Case, service_record_id: str | None) -> Json | None:
    if not service_record_id:
        return None
    rows = case.data.get("services_section") or []
    return next((r for r in rows if r.get("unique_id") == service_record_id), None)


def _changed(before: Json, after: Json) -> set[str]:
    return {k for k in set(before) | set(after) if before.get(k) != after.get(k)}


def refer(
    state: SimulatorState, user: User, case: Case, raw: Json, resource: str
) -> tuple[Json, set[str]]:
    """ReferralsController#refer: build, validate, perform, save. Returns (transition, updates)."""
    permitted = {
        k: v
        for k, v in raw.items()
        if k in REFERRAL_KEYS and (v is None or isinstance(v, str | int | float | bool))
    }
    transition: Json = {
        "id": state.new_uuid(),
        "type": "Referral",
        "allow_case_creation": False,
        "consent_individual_transfer": False,
        "consent_overridden": False,
        "created_at": state.stamp(),
        "record_id": case.id,
        "record_type": "Child",
        "remote": False,
        "status": None,
        "transitioned_by": user.user_name,
    }
    for key, value in permitted.items():
        transition[key] = (
            cast_boolean(value) if key in BOOLEAN_KEYS else (None if value is None else str(value))
        )
    _validate(state, {**transition, "status": "in_progress"}, case, resource)
    before = copy.deepcopy(case.data)
    # Referral#perform
    transition["status"] = "in_progress"
    row = _service_row(case, transition.get("service_record_id"))
    if row is not None:
        row["service_status_referred"] = True
    receiver = state.users.get(transition.get("transitioned_to") or "")
    if not transition["remote"] and receiver is not None:
        assigned = list(case.data.get("assigned_user_names") or [])
        if receiver.user_name not in assigned:
            assigned.append(receiver.user_name)
        case.data["assigned_user_names"] = assigned
    case.data["last_updated_by"] = user.user_name
    # copy_record_ownership / copy_transitioned_user_groups_and_agency
    transition["record_owned_by"] = case.data.get("owned_by")
    transition["record_owned_by_agency"] = case.data.get("owned_by_agency_id")
    transition["record_owned_by_groups"] = list(case.data.get("owned_by_groups") or [])
    transition["transitioned_by_user_agency"] = user.agency_unique_id
    transition["transitioned_by_user_groups"] = list(user.user_group_unique_ids)
    if not transition["remote"] and receiver is not None:
        transition["transitioned_to_user_agency"] = receiver.agency_unique_id
        transition["transitioned_to_user_groups"] = list(receiver.user_group_unique_ids)
        # TransitionAlertable#add_alert_on_record
        case.alerts.append(
            {
                "unique_id": state.new_uuid(),
                "type": "referral",
                "alert_for": "referral",
                "form_sidebar_id": "referral",
                "date": state.now().date().isoformat(),
                "user_name": receiver.user_name,
            }
        )
    state.transitions[transition["id"]] = transition
    case.transition_ids.append(transition["id"])
    records.save_case(state, case, "update")
    return transition, _changed(before, case.data) | {"last_updated_at"}


def _remove_assigned_user(state: SimulatorState, transition: Json, case: Case) -> None:
    """Transition#remove_assigned_user, unless another active transition keeps the user."""
    to_user = transition.get("transitioned_to")
    for other_id in case.transition_ids:
        other = state.transitions[other_id]
        if (
            other["id"] != transition["id"]
            and other.get("transitioned_to") == to_user
            and (other["status"] in ("in_progress", "accepted"))
        ):
            return
    assigned = case.data.get("assigned_user_names")
    if assigned and to_user in assigned:
        case.data["assigned_user_names"] = [u for u in assigned if u != to_user]


def _resolve_alerts(transition: Json, case: Case) -> None:
    """TransitionAlertable#remove_alert_on_record for resolved, non-remote referrals."""
    if transition["remote"]:
        return
    case.alerts[:] = [
        a
        for a in case.alerts
        if not (a["type"] == "referral" and a.get("user_name") == transition.get("transitioned_to"))
    ]


def _commit(
    state: SimulatorState, transition: Json, case: Case, changes: Json, resource: str
) -> Json:
    """Validate the transition as it would be saved, then apply the changes.

    Returns a snapshot of the case data from before the change (to report what changed).
    """
    _validate(state, {**transition, **changes}, case, resource)
    before = copy.deepcopy(case.data)
    transition.update(changes)
    return before


def process(
    state: SimulatorState, user: User, transition: Json, params: Json, resource: str
) -> set[str]:
    """Referral#process!: accept, reject or done; anything else is a silent no-op."""
    case = state.cases[transition["record_id"]]
    requested = params.get("status")
    current = transition["status"]
    if requested == current:
        return set()
    now = state.stamp()
    if requested == "accepted" and current == "in_progress":
        before = _commit(
            state, transition, case, {"status": "accepted", "responded_at": now}, resource
        )
    elif requested == "rejected" and current == "in_progress":
        before = _commit(
            state,
            transition,
            case,
            {
                "status": "rejected",
                "rejected_reason": _text(params.get("rejected_reason")),
                "responded_at": now,
            },
            resource,
        )
        _remove_assigned_user(state, transition, case)
        case.data["last_updated_by"] = user.user_name
    elif requested == "done" and current == "accepted":
        note = _text(params.get("rejection_note"))
        changes: Json = {"status": "done"}
        if note:
            changes["rejection_note"] = note
        before = _commit(state, transition, case, changes, resource)
        row = _service_row(case, transition.get("service_record_id"))
        if row is not None:
            if not row.get("service_implemented_day_time"):
                row["service_implemented_day_time"] = now
            row["service_implemented"] = "implemented"
            if note:
                row["note_on_referral_from_provider"] = note
        _remove_assigned_user(state, transition, case)
        case.data["last_updated_by"] = user.user_name
    else:
        return set()
    _resolve_alerts(transition, case)
    records.save_case(state, case, "update")
    return _changed(before, case.data) | {"last_updated_at"}


def revoke(state: SimulatorState, user: User, transition: Json, resource: str) -> set[str]:
    """Referral#revoke!: from any state (validations still run, except the receiver check)."""
    case = state.cases[transition["record_id"]]
    before = _commit(state, transition, case, {"status": "revoked"}, resource)
    _remove_assigned_user(state, transition, case)
    case.data["last_updated_by"] = user.user_name
    _resolve_alerts(transition, case)
    records.save_case(state, case, "update")
    return _changed(before, case.data) | {"last_updated_at"}


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) else None


def user_can_accept_or_reject(state: SimulatorState, transition: Json, user: User) -> bool:
    """Transition#user_can_accept_or_reject?"""
    if transition["remote"] or transition["status"] != "in_progress":
        return False
    return user.user_name == transition.get("transitioned_to")


# User#can_view_referrals? (app/models/user.rb): any of these case permissions.
VIEW_REFERRALS_ACTIONS = (
    "referral_from_service",
    "remove_assigned_users",
    "referral",
    "receive_referral",
    "receive_referral_different_module",
)


def can_view_referrals(state: SimulatorState, user: User) -> bool:
    """User#can_view_referrals?"""
    role = state.role_of(user)
    return any(role.can("case", action) for action in VIEW_REFERRALS_ACTIONS)


def visible_referrals(state: SimulatorState, user: User, case: Case) -> list[Json]:
    """Transitionable#referrals_for_user by group permission (transitionable.rb).

    - self: all when the user owns the case, else those sent to the user;
    - agency: all when the user owns the case, or shares the owner's agency and may view
      referrals; else those sent to the user's agency (`transitioned_to_agency`), or, for a
      user who may not view referrals, the pending/accepted ones sent to the user;
    - group: as agency, with the case's `owned_by_groups` against the user's groups, and the
      referrals sent to any user of the user's groups (User.by_user_group);
    - all: every referral; any other group permission: none.
    """
    referrals = [t for t in state.case_transitions(case) if t["type"] == "Referral"]
    group_permission = state.role_of(user).group_permission
    owner = case.data.get("owned_by") == user.user_name
    if group_permission == "all" or (group_permission in ("self", "agency", "group") and owner):
        return referrals
    if group_permission == "self":
        return [t for t in referrals if t.get("transitioned_to") == user.user_name]
    if group_permission not in ("agency", "group"):
        return []
    viewer = can_view_referrals(state, user)
    if group_permission == "agency":
        # `owner.agency_id`: the owning user's agency, not the record's owned_by_agency_id
        # (a case without an owning user would fail in Primero; here it is another agency's).
        owning_user = state.users.get(str(case.data.get("owned_by") or ""))
        same_agency = owning_user is not None and (
            owning_user.agency_unique_id == user.agency_unique_id
        )
        if same_agency and viewer:
            return referrals
        if not viewer:
            return _referrals_to_user(referrals, user)
        return [t for t in referrals if t.get("transitioned_to_agency") == user.agency_unique_id]
    groups = set(user.user_group_unique_ids)
    if viewer and groups & set(case.data.get("owned_by_groups") or []):
        return referrals
    if not viewer:
        return _referrals_to_user(referrals, user)
    group_users = {
        u.user_name for u in state.users.values() if groups & set(u.user_group_unique_ids)
    }
    return [t for t in referrals if t.get("transitioned_to") in group_users]


def _referrals_to_user(referrals: list[Json], user: User) -> list[Json]:
    """Transitionable#referrals_to_user: pending or accepted referrals sent to the user."""
    return [
        t
        for t in referrals
        if t.get("transitioned_to") == user.user_name
        and t.get("status") in ("in_progress", "accepted")
    ]


def transition_json(
    state: SimulatorState, user: User, transition: Json, updates: set[str] | None
) -> Json:
    """transitions/_transition.json.jbuilder: non-null columns, access flags, changed record."""
    out = {k: v for k, v in transition.items() if v is not None}
    out["record_type"] = "case"  # PrimeroModelService.to_name("Child")
    case = state.cases[transition["record_id"]]
    denied = not (
        state.role_of(user).can("case", "read") and permissions.in_scope(state, user, case)
    )
    out["record_access_denied"] = denied
    out["user_can_accept_or_reject"] = user_can_accept_or_reject(state, transition, user)
    if updates is not None and not denied:
        out["record"] = records.present(state, user, case, updates)
    return out
