"""The "Disclosure decisions" form: where a supervisor records, on the case, a decision that
lets a held referral leave (an S3 approval, or an override of consent).

Why a form of the adapter's and not Primero's native approvals: an ``Approval``'s type is one
of a fixed list (app/models/approval.rb: ``assessment``, ``case_plan``, ``closure``,
``action_plan``, ``gbv_closure``), it carries no department, basis or legal reference, and its
request/approve pair is per case, not per disclosure. A subform row carries all of it, shows
in the case next to "Linked department records", and Primero's record history says who wrote
it (adapter/privacy/decisions.py proves authorship from that history, never from a value).

The field names are the privacy layer's (adapter/privacy/decisions.py): a row is
``{decision_department, decision_basis, decision_legal_reference, decision_reason}``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from adapter.privacy.decisions import (
    BASIS,
    BASIS_LABELS,
    DECISIONS_FIELD,
    DEPARTMENT,
    LEGAL_REFERENCE,
    REASON,
)

FORM_ID = "disclosure_decisions"
SUBFORM_ID = DECISIONS_FIELD


def _label(text: str) -> dict[str, str]:
    return {"en": text}


def _options(values: Sequence[tuple[str, str]]) -> list[dict[str, Any]]:
    return [{"id": value, "display_text": _label(text)} for value, text in values]


def row_fields(departments: Sequence[str]) -> list[dict[str, Any]]:
    """The fields of one decision row, in display order. ``departments`` are the adapter's
    configured departments (the select's options)."""
    return [
        {
            "name": DEPARTMENT,
            "type": "select_box",
            "display_name": _label("Disclose to department"),
            "visible": True,
            "required": True,
            "option_strings_text": _options(
                [(d, d.replace("_", " ").title()) for d in departments]
            ),
        },
        {
            "name": BASIS,
            "type": "select_box",
            "display_name": _label("Basis"),
            "visible": True,
            "required": True,
            "option_strings_text": _options(list(BASIS_LABELS.items())),
        },
        {
            "name": LEGAL_REFERENCE,
            "type": "text_field",
            "display_name": _label("Legal reference (Act and section, or order number)"),
            "visible": True,
        },
        {
            "name": REASON,
            "type": "textarea",
            "display_name": _label("Reason (stays in Primero; never sent to a department)"),
            "visible": True,
        },
    ]


def subform_definition(module_ids: Sequence[str], departments: Sequence[str]) -> dict[str, Any]:
    """The nested form section (one decision per row), as `POST /api/v2/forms` takes it."""
    return {
        "unique_id": SUBFORM_ID,
        "name": _label("Disclosure decision"),
        "description": _label("A supervisor's decision that lets a held referral leave"),
        "parent_form": "case",
        "visible": False,
        "is_nested": True,
        "module_ids": list(module_ids),
        "form_group_id": "services_follow_up",
        "collapsed_field_names": [DEPARTMENT, BASIS],
        "fields": row_fields(departments),
    }


def form_definition(subform_id: int | str, module_ids: Sequence[str]) -> dict[str, Any]:
    """The parent form section that shows the subform (``subform_id``: the nested form's
    numeric id)."""
    return {
        "unique_id": FORM_ID,
        "name": _label("Disclosure decisions"),
        "description": _label(
            "Supervisors only: approve a restricted (S3) disclosure, or decide to disclose "
            "without consent (mandatory report, risk to life, court order, best interests). "
            "cpims-adapter checks in the case's history who recorded each decision; a decision "
            "by anyone else, or by the referring officer, is refused. Remove a row to revoke it."
        ),
        "parent_form": "case",
        "visible": True,
        "is_nested": False,
        "module_ids": list(module_ids),
        "form_group_id": "services_follow_up",
        "order_form_group": 110,
        "order": 36,  # just after "Linked department records" (35)
        "fields": [
            {
                "name": DECISIONS_FIELD,
                "type": "subform",
                "display_name": _label("Disclosure decisions"),
                "visible": True,
                "subform_section_id": subform_id,
            }
        ],
    }


__all__ = ["FORM_ID", "SUBFORM_ID", "form_definition", "row_fields", "subform_definition"]
