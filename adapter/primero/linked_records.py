"""Linked department records: a read-only subform on the case that shows a child protection
officer (CPO) what each department did with the case (primero-api.md §6, "Writing linked-record
info back").

Primero stores only the fields of forms that the writing role may write, and drops the rest
without an error (primero-api.md §4). So the adapter first installs its own form section, and an
administrator grants it to the roles:

    report = install_forms(admin_client)           # once, with an administrator's account
    row = linked_record_row(link_key="health:referral:Task/123", department="health-sindh",
                            record_type="referral", case_code="H-7F3K", status="accepted",
                            external_reference="Task/123", status_note=None,
                            last_update=datetime.now(UTC))
    write_linked_record(client, case_id, row)      # each run; the same link updates in place

Form JSON follows Primero's API, checked in its source (primeroIMS/primero @ 4b95bf9474):
- `POST /api/v2/forms` keeps only `FormSection.permitted_api_params` and, per field,
  `Field.permitted_api_params` (app/models/form_section.rb, app/models/field.rb); anything else,
  such as a field's `editable`, is dropped. Read-only fields are `disabled: true`, as in the seed
  form db/configuration/forms/case/referral_transfer.rb.
- A subform field points at its nested form by the nested form's *numeric* `subform_section_id`;
  the form builder saves the nested form first and then sends that id
  (app/javascript/components/pages/admin/form-builder/reducer.js). The field's name is the key
  of the rows in the case's data, by Primero's convention also the nested form's unique_id
  (db/configuration/forms/case/family_details.rb, services.rb).
- `PATCH /api/v2/forms/:id` with `fields` makes the sent list the form's field list: fields are
  matched by name and merged, and fields not sent are DELETED
  (form_section.rb#update_field_properties). So an update always sends every existing field.
- Modules are set by `module_ids`; a nested form follows its parent's modules
  (form_section.rb#sync_modules). A role may write a form's fields only for records of a module
  the form is attached to (app/services/permitted_form_fields_service.rb).
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Literal

from adapter.errors import PrimeroError, PrimeroForbidden, PrimeroNoOp
from adapter.primero import decision_form
from adapter.vocabulary import CORE_RECORD_TYPES

if TYPE_CHECKING:
    from adapter.primero.client import PrimeroClient
    from adapter.primero.models import Record, UpdateResult

FORM_ID = "linked_department_records"
SUBFORM_ID = "linked_department_records_section"
# The rows live in the case's data under the subform *field's* name (primero-api.md §4).
SUBFORM_FIELD = SUBFORM_ID
DEFAULT_MODULES = ("primeromodule-cp",)
# A record type is a name (the row's select option id); which ones exist is data: the adapter's
# own (CORE_RECORD_TYPES) and those the departments' mapping files declare ([record_types]).
RECORD_TYPE_PATTERN = re.compile(r"^[a-z][a-z0-9_]{0,39}$")
STATUS_NOTE_MAX = 280
TEXT_MAX = 200
# Row ids are uuid5(link_key) in this namespace: the same link always gets the same row, which
# Primero then merges in place instead of appending (record_merge_data_hash_service.rb).
ROW_NAMESPACE = uuid.uuid5(uuid.NAMESPACE_URL, "urn:cpims-adapter:linked-department-records")

FormAction = Literal["created", "updated", "unchanged"]


def _label(text: str) -> dict[str, str]:
    return {"en": text}


def _field(name: str, kind: str, label: str, **extra: Any) -> dict[str, Any]:
    # Row fields carry a `link_` prefix, as Primero's nested fields carry theirs (`service_`,
    # `relation_`): a bare `status` would share its name with the case's own status field.
    # Every field is disabled (read-only in the UI): only the adapter writes these rows.
    return {
        "name": name,
        "type": kind,
        "display_name": _label(label),
        "visible": True,
        "disabled": True,
        **extra,
    }


def record_type_options(record_types: Mapping[str, str] = {}) -> dict[str, str]:
    """The record-type select's options (id → label): the adapter's own record types, then
    ``record_types``, the departments' (``mapped_spec.declared_record_types``)."""
    return {
        **CORE_RECORD_TYPES,
        **{k: v for k, v in record_types.items() if k not in CORE_RECORD_TYPES},
    }


def row_fields(record_types: Mapping[str, str] = {}) -> list[dict[str, Any]]:
    """The fields of one linked-record row, in display order; ``record_types`` are the
    departments' record types (id → label) the record-type select offers besides the core's."""
    options = [
        {"id": name, "display_text": _label(label)}
        for name, label in record_type_options(record_types).items()
    ]
    return [
        _field("link_department", "text_field", "Department"),
        _field("link_record_type", "select_box", "Record type", option_strings_text=options),
        _field("link_external_reference", "text_field", "Reference in the department's system"),
        _field("link_case_code", "text_field", "Department's case code"),
        _field("link_status", "text_field", "Status"),
        _field("link_status_note", "textarea", "Note from the department"),
        _field("link_last_update", "date_field", "Last update", date_include_time=True),
        _field("link_key", "text_field", "Adapter link key", visible=False),
    ]


def subform_definition(
    module_ids: Sequence[str] = DEFAULT_MODULES, record_types: Mapping[str, str] = {}
) -> dict[str, Any]:
    """The nested form section (the row layout), as `POST /api/v2/forms` takes it, offering
    the departments' ``record_types`` (id → label) besides the adapter's own."""
    return {
        "unique_id": SUBFORM_ID,
        "name": _label("Linked department record"),
        "description": _label("One record a department keeps about this case"),
        "parent_form": "case",
        "visible": False,
        "is_nested": True,
        "module_ids": list(module_ids),
        "form_group_id": "services_follow_up",
        "collapsed_field_names": ["link_department", "link_record_type", "link_status"],
        # CPOs see the rows but must not remove them: the adapter would write them back.
        "subform_prevent_item_removal": True,
        "fields": row_fields(record_types),
    }


def form_definition(
    subform_id: int | str, module_ids: Sequence[str] = DEFAULT_MODULES
) -> dict[str, Any]:
    """The parent form section that shows the subform; `subform_id` is the nested form's
    numeric id."""
    return {
        "unique_id": FORM_ID,
        "name": _label("Linked department records"),
        "description": _label(
            "What each department (health, police, birth registration, courts) recorded about "
            "this case, written by cpims-adapter. Read-only."
        ),
        "parent_form": "case",
        "visible": True,
        "is_nested": False,
        "module_ids": list(module_ids),
        # Next to Services (order_form_group 110, order 30 in db/configuration/forms/case/
        # services.rb), where a CPO looks for the outcome of a referral.
        "form_group_id": "services_follow_up",
        "order_form_group": 110,
        "order": 35,
        "fields": [subform_field(subform_id)],
    }


def subform_field(subform_id: int | str) -> dict[str, Any]:
    """The parent form's subform field, linked to the nested form by its numeric id."""
    return {
        "name": SUBFORM_FIELD,
        "type": "subform",
        "display_name": _label("Linked department records"),
        "visible": True,
        "subform_section_id": subform_id,
        "subform_sort_by": "link_last_update",
    }


# --- installing ------------------------------------------------------------------------------


@dataclass(frozen=True)
class FormChange:
    """What install_forms did to one form section."""

    unique_id: str
    action: FormAction
    details: tuple[str, ...] = ()


@dataclass(frozen=True)
class Grant:
    """One permission a Primero administrator must give (install_forms cannot: roles are
    configured by people, and `PATCH /api/v2/roles` would replace a role's whole form list,
    role.rb#update_forms_sections)."""

    role: str
    permission: str
    why: str


@dataclass(frozen=True)
class InstallReport:
    """The outcome of install_forms: one FormChange per form and the grants still needed."""

    forms: tuple[FormChange, ...]
    grants: tuple[Grant, ...]

    @property
    def changed(self) -> bool:
        """True when a form was created or updated."""
        return any(change.action != "unchanged" for change in self.forms)

    def permissions_text(self) -> str:
        """The grants as plain text for an administrator."""
        return "\n".join(f"- {g.role}: {g.permission} ({g.why})" for g in self.grants)


def required_grants(
    module_ids: Sequence[str] = DEFAULT_MODULES, *, approvers_by_role: bool = False
) -> tuple[Grant, ...]:
    """What the roles need for the adapter's jobs, for CPOs to see linked records and for
    supervisors to record decisions. ``approvers_by_role``: the config names approvers by
    role or user group, which the adapter reads with ``GET /api/v2/users``."""
    modules = ", ".join(module_ids)
    integration = "integration role"
    grants = [
        Grant(integration, f"Forms › {FORM_ID}: Read and write", "write linked records"),
        Grant(integration, f"Forms › {decision_form.FORM_ID}: Read", "read supervisors' decisions"),
        Grant(
            integration,
            "Case: change_log",
            "read the record history that proves who recorded a decision",
        ),
        Grant(
            "CPO roles",
            f"Forms › {FORM_ID}: Read; Forms › {decision_form.FORM_ID}: Read",
            "see linked records and decisions on the case",
        ),
        Grant(
            "supervisor roles (the approvers in [decisions])",
            f"Forms › {decision_form.FORM_ID}: Read and write",
            "record S3 approvals and overrides of consent",
        ),
        Grant(integration, f"Modules: {modules}", "the forms are attached to these modules"),
        Grant(integration, "Case: read, write", "read cases and write linked records"),
        Grant(integration, "Case: referral", "refer cases to department gateways"),
        Grant(
            integration,
            "Case: receive_referral",
            "accept, reject and complete referrals on a department's behalf",
        ),
        Grant(integration, "Case: sync_external", "mark_synced write-back (primero-api.md §7)"),
        Grant(integration, "Case: flag", "flag a case for a CPO's attention"),
    ]
    if approvers_by_role:
        grants.append(Grant(integration, "Users: read", "see approvers' roles and user groups"))
    return tuple(grants)


def install_forms(
    client: PrimeroClient,
    *,
    module_ids: Sequence[str] = DEFAULT_MODULES,
    departments: Sequence[str] = (),
    record_types: Mapping[str, str] = {},
    approvers_by_role: bool = False,
) -> InstallReport:
    """Create or complete the adapter's forms — "Linked department records" and, when
    ``departments`` are given, "Disclosure decisions" — safe to run again. ``record_types``
    are the departments' record types (id → label, from their mapping files) the linked
    records' record-type select offers besides the adapter's own.

    Creates each nested form and its parent when missing; adds missing fields, select
    options (a department or a record type added to the config) and modules, and repairs the
    subform link when
    present. Never deletes or renames anything, and leaves labels an administrator changed
    alone. Needs an account with `metadata:manage` (PrimeroForbidden otherwise).
    """
    if not module_ids:
        raise ValueError("module_ids must name at least one Primero module")
    # Each nested form, then its parent (which needs the nested form's numeric id).
    pairs: list[tuple[dict[str, Any], Callable[[int | str], dict[str, Any]]]] = [
        (
            subform_definition(module_ids, record_types),
            lambda sid: form_definition(sid, module_ids),
        )
    ]
    if departments:
        pairs.append(
            (
                decision_form.subform_definition(module_ids, departments),
                lambda sid: decision_form.form_definition(sid, module_ids),
            )
        )
    changes: list[FormChange] = []
    try:
        existing = {f.get("unique_id"): f for f in client.list_forms(record_type="case")}
        for nested, parent in pairs:
            sub_change, subform = _ensure(client, existing.get(nested["unique_id"]), nested)
            wanted = parent(subform["id"])
            parent_change, _ = _ensure(client, existing.get(wanted["unique_id"]), wanted)
            changes += [sub_change, parent_change]
    except PrimeroForbidden as exc:
        raise PrimeroForbidden(
            f"{exc.method} {exc.resource}: this Primero account may not manage forms (403). "
            "install-forms needs the permission metadata:manage (Primero: Settings › Roles › "
            "Forms: Manage). Run it once with an administrator's account, e.g. "
            "CPIMS_ADAPTER_PRIMERO__USERNAME=<admin> CPIMS_ADAPTER_PRIMERO__PASSWORD=<password> "
            "cpims-adapter primero install-forms",
            status=exc.status,
            method=exc.method,
            resource=exc.resource,
        ) from None
    return InstallReport(
        tuple(changes), required_grants(module_ids, approvers_by_role=approvers_by_role)
    )


def _ensure(
    client: PrimeroClient, current: Record | None, wanted: dict[str, Any]
) -> tuple[FormChange, Record]:
    """Create `wanted`, or complete `current` towards it; returns the change and the form."""
    unique_id = wanted["unique_id"]
    if current is None:
        created = client.create_form(wanted)
        if created.get("id") is None:
            raise PrimeroError(f"POST /api/v2/forms: Primero returned no id for {unique_id}.")
        return FormChange(unique_id, "created"), created
    fields = [f for f in current.get("fields") or [] if isinstance(f, dict)]
    by_name = {f.get("name"): f for f in fields}
    details: list[str] = []
    update: dict[str, Any] = {}

    for field in wanted["fields"]:
        have = by_name.get(field["name"])
        if have is not None and have.get("type") != field["type"]:
            # Primero cannot change a field's type (field.rb: attr_readonly :type).
            raise PrimeroError(
                f"Form {unique_id}: field {field['name']} is a {have.get('type')}, not a "
                f"{field['type']}. Rename or remove that field in Primero's form builder, then "
                "run install-forms again."
            )
    missing = [f for f in wanted["fields"] if f["name"] not in by_name]
    widened = {
        f["name"]: _with_options(by_name[f["name"]], f)
        for f in wanted["fields"]
        if f["name"] in by_name and _missing_options(by_name[f["name"]], f)
    }
    relink = [
        f
        for f in wanted["fields"]
        if f["type"] == "subform"
        and f["name"] in by_name
        and str(by_name[f["name"]].get("subform_section_id")) != str(f["subform_section_id"])
    ]
    if missing or relink or widened:
        # Every existing field must be sent, or Primero deletes it (see the module docstring);
        # name and type alone leave an existing field as it is (field.rb#update_properties).
        changed = {f["name"]: f for f in relink} | widened
        kept = [changed.get(f["name"], {"name": f["name"], "type": f["type"]}) for f in fields]
        update["fields"] = kept + missing
        if missing:
            details.append("added fields " + ", ".join(f["name"] for f in missing))
        if relink:
            details.append("linked subform " + ", ".join(f["name"] for f in relink))
        if widened:
            details.append("added options to " + ", ".join(widened))

    modules = list(current.get("module_ids") or [])
    absent = [m for m in wanted["module_ids"] if m not in modules]
    if absent:
        update["module_ids"] = modules + absent  # the union: a module is never detached
        details.append("attached to " + ", ".join(absent))

    if not update:
        return FormChange(unique_id, "unchanged"), current
    updated = client.update_form(current["id"], update)
    return FormChange(unique_id, "updated", tuple(details)), {**current, **updated}


def _option_ids(field: Mapping[str, Any]) -> list[str]:
    options = field.get("option_strings_text")
    if not isinstance(options, list):
        return []
    return [str(o["id"]) for o in options if isinstance(o, Mapping) and "id" in o]


def _missing_options(have: Mapping[str, Any], wanted: Mapping[str, Any]) -> list[str]:
    """Options of a select ``wanted`` offers that the installed field lacks."""
    if wanted.get("type") != "select_box":
        return []
    present = set(_option_ids(have))
    return [o for o in _option_ids(wanted) if o not in present]


def _with_options(have: Mapping[str, Any], wanted: Mapping[str, Any]) -> dict[str, Any]:
    """The installed select with the missing options appended (an administrator's labels and
    order are kept; nothing is removed)."""
    current = [o for o in have.get("option_strings_text") or [] if isinstance(o, Mapping)]
    missing = set(_missing_options(have, wanted))
    added = [o for o in wanted["option_strings_text"] if str(o["id"]) in missing]
    return {
        "name": have["name"],
        "type": have["type"],
        "option_strings_text": [dict(o) for o in current] + added,
    }


# --- writing rows ----------------------------------------------------------------------------


def row_id(link_key: str) -> str:
    """The subform row `unique_id` of a link: the same key always gives the same UUID."""
    return str(uuid.uuid5(ROW_NAMESPACE, link_key))


def linked_record_row(
    *,
    link_key: str,
    department: str,
    record_type: str,
    case_code: str | None,
    external_reference: str | None,
    status: str,
    status_note: str | None,
    last_update: datetime,
) -> dict[str, Any]:
    """One "Linked department records" row, with a deterministic `unique_id` (uuid5 of
    `link_key`), so writing the same link again updates its row instead of adding one.

    Holds only what the CPO may see anyway: the department, the department's pseudonymous
    case code and reference, a status and a short provider note (truncated to
    STATUS_NOTE_MAX characters). Values given as None are left out, so Primero's row merge
    keeps what an earlier write stored (primero-api.md §4).
    """
    if not isinstance(record_type, str) or not RECORD_TYPE_PATTERN.match(record_type):
        # Which names exist is configuration (the mapping files' [record_types], checked when
        # they load; Primero refuses a value its select does not offer): here only the shape.
        raise ValueError(
            "record_type must be a record type name (lowercase letters, digits, '_'), as the "
            "adapter or a mapping file's [record_types] declares it"
        )
    key = _text("link_key", link_key)
    row: dict[str, Any] = {
        "unique_id": row_id(key),
        "link_key": key,
        "link_department": _text("department", department),
        "link_record_type": record_type,
        "link_status": _text("status", status),
        "link_last_update": _utc(last_update),
    }
    optional = {
        "link_case_code": case_code,
        "link_external_reference": external_reference,
    }
    for key, value in optional.items():
        if value is not None:
            row[key] = _text(key.removeprefix("link_"), value)
    if status_note is not None:
        row["link_status_note"] = _note(status_note)
    return row


def _text(name: str, value: str) -> str:
    cleaned = value.strip() if isinstance(value, str) else ""
    if not cleaned:
        raise ValueError(f"{name} must be a non-empty string")
    if len(cleaned) > TEXT_MAX:
        # An identifier cut short would point at another record: refuse rather than truncate.
        raise ValueError(f"{name} is longer than {TEXT_MAX} characters")
    return cleaned


def _note(value: str) -> str:
    note = re.sub(r"\s+", " ", value).strip()
    if len(note) > STATUS_NOTE_MAX:
        note = note[: STATUS_NOTE_MAX - 1].rstrip() + "…"
    return note


def _utc(value: datetime) -> str:
    if not isinstance(value, datetime) or value.tzinfo is None:
        raise ValueError("last_update must be a timezone-aware datetime")
    # Whole seconds in UTC `Z`: a `date_field` with time takes ISO 8601 date-time
    # (record_json_validator_service.rb). isoformat, not strftime: %Y writes year 5 as "5",
    # which Primero refuses (a dead letter: tests/fuzz/test_api_schema.py).
    return value.astimezone(UTC).replace(microsecond=0, tzinfo=None).isoformat() + "Z"


def write_linked_record(
    client: PrimeroClient, case_id: str, row: Mapping[str, Any] | Iterable[Mapping[str, Any]]
) -> UpdateResult:
    """PATCH one row (or several) into the case's linked department records.

    Primero answers 200 even when the role may not write the form and the rows were dropped
    (primero-api.md §4); the client reads them back, and a drop raises PrimeroNoOp naming the
    grant an administrator must give.
    """
    rows = [dict(row)] if isinstance(row, Mapping) else [dict(r) for r in row]
    if not rows or not all(r.get("unique_id") for r in rows):
        raise ValueError("rows must come from linked_record_row (each needs its unique_id)")
    result = client.update_case(case_id, {SUBFORM_FIELD: rows})
    if result.dropped_fields:
        path = f"/api/v2/cases/{case_id}"
        raise PrimeroNoOp(
            f"PATCH {path}: Primero answered 200 but did not store {SUBFORM_FIELD}: the "
            f"integration role may not write the form '{FORM_ID}', or the form is not attached "
            "to this case's module. Run `cpims-adapter primero install-forms` (with an "
            f"administrator's account, --module for each module), then grant the integration "
            f"role Read and write on the form '{FORM_ID}' in Primero (Settings › Roles › Forms).",
            status=200,
            method="PATCH",
            resource=path,
        )
    return result


__all__ = [
    "CORE_RECORD_TYPES",
    "DEFAULT_MODULES",
    "FORM_ID",
    "RECORD_TYPE_PATTERN",
    "STATUS_NOTE_MAX",
    "SUBFORM_FIELD",
    "SUBFORM_ID",
    "FormChange",
    "Grant",
    "InstallReport",
    "form_definition",
    "install_forms",
    "linked_record_row",
    "record_type_options",
    "required_grants",
    "row_fields",
    "row_id",
    "subform_definition",
    "write_linked_record",
]
