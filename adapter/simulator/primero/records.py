"""Case life-cycle: create, deep-merge update, save callbacks, and the JSON presentation.

Sources: app/models/concerns/record.rb (identifiers, subform ids), historical.rb (timestamps
on every save), app/models/child.rb (hidden name, protection concerns),
record_merge_data_hash_service.rb (PATCH merge), app/services/record_data_service.rb
(presentation); primero-api.md §3, §4, §6.
"""

from __future__ import annotations

import copy
from typing import Any

from adapter.simulator.primero import permissions
from adapter.simulator.primero.errors import (
    PrimeroError,
    api_error,
    record_invalid,
)
from adapter.simulator.primero.state import Case, Json, SimulatorState, User
from adapter.simulator.primero.validation import date_of_birth_errors, permit, schema_errors

CENSORED_NAME = "*******"
GBV = "primeromodule-gbv"
SYNC_INPUT_FIELDS = ("mark_synced", "mark_synced_url", "mark_synced_status")


# -- PATCH merge (RecordMergeDataHashService) ------------------------------------------------
def _array_of_hashes(value: Any) -> bool:
    return isinstance(value, list) and (not value or isinstance(value[0], dict))


def merge_data(old: Any, new: Any) -> Any:
    """Deep merge; subform rows matched by `unique_id`, `_destroy: true` rows removed.

    Quirk kept: sending `[]` for a subform leaves its rows untouched (an empty array of hashes
    merges with nothing), so a subform cannot be cleared by PATCH.
    """
    if isinstance(old, dict) and isinstance(new, dict):
        merged = dict(old)
        for key, value in new.items():
            merged[key] = merge_data(old[key], value) if key in old else value
        return merged
    if _array_of_hashes(old) and _array_of_hashes(new):
        result = []
        for old_row in old:
            match = None
            if old_row.get("unique_id"):
                match = next((r for r in new if r.get("unique_id") == old_row["unique_id"]), None)
            result.append(merge_data(old_row, match) if match is not None else old_row)
        result_ids = {r.get("unique_id") for r in result}
        result += [r for r in new if r.get("unique_id") not in result_ids]
        return [r for r in result if not r.get("_destroy")]
    return new


# -- save callbacks ---------------------------------------------------------------------------
def _populate_subform_ids(state: SimulatorState, data: Json) -> None:
    for value in data.values():
        if isinstance(value, list) and value and isinstance(value[0], dict):
            for row in value:
                if isinstance(row, dict) and not row.get("unique_id"):
                    row["unique_id"] = state.new_uuid()


def update_referral_summary(state: SimulatorState, case: Case) -> None:
    """Transitionable before_save: referred_users and friends (transitionable.rb).

    `referrals.where(status: ...).pluck(:transitioned_to).uniq`: a remote referral has no
    `transitioned_to`, so it counts as `nil` — `referred_users` is `[nil]` and
    `referred_users_present` is true (`[nil].present?`) while it is in progress or accepted.
    `last_referral_*_at` is the latest `responded_at` (set by accept!/reject!, not by done!)."""
    referrals = [t for t in state.case_transitions(case) if t["type"] == "Referral"]
    data = case.data

    def users(*statuses: str) -> list[str | None]:
        return list(
            dict.fromkeys(t.get("transitioned_to") for t in referrals if t["status"] in statuses)
        )

    data["referred_users"] = users("in_progress", "accepted")
    data["referred_users_present"] = bool(data["referred_users"])
    data["referred_users_pending"] = users("in_progress")
    data["referred_users_pending_present"] = bool(data["referred_users_pending"])
    data["referred_users_accepted"] = users("accepted")
    data["referred_users_accepted_present"] = bool(data["referred_users_accepted"])
    for status, key in (
        ("rejected", "last_referral_rejected_at"),
        ("done", "last_referral_done_at"),
    ):
        times = [
            t["responded_at"] for t in referrals if t["status"] == status and t.get("responded_at")
        ]
        data[key] = max(times) if times else None


def save_case(state: SimulatorState, case: Case, event: str, stamp: str | None = None) -> None:
    """Run the before_save callbacks, bump `last_updated_at`, index, and queue the webhook.

    Every save bumps `last_updated_at` (historical.rb `before_save :update_last_updated_at`),
    including saves caused by referral status changes, and fires `case.<event>` webhooks.
    """
    data = case.data
    _populate_subform_ids(state, data)
    from_rows = [
        r.get("protection_concern_type")
        for r in data.get("protection_concern_detail_subform_section") or []
        if isinstance(r, dict) and r.get("protection_concern_type")
    ]
    concerns = list(dict.fromkeys(list(data.get("protection_concerns") or []) + from_rows))
    data["protection_concerns"] = concerns
    data["flagged"] = any(not f["removed"] for f in case.flags)
    update_referral_summary(state, case)  # before_save on every save (transitionable.rb)
    now = stamp or state.stamp()
    data.setdefault("created_at", now)
    data["last_updated_at"] = now
    _add_history(case, event)
    state.put_case(case)
    state.webhook_events.put((case.id, event))


_HISTORY_IGNORED = frozenset({"last_updated_at", "last_updated_by"})


def _add_history(case: Case, event: str) -> None:
    """Historical#add_creation_history / #update_history: one RecordHistory row per save that
    changed `data`, by `last_updated_by` (`created_by` on create) at `last_updated_at`, with
    `{field: {from, to}}` for each top-level key whose value changed (`hash_diff`: a removed
    key is no change there either), `last_updated_*` excluded (historical.rb)."""
    data = case.data
    created = event == "create" or case.saved is None
    old = {} if created else case.saved or {}
    changed = {
        key: copy.deepcopy(value)
        for key, value in data.items()
        if key not in _HISTORY_IGNORED and (key not in old or old[key] != value)
    }
    # The saved copy never shares a changed value with `data`: an in-place edit of a subform
    # list later still shows up as a change against it.
    case.saved = {**old, **changed}
    if not changed:
        return
    case.history.append(
        {
            "user_name": data.get("created_by" if created else "last_updated_by"),
            "datetime": data["last_updated_at"],
            "action": "create" if created else "update",
            "record_changes": {
                key: {"from": old.get(key), "to": copy.deepcopy(value)}
                for key, value in changed.items()
            },
        }
    )


# -- create / update ---------------------------------------------------------------------------
def _validate(state: SimulatorState, resource: str, params: Json) -> None:
    today = state.now().date()
    errors = date_of_birth_errors(params, today)
    if errors:
        raise record_invalid(resource, errors)


def create_case(state: SimulatorState, user: User, raw: Json, resource: str) -> Case:
    """children#create: strong params, schema, identifiers, defaults, save."""
    module_id = raw.get("module_id") if isinstance(raw.get("module_id"), str) else None
    role = state.role_of(user)
    rules = permissions.writable_rules(
        state, user, module_id or role.module_unique_ids[0], update=False
    )
    params = permit(raw, rules)
    pointers = schema_errors(params, rules)
    if pointers:
        raise api_error(422, resource, "Invalid Record JSON", pointers)
    _validate(state, resource, params)
    case_id = params.pop("id", None) or state.new_uuid()
    if case_id in state.cases:
        raise api_error(409, resource, "Conflict: A record with this id already exists")
    unique_identifier = state.new_uuid()
    now = state.stamp()
    data: Json = {
        "record_state": True,
        "status": "open",
        "workflow": "new",
        "module_id": module_id or role.module_unique_ids[0],
    }
    data.update(params)
    data.update(
        {
            "unique_identifier": unique_identifier,
            "case_id": unique_identifier,
            "short_id": unique_identifier[-7:],
            "created_by": user.user_name,
            "created_by_full_name": user.full_name,
            "created_organization": user.agency_unique_id,
            "created_by_groups": [],
            "last_updated_by": user.user_name,
            "last_updated_by_full_name": user.full_name,
            "posted_at": now,
        }
    )
    data.setdefault("owned_by", user.user_name)
    data.setdefault("owned_by_agency_id", user.agency_unique_id)
    data.setdefault("owned_by_location", user.location)
    data.setdefault("owned_by_groups", [])
    data.setdefault("assigned_user_names", [])
    data["case_id_display"] = data["short_id"]
    if data.get("module_id") == GBV:
        data["hidden_name"] = True  # Child#hide_name (before_create)
    if "created_at" not in params:
        data["created_at"] = now
    case = Case(id=case_id, data=data)
    save_case(state, case, "create", stamp=now)
    return case


def update_case(
    state: SimulatorState, user: User, case: Case, raw: Json, resource: str
) -> set[str]:
    """children#update: strong params, schema, sync write-back, deep merge, save.

    Returns the names of changed data keys.
    """
    rules = permissions.writable_rules(state, user, case.data.get("module_id"), update=True)
    params = permit(raw, rules)
    pointers = schema_errors(params, rules)
    if pointers:
        raise api_error(422, resource, "Invalid Record JSON", pointers)
    _validate(state, resource, params)
    before = copy.deepcopy(case.data)
    sync = {k: params[k] for k in SYNC_INPUT_FIELDS if k in params}
    # Webhookable: the fields are logged and removed only when `mark_synced_status` or a truthy
    # `mark_synced` is present; `{"mark_synced": false}` alone is stored like any field.
    logged = bool(sync.get("mark_synced_status") or sync.get("mark_synced"))
    if logged:
        for key in sync:
            params.pop(key)
    case.data = merge_data(case.data, params)
    case.data["last_updated_by"] = user.user_name
    case.data["last_updated_by_full_name"] = user.full_name
    if logged:
        for key in SYNC_INPUT_FIELDS:
            case.data.pop(key, None)
        log_sync_status(state, case, sync)
    save_case(state, case, "update")
    return {
        k
        for k in set(before) | set(case.data)
        if before.get(k, _ABSENT) != case.data.get(k, _ABSENT)
    }


_ABSENT = object()


def log_sync_status(state: SimulatorState, case: Case, sync: Json) -> None:
    """Webhookable#log_sync_status: mark_synced* are consumed and logged, never stored."""
    status = sync.get("mark_synced_status") or ("synced" if sync.get("mark_synced") else "failed")
    case.sync_logs.append(
        {"resource_url": sync.get("mark_synced_url"), "status": status, "timestamp": state.stamp()}
    )


def sync_summary(case: Case) -> tuple[str | None, str | None]:
    """(sync_status, synced_at): latest log per destination, newest first (webhookable.rb)."""
    latest: dict[Any, Json] = {}
    for log in case.sync_logs:
        url = log["resource_url"]
        if url not in latest or log["timestamp"] >= latest[url]["timestamp"]:
            latest[url] = log
    ordered = sorted(latest.values(), key=lambda log: log["timestamp"], reverse=True)
    status = ordered[0]["status"] if ordered else None
    synced_at = next((log["timestamp"] for log in ordered if log["status"] == "synced"), None)
    return status, synced_at


# -- presentation (RecordDataService + records/_record.json.jbuilder) -------------------------
def present(state: SimulatorState, user: User, case: Case, selected: set[str]) -> Json:
    """The record as the API shows it: `id`, `enabled`, selected data, computed fields."""
    data = case.data
    out: Json = {"id": case.id, "enabled": data.get("record_state")}
    for key, value in data.items():
        if key in selected:
            out[key] = value
    if "record_in_scope" in selected:
        out["record_in_scope"] = permissions.in_scope(state, user, case)
    if "name" in selected:
        out["name"] = CENSORED_NAME if data.get("hidden_name") else data.get("name")
    if "flag_count" in selected:
        out["flag_count"] = sum(1 for f in case.flags if not f["removed"])
    if "alert_count" in selected:
        out["alert_count"] = len(case.alerts)
    if "photos" in selected or "photo" in selected:
        out["photo"] = None
    out["last_updated_at"] = data.get("last_updated_at")
    if "sync_status" in selected or "synced_at" in selected:
        status, synced_at = sync_summary(case)
        if "sync_status" in selected:
            out["sync_status"] = status
        if "synced_at" in selected:
            out["synced_at"] = synced_at
    return out


def find_case(state: SimulatorState, case_id: str, resource: str) -> Case:
    """`Child.find(id)` or a 404."""
    case = state.cases.get(case_id)
    if case is None:
        raise api_error(404, resource, "Not Found", f"Couldn't find Child with 'id'={case_id}")
    return case


def require(condition: bool, error: PrimeroError) -> None:
    """Raise the error unless the condition holds."""
    if not condition:
        raise error
