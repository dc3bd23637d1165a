"""What a user may read, write, filter on and act upon (Primero's PermittedFieldService & co).

Readable fields = core fields + filter fields + fields of the role's forms (for the record's
module) + always-permitted record-information fields (app/services/permitted_field_service.rb,
primero-api.md §3). Writable fields = the core schema + fields of forms the role holds with
"rw"; on update, `UPDATE_FORBIDDEN` form fields are removed
(app/services/permitted_form_fields_service.rb, primero-api.md §4).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from adapter.simulator.primero.state import Case, Json, Role, SimulatorState, User

# PERMITTED_CORE_FIELDS_SCHEMA keys, minus registry_record_id (permitted_field_service.rb)
CORE_FIELDS = [
    "id",
    "status",
    "state",
    "case_status_reopened",
    "record_state",
    "incident_case_id",
    "family_id",
    "created_at",
    "source_case_display_id",
    "owned_by",
    "module_id",
]
FILTER_FIELD_NAMES = [
    "or",
    "not",
    "cases_by_date",
    "record_in_scope",
    "associated_user_names",
    "not_edited_by_owner",
    "has_photo",
    "survivor_code",
    "survivor_code_no",
    "case_id_display",
    "created_at",
    "has_incidents",
    "short_id",
    "record_state",
    "sex",
    "age",
    "registration_date",
    "date_closure",
    "reassigned_transferred_on",
    "current_alert_types",
    "location_current",
    "reporting_location_hierarchy",
    "followup_dates",
    "reunification_dates",
    "tracing_dates",
    "service_implemented_day_times",
]
RECORD_INFORMATION_FIELDS = [
    "alert_count",
    "assigned_user_names",
    "created_at",
    "created_by",
    "created_by_agency",
    "owned_by",
    "owned_by_agency_id",
    "owned_by_text",
    "owned_by_agency_office",
    "previous_agency",
    "previously_owned_by",
    "reassigned_tranferred_on",
    "reopened_logs",
    "last_updated_at",
    "last_updated_by",
    "owned_by_groups",
    "previously_owned_by_agency",
    "created_organization",
    "consent_for_services",
    "disclosure_other_orgs",
    "case_type",
    "assign",
    "identified_by",
]
# PERMITTED_DASHBOARD_FILTERS: a role holding a dashboard reads these computed fields
# (permitted_field_service.rb#permitted_dashboard_filter_field_names).
DASHBOARD_FILTER_FIELDS = {
    "dash_shared_with_me": [
        "referred_users",
        "referred_users_pending",
        "referred_users_accepted",
        "transferred_to_users",
    ],
    "dash_shared_with_others": [
        "referred_users_present",
        "referred_users_pending_present",
        "referred_users_accepted_present",
        "last_referral_rejected_at",
        "last_referral_done_at",
        "transfer_status",
    ],
    "dash_shared_from_my_team": [
        "referred_users_pending_present",
        "referred_users_accepted_present",
        "last_referral_rejected_at",
        "last_referral_done_at",
        "transfer_status",
    ],
    "dash_shared_with_my_team": [
        "referred_users_pending",
        "referred_users_accepted",
        "referred_users_pending_present",
        "referred_users_accepted_present",
        "transferred_to_users",
    ],
    "dash_shared_with_my_team_overview": ["transferred_to_user_groups", "transfer_status"],
}
SYNC_FIELDS = ["synced_at", "sync_status", "mark_synced", "mark_synced_url", "mark_synced_status"]
ID_SEARCH_FIELDS = ["age", "date_of_birth", "estimated", "name", "sex"]
UPDATE_FORBIDDEN = {
    "id",
    "unique_identifier",
    "unique_id",
    "short_id",
    "created_at",
    "created_by",
    "case_id",
    "case_id_display",
}
# Child.summary_field_names = common_summary_fields + case fields (app/models/child.rb)
SUMMARY_FIELDS = [
    "created_at",
    "owned_by",
    "owned_by_agency_id",
    "photos",
    "flag_count",
    "status",
    "record_in_scope",
    "short_id",
    "alert_count",
    "case_id_display",
    "name",
    "survivor_code_no",
    "age",
    "sex",
    "registration_date",
    "hidden_name",
    "workflow",
    "case_status_reopened",
    "module_id",
    "registry_record_id",
    "client_code",
    "gender",
    "reporting_location_hierarchy",
    "location_current",
]
UUID_PATTERN = r"\A[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}\Z"
STATUS_VALUES = ["open", "closed", "transferred", "identified"]


@dataclass
class Rule:
    """How one writable field is permitted (strong params) and validated (JSON schema)."""

    kind: str  # text | tick_box | numeric | date | select | multi_select | radio | subform | ...
    enum: list[str] | None = None
    booleans: bool = False  # radio buttons whose options are only true/false accept booleans
    rows: dict[str, Rule] = field(default_factory=dict)  # subform row fields


def form_fields(
    state: SimulatorState, role: Role, module_id: str | None, writeable: bool
) -> list[Json]:
    """Top-level fields of the (non-nested) forms the role holds for the module."""
    result: list[Json] = []
    for unique_id, access in role.form_permissions.items():
        form = state.forms.get(unique_id)
        if form is None or form["is_nested"] or form["parent_form"] != "case":
            continue
        if writeable and access != "rw":
            continue
        modules = form["module_ids"]
        if module_id is not None and module_id not in modules:
            continue
        if module_id is None and not set(modules) & set(role.module_unique_ids):
            continue
        result.extend(form["fields"])
    return result


def readable_fields(
    state: SimulatorState, user: User, module_id: str | None, id_search: bool = False
) -> set[str]:
    """`permitted_field_names(module, writeable=false)` for reads, filters and field selection."""
    role = state.role_of(user)
    names = set(CORE_FIELDS) | set(FILTER_FIELD_NAMES)
    names |= {f["name"] for f in form_fields(state, role, module_id, writeable=False)}
    names |= {"workflow", "status", "case_status_reopened"}
    if role.can("case", "write"):
        names.add("hidden_name")
    if role.can("case", "flag"):
        names |= {"flag_count", "flagged"}
    if role.can("case", "sync_external"):
        names |= set(SYNC_FIELDS)
    if role.can("case", "read"):
        names |= set(RECORD_INFORMATION_FIELDS)
    if id_search:
        names |= set(ID_SEARCH_FIELDS)
    for dashboard, dashboard_fields in DASHBOARD_FILTER_FIELDS.items():
        if role.can("dashboard", dashboard):
            names |= set(dashboard_fields)
    return names


def _lookup_values(state: SimulatorState, source: str | None) -> list[str] | None:
    if not source:
        return None
    if source.startswith("lookup "):
        lookup = state.lookups.get(source.removeprefix("lookup "))
        return [v["id"] for v in lookup["values"]] if lookup else []
    if source == "Location":
        return list(state.locations)
    if source == "Agency":
        return list(state.agencies)
    return None  # e.g. "User": not enumerated


def _option_values(state: SimulatorState, definition: Json) -> list[str] | None:
    """A select's allowed values: its lookup or location/agency source, else its inline
    `option_strings_text` ids (Field#options?, record_json_validator_service.rb enum)."""
    values = _lookup_values(state, definition.get("option_strings_source"))
    inline = definition.get("option_strings_text")
    if values is None and isinstance(inline, list) and inline:
        values = [str(o["id"]) for o in inline if isinstance(o, dict) and "id" in o]
    return values


def rule_for(state: SimulatorState, definition: Json) -> Rule | None:
    """The validation rule of one field definition (None for types without a schema)."""
    kind = definition["type"]
    if kind in ("text_field", "textarea"):
        return Rule("text")
    if kind == "tick_box":
        return Rule("tick_box")
    if kind == "numeric_field":
        return Rule("numeric")
    if kind == "date_field":
        return Rule("date")
    if kind == "select_box":
        values = _option_values(state, definition)
        return Rule("multi_select" if definition.get("multi_select") else "select", values)
    if kind == "radio_button":
        values = _option_values(state, definition)
        return Rule(
            "radio", values, booleans=values is not None and set(values) <= {"true", "false"}
        )
    if kind == "subform":
        nested = state.forms.get(definition.get("subform_section_unique_id") or "")
        rows: dict[str, Rule] = {}
        for sub in (nested or {}).get("fields", []):
            sub_rule = rule_for(state, sub)
            if sub_rule is not None:
                rows[sub["name"]] = sub_rule
        rows["unique_id"] = Rule("uuid")
        rows["_destroy"] = Rule("boolean_or_null")
        return Rule("subform", rows=rows)
    return None


def writable_rules(
    state: SimulatorState, user: User, module_id: str | None, update: bool
) -> dict[str, Rule]:
    """Strong params + JSON schema of a create or update (concerns/record.rb#record_params)."""
    role = state.role_of(user)
    rules: dict[str, Rule] = {}
    for definition in form_fields(state, role, module_id, writeable=True):
        if update and definition["name"] in UPDATE_FORBIDDEN:
            continue
        rule = rule_for(state, definition)
        if rule is not None:
            rules[definition["name"]] = rule
    # permitted_fields_schema: core fields are merged over form fields.
    rules.update(
        {
            "status": Rule("select", STATUS_VALUES),
            "state": Rule("tick_box"),
            "case_status_reopened": Rule("boolean_or_null"),
            "record_state": Rule("tick_box"),
            "incident_case_id": Rule("uuid"),
            "source_case_display_id": Rule("uuid"),
            "owned_by": Rule("string"),
            "module_id": Rule("select", list(state.modules)),
        }
    )
    if not update:
        rules["id"] = Rule("uuid")
        rules["created_at"] = Rule("datetime")
    if role.can("case", "write"):
        rules["hidden_name"] = Rule("tick_box")
    if role.can("case", "close"):
        rules["date_closure"] = Rule("date")
    if role.can("case", "sync_external"):
        rules.update(
            {
                "synced_at": Rule("date"),
                "sync_status": Rule("string"),
                "mark_synced": Rule("tick_box"),
                "mark_synced_url": Rule("string"),
                "mark_synced_status": Rule("string"),
            }
        )
    return rules


def in_scope(state: SimulatorState, user: User, case: Case) -> bool:
    """Whether the user can read this record (group permission all / self / agency / group)."""
    role = state.role_of(user)
    if role.group_permission == "all":
        return True
    data = case.data
    if data.get("owned_by") == user.user_name:
        return True
    if user.user_name in (data.get("assigned_user_names") or []):
        return True
    if role.group_permission == "agency":
        return data.get("owned_by_agency_id") == user.agency_unique_id
    if role.group_permission == "group":
        # User#group_permits_access? (user.rb): the user's groups against the record's
        # associated_user_groups (the owner's groups, which the simulator keeps as owned_by_groups).
        groups = data.get("associated_user_groups") or data.get("owned_by_groups") or []
        return bool(set(user.user_group_unique_ids) & set(groups))
    return False


def can_receive_referral(
    state: SimulatorState, sender: User, receiver: User | None, module_id: str | None
) -> bool:
    """UserTransitionService#can_receive? for referrals (app/services/user_transition_service.rb).

    Enabled users other than the sender, whose role is not in the system/maintenance category,
    holds `receive_referral` on cases and includes the record's module.
    """
    if receiver is None:
        # `transitioned_to_user.user_name` on nil raises NoMethodError in Primero: a 500.
        raise LookupError("undefined method 'user_name' for nil")
    role = state.role_of(receiver)
    return (
        not receiver.disabled
        and receiver.user_name != sender.user_name
        and role.user_category not in ("system", "maintenance")
        and role.can("case", "receive_referral")
        and module_id in role.module_unique_ids
    )


def referral_receivers(
    state: SimulatorState,
    sender: User,
    module_id: str | None,
    agency: str | None,
    location: str | None,
    service: str | None,
) -> list[User]:
    """`GET /api/v2/users/refer-to`: receivers filtered by agency, location and service."""
    users = []
    for user in state.users.values():
        if not can_receive_referral(state, sender, user, module_id):
            continue
        if agency and user.agency_unique_id != agency:
            continue
        if location and user.location != location:
            continue
        if service and service not in user.services:
            continue
        users.append(user)
    return users
