"""Code lists that several parts of the adapter read: one home each.

The inbound API (``adapter.api.schemas``), the file importer (``adapter.departments.csv_import``)
and the simulators all check the same codes; a code added here is accepted everywhere at once.
Each list is a ``Literal`` (so pydantic and the OpenAPI document show the choices) with its
values as a tuple beside it for code that needs them at run time.

Department-specific vocabularies that are data — a department's record types, their labels
and the department's status words — live in its mapping file (``[record_types]``,
``config/mappings/README.md``), not here.
"""

from __future__ import annotations

from typing import Literal, get_args

# The record types the adapter writes itself into a case's "Linked department records" (each
# → its label in the row's record-type select). A department's own record types (an FIR, a
# court order, a school enrolment) are declared in its mapping file ([record_types]).
CORE_RECORD_TYPES: dict[str, str] = {
    "referral": "Referral",
    "deletion_request": "Deletion request",
}

# Primero's default lookup-protection-concerns (primero-api.md §6; the simulator's lookups).
ProtectionConcern = Literal[
    "sexually_exploited",
    "gbv_survivor",
    "trafficked_smuggled",
    "statelessness",
    "arrested_detained",
    "migrant",
    "disabled",
    "serious_health_issue",
    "refugee",
    "caafag",
    "street_child",
    "child_mother",
    "physically_or_mentally_abused",
    "living_with_vulnerable_person",
    "child_labour",
    "child_headed_household",
    "mentally_distressed",
    "other",
]
PROTECTION_CONCERNS: tuple[str, ...] = get_args(ProtectionConcern)

# Court-order codes (departments.md §5, from ECF/NIEM vocabulary and JJSA 2018).
CourtOrderType = Literal[
    "placement",
    "custody",
    "guardianship",
    "supervision",
    "committal",
    "diversion",
    "bail",
    "protection",
    "reunification",
    "production",
    "age_determination",
]
COURT_ORDER_TYPES: tuple[str, ...] = get_args(CourtOrderType)

# Where a court order stands (departments.md §5).
CourtOrderStatus = Literal["active", "varied", "discharged", "appealed"]
COURT_ORDER_STATUSES: tuple[str, ...] = get_args(CourtOrderStatus)

__all__ = [
    "CORE_RECORD_TYPES",
    "COURT_ORDER_STATUSES",
    "COURT_ORDER_TYPES",
    "PROTECTION_CONCERNS",
    "CourtOrderStatus",
    "CourtOrderType",
    "ProtectionConcern",
]
