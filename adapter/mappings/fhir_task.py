"""A department's Task read back into the small record the adapter acts on: pure, no I/O.

The receiver moves the Task through requested → accepted/rejected → in-progress → completed
/failed/cancelled and may set businessStatus, statusReason, notes and outputs (a medico-legal
report is a DocumentReference on Task.output, departments.md §1). Tasks are found again by the
referral identifier we put on them; a Task without it is not ours and maps to None.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from fhir.resources.R4B.codeableconcept import CodeableConcept
from fhir.resources.R4B.identifier import Identifier
from fhir.resources.R4B.reference import Reference
from fhir.resources.R4B.task import Task
from pydantic import ValidationError

from adapter.errors import MappingError
from adapter.mappings.fhir_codes import REFERRAL_SYSTEM

#: Task.status values after which the receiver will not change the Task again (R4 task-status).
FINAL_STATUSES = frozenset({"completed", "rejected", "failed", "cancelled", "entered-in-error"})


@dataclass(frozen=True)
class TaskOutput:
    """One Task.output: what kind (``type``: its first code, else its text) and where.

    ``reference`` is a literal reference (``DocumentReference/123``); ``identifier`` is
    ``system|value`` for an output given by identifier. Other value types are kept as their
    FHIR element name in ``value_type`` with neither set.
    """

    type: str | None
    value_type: str
    reference: str | None = None
    identifier: str | None = None


@dataclass(frozen=True)
class TaskUpdate:
    """Where a referral stands at the department, as of ``last_updated`` / ``version``.

    ``business_status`` and ``status_reason`` are the first coding's code, else the concept's
    text. ``note`` is the receiver's free text: it may be personal data, so treat it as case data
    (never log it).
    """

    referral_key: str
    task_id: str | None
    status: str
    business_status: str | None
    status_reason: str | None
    note: tuple[str, ...]
    outputs: tuple[TaskOutput, ...]
    last_updated: datetime | None
    version: str | None

    @property
    def is_final(self) -> bool:
        """True when the receiver has finished with the referral, one way or another."""
        return self.status in FINAL_STATUSES


def task_update_from_json(resource: Mapping[str, Any]) -> TaskUpdate | None:
    """Read a Task (JSON as the server sent it); None when it carries no referral key of ours.

    Raises MappingError (naming element paths only) when it is not a valid R4 Task.
    """
    if resource.get("resourceType") != "Task":
        raise MappingError("expected a Task resource")
    try:
        task = Task.model_validate(dict(resource))
    except ValidationError as exc:
        where = sorted(
            {".".join(str(p) for p in e["loc"]) + f" ({e['type']})" for e in exc.errors()}
        )
        raise MappingError(f"Task failed FHIR R4B validation at {where}") from None
    referral_key = _referral_key(task.identifier or [])
    if referral_key is None:
        return None
    meta = task.meta
    return TaskUpdate(
        referral_key=referral_key,
        task_id=task.id,
        status=str(task.status),
        business_status=_concept(task.businessStatus),
        status_reason=_concept(task.statusReason),
        note=tuple(str(n.text) for n in task.note or [] if n.text),
        outputs=tuple(_output(o) for o in task.output or []),
        last_updated=meta.lastUpdated if meta is not None else None,
        version=meta.versionId if meta is not None else None,
    )


def _referral_key(identifiers: list[Identifier]) -> str | None:
    for ident in identifiers:
        if ident.system == REFERRAL_SYSTEM and ident.value:
            return str(ident.value)
    return None


def _concept(concept: CodeableConcept | None) -> str | None:
    if concept is None:
        return None
    for coding in concept.coding or []:
        if coding.code:
            return str(coding.code)
    return str(concept.text) if concept.text else None


def _output(output: Any) -> TaskOutput:
    kind = _concept(output.type)
    reference: Reference | None = output.valueReference
    if reference is not None:
        ident = reference.identifier
        return TaskOutput(
            type=kind,
            value_type="valueReference",
            reference=reference.reference,
            identifier=f"{ident.system or ''}|{ident.value}" if ident and ident.value else None,
        )
    identifier: Identifier | None = output.valueIdentifier
    if identifier is not None and identifier.value:
        return TaskOutput(
            type=kind,
            value_type="valueIdentifier",
            identifier=f"{identifier.system or ''}|{identifier.value}",
        )
    present = [name for name in type(output).model_fields if name.startswith("value")]
    value_type = next((n for n in present if getattr(output, n) is not None), "value")
    return TaskOutput(type=kind, value_type=value_type.removesuffix("__ext"))
