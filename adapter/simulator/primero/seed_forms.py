"""Default form sections and lookups of the simulated instance (a small CP/GBV configuration).

Field names follow Primero's seed forms (`db/configuration/forms/case/*.rb`); the only custom
additions are in the `local_identity` form (`name_local_script`, `b_form_no`, `mother_tongue`),
which a Pakistani deployment would add through the form builder.
"""

from __future__ import annotations

from typing import Any

from adapter.simulator.primero.state import Json, SimulatorState
from adapter.vocabulary import PROTECTION_CONCERNS

CP = "primeromodule-cp"
GBV = "primeromodule-gbv"

LOOKUPS: dict[str, tuple[str, list[str]]] = {
    "lookup-gender": ("Sex", ["male", "female"]),
    "lookup-case-status": ("Case Status", ["open", "closed", "transferred", "duplicate"]),
    "lookup-yes-no": ("Yes or No", ["true", "false"]),
    "lookup-risk-level": ("Risk Level", ["high", "medium", "low", "no_action"]),
    "lookup-protection-status": ("Protection Status", ["unaccompanied", "separated"]),
    "lookup-protection-concerns": ("Protection Concerns", list(PROTECTION_CONCERNS)),
    "lookup-service-type": (
        "Service Type",
        [
            "safehouse_service",
            "health_medical_service",
            "psychosocial_service",
            "police_other_service",
            "legal_assistance_service",
            "livelihoods_service",
            "child_protection_service",
            "family_mediation_service",
            "family_seunification_service",
            "education_service",
            "registration_service",
            "food_service",
            "alternative_care",
            "other_service",
        ],
    ),
    "lookup-service-response-type": (
        "Service Response Type",
        ["care_plan", "action_plan", "service_provision"],
    ),
    "lookup-service-implemented": ("Service Implemented", ["not_implemented", "implemented"]),
    "lookup-service-response-timeframe": (
        "Service Response Timeframe",
        ["1_hour", "3_hours", "1_day", "3_days"],
    ),
    "lookup-family-relationship": (
        "Family Relationship",
        [
            "mother",
            "father",
            "brother",
            "sister",
            "uncle",
            "aunt",
            "grandmother",
            "grandfather",
            "other",
        ],
    ),
    "lookup-consent-info-sharing": (
        "Consent Info Sharing",
        ["family", "authorities", "unhcr", "other_organizations", "others"],
    ),
    "lookup-language": (
        "Language",
        ["urdu", "sindhi", "pashto", "balochi", "punjabi", "saraiki", "brahui", "other"],
    ),
}


def _label(value: str) -> str:
    return value.replace("_", " ").capitalize()


def field(name: str, kind: str, **extra: Any) -> Json:
    """A field definition as `GET /api/v2/forms` shows it."""
    definition: Json = {
        "name": name,
        "type": kind,
        "display_name": {"en": _label(name)},
        "visible": True,
        "editable": True,
        "disabled": False,
        "multi_select": False,
        "date_include_time": False,
    }
    definition.update(extra)
    return definition


def _select(name: str, source: str, multi: bool = False) -> Json:
    return field(name, "select_box", option_strings_source=source, multi_select=multi)


def _subform(name: str) -> Json:
    return field(name, "subform", subform_section_unique_id=name)


def _form(
    unique_id: str,
    name: str,
    fields: list[Json],
    *,
    nested: bool = False,
    group: str = "identification_registration",
    modules: tuple[str, ...] = (CP, GBV),
) -> Json:
    return {
        "unique_id": unique_id,
        "name": {"en": name},
        "description": {"en": ""},
        "parent_form": "case",
        "module_ids": list(modules),
        "form_group_id": group,
        "order": 0,
        "visible": not nested,
        "is_nested": nested,
        "editable": True,
        "core_form": unique_id != "local_identity",
        "fields": fields,
    }


def default_forms() -> list[Json]:
    """The form sections of the default configuration (parents and nested subforms)."""
    text, area, tick, num = "text_field", "textarea", "tick_box", "numeric_field"
    return [
        _form(
            "basic_identity",
            "Basic Identity",
            [
                field("case_id", text, visible=False),
                field("short_id", text, visible=False),
                field("case_id_display", text),
                _select("status", "lookup lookup-case-status"),
                field("case_status_reopened", tick),
                field("name", text),
                field("name_first", text),
                field("name_middle", text),
                field("name_last", text),
                field("name_nickname", text),
                field("name_other", text),
                field("registration_date", "date_field"),
                _select("sex", "lookup lookup-gender"),
                field("age", num),
                field("date_of_birth", "date_field"),
                field("estimated", tick),
                field("national_id_no", text),
                field("other_id_type", text),
                field("other_id_no", text),
                field("other_agency_id", text),
                field("other_agency_name", text),
                field("address_current", area),
                _select("location_current", "Location"),
                field("telephone_current", text),
            ],
        ),
        _form(
            "local_identity",
            "Local Identity (Pakistan)",
            [
                field("name_local_script", text, help_text={"en": "Name in Urdu script"}),
                field("b_form_no", text, help_text={"en": "NADRA B-Form (CRC) number"}),
                _select("mother_tongue", "lookup lookup-language"),
            ],
        ),
        _form(
            "data_confidentiality",
            "Data Confidentiality",
            [
                field("consent_for_services", tick),
                field("disclosure_other_orgs", tick),
                field(
                    "consent_reporting",
                    "radio_button",
                    option_strings_source="lookup lookup-yes-no",
                ),
                field(
                    "consent_for_tracing",
                    "radio_button",
                    option_strings_source="lookup lookup-yes-no",
                ),
                _select("consent_info_sharing", "lookup lookup-consent-info-sharing", multi=True),
            ],
            group="consent",
        ),
        _form(
            "protection_concerns",
            "Protection Concerns",
            [
                _select("protection_concerns", "lookup lookup-protection-concerns", multi=True),
                field(
                    "urgent_protection_concern",
                    "radio_button",
                    option_strings_source="lookup lookup-yes-no",
                ),
                _select("risk_level", "lookup lookup-risk-level"),
                _select("protection_status", "lookup lookup-protection-status"),
            ],
            group="assessment",
        ),
        _form(
            "protection_concern_details",
            "Protection Concern Details",
            [
                _subform("protection_concern_detail_subform_section"),
            ],
            group="assessment",
        ),
        _form(
            "protection_concern_detail_subform_section",
            "Protection Concern Detail",
            [
                _select("protection_concern_type", "lookup lookup-protection-concerns"),
                field("concern_details", area),
                field("concern_is_resolved", tick),
                field("concern_action_taken_already", tick),
            ],
            nested=True,
            group="assessment",
        ),
        _form("services", "Services", [_subform("services_section")], group="services_follow_up"),
        _form(
            "services_section",
            "Services",
            [
                _select("service_response_type", "lookup lookup-service-response-type"),
                _select("service_type", "lookup lookup-service-type"),
                field("service_response_day_time", "date_field", date_include_time=True),
                _select("service_response_timeframe", "lookup lookup-service-response-timeframe"),
                field("service_appointment_date", "date_field"),
                _select("service_implementing_agency", "Agency"),
                _select("service_implementing_agency_individual", "User"),
                field("service_provider", text),
                field("service_location", text),
                _select("service_delivery_location", "Location"),
                field("service_referral_notes", area),
                field("service_status_referred", tick),
                _select("service_implemented", "lookup lookup-service-implemented"),
                field("service_implemented_day_time", "date_field", date_include_time=True),
                field("note_on_referral_from_provider", area),
            ],
            nested=True,
            group="services_follow_up",
        ),
        _form(
            "family_details",
            "Family Details",
            [_subform("family_details_section")],
            group="family_partner_details",
        ),
        _form(
            "family_details_section",
            "Family Details",
            [
                field("relation_name", text),
                _select("relation", "lookup lookup-family-relationship"),
                field(
                    "relation_is_alive",
                    "radio_button",
                    option_strings_source="lookup lookup-yes-no",
                ),
                field("relation_is_caregiver", tick),
                field("relation_telephone", text),
            ],
            nested=True,
            group="family_partner_details",
        ),
        # Case notes hold the narrative; the integration role is deliberately not granted it.
        _form("notes", "Notes", [_subform("notes_section")], group="notes"),
        _form(
            "notes_section",
            "Notes",
            [
                field("note_subject", text),
                field("note_date", "date_field"),
                field("note_text", area),
                field("note_created_by", text),
            ],
            nested=True,
            group="notes",
        ),
    ]


def load_forms_and_lookups(state: SimulatorState) -> None:
    """Install the default lookups and form sections into the state."""
    for unique_id, (name, values) in LOOKUPS.items():
        state.lookups[unique_id] = {
            "id": state.next_id(),
            "unique_id": unique_id,
            "name": {"en": name},
            "values": [{"id": v, "display_text": {"en": _label(v)}} for v in values],
            "locked": True,
        }
    for order, form in enumerate(default_forms()):
        form["id"] = state.next_id()
        form["order"] = order * 10
        state.forms[form["unique_id"]] = form
