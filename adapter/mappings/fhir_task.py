"""A department's Task read back, and the few changes the adapter makes to what it sent: pure.

Reading: the receiver moves the Task through requested → accepted/rejected → in-progress →
completed/failed/cancelled and may set businessStatus, statusReason, notes and outputs (a
medico-legal report is a DocumentReference on Task.output, departments.md §1). Tasks are found again
by the referral identifier we put on them; a Task without it is not ours and maps to None. A Task
without ``focus`` is still at the anonymous capacity-probe stage (adapter/mappings/fhir_probe.py):
:attr:`TaskUpdate.linked` says which stage a referral is in.

Changing: :func:`linked_task` (identified stage: focus/for added to the probe's Task),
:func:`cancelled_task` (referral revoked or consent withdrawn) and :func:`withdrawn_consent`
(the deletion request). Each takes the resource as the server sent it and returns the whole
resource to PUT back, or None when there is nothing to change (so a repeat sends nothing). None
of them ever touches the receiver's ``status`` except cancelling.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from fhir.resources.R4B.codeableconcept import CodeableConcept
from fhir.resources.R4B.consent import Consent
from fhir.resources.R4B.identifier import Identifier
from fhir.resources.R4B.reference import Reference
from fhir.resources.R4B.task import Task
from pydantic import ValidationError

from adapter.errors import MappingError
from adapter.mappings import fhir_codes as codes
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
    (never log it). ``linked`` is True once the Task points at the referral (``focus``): False
    means the referral is at the anonymous capacity-probe stage.
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
    linked: bool = False

    @property
    def is_final(self) -> bool:
        """True when the receiver has finished with the referral, one way or another."""
        return self.status in FINAL_STATUSES


def task_update_from_json(resource: Mapping[str, Any]) -> TaskUpdate | None:
    """Read a Task (JSON as the server sent it); None when it carries no referral key of ours.

    Raises MappingError (naming element paths only) when it is not a valid R4 Task.
    """
    task: Task = _parse(Task, resource)
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
        linked=task.focus is not None,
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


# --- the adapter's changes -------------------------------------------------------------------

_LITERAL = re.compile(r"^([A-Z][A-Za-z]+)/([A-Za-z0-9\-.]{1,64})$")
#: Statuses in which the receiver has settled the referral. Cancelling would write over its
#: outcome (a completed medico-legal examination stays completed), so cancel leaves them.
_SETTLED = FINAL_STATUSES


def linked_task(
    task: Mapping[str, Any], *, service_request_ref: str, patient_ref: str
) -> dict[str, Any] | None:
    """The probe's Task pointing at the identified referral, or None when it already does.

    Adds ``focus`` → ServiceRequest and ``for`` → Patient (literal references such as
    ``ServiceRequest/12``), turns our ``capacity-check`` code into R4's ``fulfill``, and sets our
    businessStatus ``referral-details-sent`` unless the receiver has set its own. The receiver's
    ``status`` is never touched. A Task already pointing at *another* ServiceRequest or Patient is
    a MappingError: a mixed-up referral must stop, not be silently repointed.

    The Task is validated as R4B only when something is to be written (the whole resource to
    PUT, :func:`_if_changed`): a Task already linked is returned as None without a model built,
    since the caller reads it through :func:`task_update_from_json`, which validates it (one
    validation per referral instead of two; issue 15).
    """
    _literal(service_request_ref, "ServiceRequest", "service_request_ref")
    _literal(patient_ref, "Patient", "patient_ref")
    changed = _editable(task, "Task")
    for element, wanted in (("focus", service_request_ref), ("for", patient_ref)):
        present = task.get(element)
        current = present.get("reference") if isinstance(present, Mapping) else None
        if (present is not None and not isinstance(present, Mapping)) or not isinstance(
            current, str | None
        ):
            raise MappingError(f"Task failed FHIR R4B validation at ['{element}'] (a Reference)")
        if current is None:
            changed[element] = {"reference": wanted}
        elif _relative(current) != wanted:
            raise MappingError(
                f"Task.{element} already points at another resource: the referral key is "
                "shared by two referrals, or the references are from another server"
            )
    if _has_coding(task.get("code"), codes.TASK_CAPACITY_CHECK):
        changed["code"] = {"coding": [dict(codes.TASK_FULFILL)]}
    business = task.get("businessStatus")
    if business is None or _has_system(business, codes.REFERRAL_STAGE_SYSTEM):
        changed["businessStatus"] = {"coding": [dict(codes.STAGE_DETAILS_SENT)]}
    return _if_changed(Task, task, changed)


def cancelled_task(task: Mapping[str, Any], reason_code: str) -> dict[str, Any] | None:
    """The Task cancelled with a coded ``statusReason``, or None when there is nothing to do.

    Nothing to do: the Task is already cancelled (by us or by the receiver), or the receiver has
    settled it (completed, rejected, failed, entered-in-error), whose outcome stands. A withdrawn
    consent still reaches the department through :func:`withdrawn_consent`.
    """
    reason = codes.CANCEL_REASONS.get(reason_code)
    if reason is None:
        raise MappingError(f"reason_code must be one of {sorted(codes.CANCEL_REASONS)}")
    _parse(Task, task)
    if task.get("status") in _SETTLED:
        return None
    changed = _editable(task, "Task")
    changed["status"] = "cancelled"
    changed["statusReason"] = {"coding": [dict(reason)]}
    return _if_changed(Task, task, changed)


def withdrawn_consent(consent: Mapping[str, Any]) -> dict[str, Any] | None:
    """The Consent set ``inactive``, or None when it already is (or was entered in error).

    With the Task cancelled for ``consent-withdrawn``, this is the deletion request privacy.md
    §6.3 asks for: the department sees that the basis of the disclosure is gone and must erase.
    """
    _parse(Consent, consent)
    if consent.get("status") in ("inactive", "entered-in-error"):
        return None
    changed = _editable(consent, "Consent")
    changed["status"] = "inactive"
    return _if_changed(Consent, consent, changed)


def _editable(resource: Mapping[str, Any], resource_type: str) -> dict[str, Any]:
    """A deep copy to PUT back: version and timestamp dropped, the server assigns them (a stale
    ``meta.versionId`` in a body is refused by some servers; If-Match carries the version)."""
    if resource.get("resourceType") != resource_type:
        raise MappingError(f"expected a {resource_type} resource")
    body = copy.deepcopy(dict(resource))
    meta = body.get("meta")
    if isinstance(meta, dict):
        meta.pop("versionId", None)
        meta.pop("lastUpdated", None)
        if not meta:
            del body["meta"]
    return body


def _if_changed(
    model: type[Task] | type[Consent], before: Mapping[str, Any], after: dict[str, Any]
) -> dict[str, Any] | None:
    unchanged = {k: v for k, v in after.items() if k != "meta"} == {
        k: v for k, v in before.items() if k != "meta"
    }
    if unchanged:
        return None
    _parse(model, after)  # never PUT what would not validate: the server's copy stays whole
    return after


def _parse(model: type[Any], resource: Mapping[str, Any]) -> Any:
    name = model.__name__
    if resource.get("resourceType") != name:
        raise MappingError(f"expected a {name} resource")
    try:
        return model.model_validate(dict(resource))
    except ValidationError as exc:
        # pydantic's messages quote input values; keep the element paths and error kinds only.
        where = sorted(
            {".".join(str(p) for p in e["loc"]) + f" ({e['type']})" for e in exc.errors()}
        )
        raise MappingError(f"{name} failed FHIR R4B validation at {where}") from None


def _literal(reference: object, resource_type: str, field_name: str) -> None:
    match = _LITERAL.match(reference) if isinstance(reference, str) else None
    if match is None or match.group(1) != resource_type:
        raise MappingError(f"{field_name} must be a literal reference '{resource_type}/<id>'")


def _relative(reference: str) -> str:
    """``Type/id`` of a relative or absolute literal reference (``_history`` dropped)."""
    parts = reference.split("/_history/")[0].rstrip("/").split("/")
    return "/".join(parts[-2:])


def _has_coding(concept: Any, coding: Mapping[str, str]) -> bool:
    return isinstance(concept, Mapping) and any(
        isinstance(c, Mapping)
        and c.get("system") == coding["system"]
        and c.get("code") == coding["code"]
        for c in concept.get("coding") or []
    )


def _has_system(concept: Any, system: str) -> bool:
    return isinstance(concept, Mapping) and any(
        isinstance(c, Mapping) and c.get("system") == system for c in concept.get("coding") or []
    )
