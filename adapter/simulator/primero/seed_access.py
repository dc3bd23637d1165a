"""Default users, roles, agencies, locations and modules of the simulated instance.

All names are synthetic. Every seeded user has the password `SEED_PASSWORD`.
"""

from __future__ import annotations

from adapter.simulator.primero.seed_forms import CP, GBV
from adapter.simulator.primero.state import Json, Role, SimulatorState, User

SEED_PASSWORD = "sim-password"  # noqa: S105 - synthetic demo credential, documented in __init__

# (code, English name, Urdu name, admin level, parent code)
LOCATIONS: list[tuple[str, str, str, int, str | None]] = [
    ("PK", "Pakistan", "پاکستان", 0, None),
    ("PK-SD", "Sindh", "سندھ", 1, "PK"),
    ("PK-BA", "Balochistan", "بلوچستان", 1, "PK"),
    ("PK-KP", "Khyber Pakhtunkhwa", "خیبر پختونخوا", 1, "PK"),
    ("PK-SD-KHI", "Karachi", "کراچی", 2, "PK-SD"),
    ("PK-SD-HYD", "Hyderabad", "حیدرآباد", 2, "PK-SD"),
    ("PK-SD-SUK", "Sukkur", "سکھر", 2, "PK-SD"),
    ("PK-SD-LRK", "Larkana", "لاڑکانہ", 2, "PK-SD"),
    ("PK-SD-TPK", "Tharparkar", "تھرپارکر", 2, "PK-SD"),
    ("PK-BA-QTA", "Quetta", "کوئٹہ", 2, "PK-BA"),
    ("PK-BA-GWD", "Gwadar", "گوادر", 2, "PK-BA"),
    ("PK-BA-KCH", "Kech", "کیچ", 2, "PK-BA"),
    ("PK-BA-KHZ", "Khuzdar", "خضدار", 2, "PK-BA"),
    ("PK-KP-PEW", "Peshawar", "پشاور", 2, "PK-KP"),
    ("PK-KP-SWT", "Swat", "سوات", 2, "PK-KP"),
    ("PK-KP-MRD", "Mardan", "مردان", 2, "PK-KP"),
    ("PK-KP-ABT", "Abbottabad", "ایبٹ آباد", 2, "PK-KP"),
]

# (unique_id, name, services)
AGENCIES: list[tuple[str, str, list[str]]] = [
    (
        "agency-cpu-sindh",
        "Child Protection Unit Sindh",
        ["child_protection_service", "psychosocial_service", "family_mediation_service"],
    ),
    (
        "agency-cpu-balochistan",
        "Child Protection Unit Balochistan",
        ["child_protection_service", "psychosocial_service"],
    ),
    (
        "agency-kp-cpwc",
        "KP Child Protection & Welfare Commission",
        ["child_protection_service", "alternative_care"],
    ),
    ("agency-civil-hospital-karachi", "Civil Hospital Karachi", ["health_medical_service"]),
    ("agency-lrh-peshawar", "Lady Reading Hospital Peshawar", ["health_medical_service"]),
    ("agency-civil-hospital-quetta", "Civil Hospital Quetta", ["health_medical_service"]),
    ("agency-sindh-police", "Sindh Police Women & Child Protection Cell", ["police_other_service"]),
    ("agency-nadra", "NADRA Registration Centre", ["registration_service"]),
    ("agency-juvenile-court-karachi", "Juvenile Court Karachi", ["legal_assistance_service"]),
]

ALL_FORMS_RW = {
    "basic_identity": "rw",
    "local_identity": "rw",
    "data_confidentiality": "rw",
    "protection_concerns": "rw",
    "protection_concern_details": "rw",
    "services": "rw",
    "family_details": "rw",
    "notes": "rw",
    # The adapter's form (installed by `primero install-forms`): anyone who may edit a case can
    # type into it, as in a real deployment; only the record history says who did.
    "disclosure_decisions": "rw",
}

CASE_WORKER_ACTIONS = {
    "read",
    "create",
    "write",
    "referral",
    "receive_referral",
    "flag",
    "enable_disable_record",
    "search_owned_by_others",
    "close",
    "reopen",
}

ROLES: list[Role] = [
    Role(
        unique_id="role-integration",
        name="Integration (cpims-adapter)",
        group_permission="all",
        permissions={
            "case": {
                "read",
                "create",
                "write",
                "referral",
                "flag",
                "sync_external",
                "enable_disable_record",
                "search_owned_by_others",
                "change_log",
            },
            # Users: read, to see approvers' roles and groups (GET /api/v2/users).
            "user": {"read"},
            # The "Shared with others" dashboard: the case listing then carries
            # referred_users_present and last_referral_*_at, so the adapter fetches referrals
            # only for cases that have some (adapter/mappings/routing.py#may_have_referrals).
            "dashboard": {"dash_shared_with_others"},
        },
        # No `notes` (narrative), and protection concern details read-only: writes to them are
        # dropped silently, which is what the adapter must cope with (primero-api.md §4).
        form_permissions={
            "basic_identity": "rw",
            "local_identity": "rw",
            "data_confidentiality": "rw",
            "protection_concerns": "rw",
            "protection_concern_details": "r",
            "services": "rw",
            "family_details": "rw",
            "disclosure_decisions": "r",
        },
        module_unique_ids=[CP, GBV],
    ),
    Role(
        unique_id="role-cp-supervisor",
        name="CP Supervisor",
        # Supervisors see their unit's cases (Permission::AGENCY).
        group_permission="agency",
        permissions={
            "case": {"read", "write", "flag", "search_owned_by_others", "close", "reopen"}
        },
        form_permissions=dict(ALL_FORMS_RW),
        module_unique_ids=[CP, GBV],
    ),
    Role(
        unique_id="role-cp-case-worker",
        name="CP Case Worker",
        group_permission="self",
        permissions={"case": set(CASE_WORKER_ACTIONS)},
        form_permissions=dict(ALL_FORMS_RW),
        module_unique_ids=[CP, GBV],
    ),
    Role(
        unique_id="role-health-gateway",
        name="Health Referral Gateway",
        group_permission="self",
        permissions={"case": {"read", "write", "receive_referral"}},
        form_permissions={
            "basic_identity": "r",
            "data_confidentiality": "r",
            "protection_concerns": "r",
            "services": "rw",
        },
        module_unique_ids=[CP, GBV],
    ),
    Role(
        unique_id="role-cp-viewer",
        name="CP Viewer (read only)",
        group_permission="all",
        permissions={"case": {"read"}},
        form_permissions={k: "r" for k in ALL_FORMS_RW if k != "notes"},
        module_unique_ids=[CP],
    ),
    Role(
        unique_id="role-system-monitor",
        name="System Monitor",
        group_permission="all",
        permissions={"case": {"read", "receive_referral"}},
        form_permissions={"basic_identity": "r"},
        module_unique_ids=[CP, GBV],
        user_category="system",
    ),
    Role(
        unique_id="role-superuser",
        name="Superuser",
        group_permission="all",
        permissions={
            r: {"manage"}
            for r in (
                "case",
                "metadata",
                "role",
                "user",
                "agency",
                "webhook",
                "system",
                "primero_module",
                "lookup",
                "location",
            )
        },
        form_permissions=dict(ALL_FORMS_RW),
        module_unique_ids=[CP, GBV],
    ),
]

# (user_name, role, agency, full name, location, services)
USERS: list[tuple[str, str, str, str, str | None, list[str]]] = [
    (
        "cpims-adapter",
        "role-integration",
        "agency-cpu-sindh",
        "CPIMS Adapter (integration)",
        None,
        [],
    ),
    (
        "cp_worker1",
        "role-cp-case-worker",
        "agency-cpu-sindh",
        "Case Worker One",
        "PK-SD-KHI",
        ["child_protection_service", "psychosocial_service"],
    ),
    (
        "cp_worker2",
        "role-cp-case-worker",
        "agency-kp-cpwc",
        "Case Worker Two",
        "PK-KP-PEW",
        ["child_protection_service", "alternative_care"],
    ),
    (
        "cp_worker3",
        "role-cp-case-worker",
        "agency-cpu-balochistan",
        "Case Worker Three",
        "PK-BA-QTA",
        ["child_protection_service"],
    ),
    (
        "health_gateway",
        "role-health-gateway",
        "agency-civil-hospital-karachi",
        "Health Referral Desk",
        "PK-SD-KHI",
        ["health_medical_service"],
    ),
    (
        "cp_supervisor1",
        "role-cp-supervisor",
        "agency-cpu-sindh",
        "Supervisor One",
        "PK-SD-KHI",
        [],
    ),
    ("cp_viewer", "role-cp-viewer", "agency-cpu-sindh", "Read-only Reviewer", "PK-SD-KHI", []),
    ("system_monitor", "role-system-monitor", "agency-cpu-sindh", "System Monitor", None, []),
    ("primero_admin", "role-superuser", "agency-cpu-sindh", "Primero Administrator", None, []),
]

# Primero user groups (user_groups.unique_id) of the users above.
USER_GROUPS: dict[str, tuple[str, ...]] = {
    "cp_supervisor1": ("usergroup-cpu-sindh-supervisors",),
}


def _modules() -> list[Json]:
    return [
        {
            "id": 1,
            "unique_id": CP,
            "name": {"en": "CP"},
            "description": {"en": "Child Protection"},
            "associated_record_types": ["case", "tracing_request", "incident"],
            "module_options": {
                "use_webhooks_for": [],
                "use_webhook_sync_for": [],
                "workflow_status_indicator": True,
                "allow_searchable_ids": True,
            },
        },
        {
            "id": 2,
            "unique_id": GBV,
            "name": {"en": "GBV"},
            "description": {"en": "Gender Based Violence"},
            "associated_record_types": ["case", "incident"],
            "module_options": {
                "use_webhooks_for": [],
                "use_webhook_sync_for": [],
                "user_group_filter": True,
            },
        },
    ]


def load_access(state: SimulatorState) -> None:
    """Install locations, agencies, modules, roles and users."""
    by_code = {code: (name, urdu, level, parent) for code, name, urdu, level, parent in LOCATIONS}
    for code, (name, urdu, level, _parent) in by_code.items():
        hierarchy: list[str] = []
        cursor: str | None = code
        while cursor:
            hierarchy.insert(0, cursor)
            cursor = by_code[cursor][3]
        state.locations[code] = {
            "id": state.next_id(),
            "code": code,
            "type": ["country", "province", "district"][level],
            "admin_level": level,
            "name": {"en": name, "ur": urdu},
            "placename": {"en": name, "ur": urdu},
            "hierarchy": hierarchy,
            "disabled": False,
        }
    for unique_id, name, services in AGENCIES:
        state.agencies[unique_id] = {
            "id": state.next_id(),
            "unique_id": unique_id,
            "agency_code": unique_id.removeprefix("agency-").upper()[:12],
            "name": {"en": name},
            "description": {"en": name},
            "services": services,
            "disabled": False,
            "logo_enabled": False,
            "terms_of_use_enabled": False,
        }
    for module in _modules():
        state.modules[module["unique_id"]] = module
    for role in ROLES:
        copy = Role(
            **{
                **role.__dict__,
                "permissions": {k: set(v) for k, v in role.permissions.items()},
                "form_permissions": dict(role.form_permissions),
            }
        )
        copy.id = state.next_id()
        state.roles[copy.unique_id] = copy
    for user_name, role_id, agency, full_name, location, services in USERS:
        state.users[user_name] = User(
            id=state.next_id(),
            user_name=user_name,
            password=SEED_PASSWORD,
            role_unique_id=role_id,
            agency_unique_id=agency,
            full_name=full_name,
            position=state.roles[role_id].name,
            location=location,
            services=list(services),
            email=f"{user_name.replace('_', '.')}@example.org",
            user_group_unique_ids=list(USER_GROUPS.get(user_name, ())),
        )


def system_settings(state: SimulatorState) -> Json:
    """`GET /api/v2/system_settings` body data."""
    return {
        "id": 1,
        "primero_version": state.options.primero_version,
        "default_locale": "en",
        "locales": ["en", "ur"],
        "base_language": "en",
        "case_code_format": [],
        "case_code_separator": "",
        "auto_populate_list": [],
        "reporting_location_config": {
            "field_key": "owned_by_location",
            "admin_level": 2,
            "admin_level_map": {"1": ["province"], "2": ["district"]},
        },
        "age_ranges": {"primero": ["0..5", "6..11", "12..17", "18..999"]},
        "primary_age_range": "primero",
        "welcome_email_enabled": False,
        "duplicate_field_to_form": {},
        "system_options": {
            "use_identity_provider": False,
            "show_alerts": True,
            "maximum_users": 50,
            "due_date_from_appointment_date": False,
            "notification_email_enabled": False,
        },
        "approvals_labels": {},
    }
