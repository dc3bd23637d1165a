"""Write-back: a department's answer, shown to the CPO inside the Primero case.

Two places in Primero: the referral's own status (accept, reject, done with the provider's
note; primero-api.md §5.3) and a row of the "Linked department records" subform (department,
case code, external reference, status, last update). Both are idempotent: a referral already at
or past the target status is left alone (Primero would answer a silent 200 no-op anyway), and
the subform row has a stable ``unique_id``, so a re-sent write updates it in place.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any

from adapter.departments.base import ACCEPTED, COMPLETED, IN_PROGRESS, REJECTED
from adapter.errors import PrimeroNoOp
from adapter.primero import PrimeroClient
from adapter.primero.linked_records import linked_record_row, write_linked_record
from adapter.state.types import utcnow

# The adapter's status → the Primero referral status it implies (None: no change).
_REFERRAL_TARGET = {
    ACCEPTED: "accepted",
    IN_PROGRESS: "accepted",
    COMPLETED: "done",
    REJECTED: "rejected",
}
# Primero referral statuses after which nothing can change (primero-api.md §5.3).
_FINAL = {"done", "rejected", "revoked"}


@dataclass(frozen=True)
class WriteBack:
    """One status to show in Primero. Serialised (encrypted) into the outbox."""

    link_key: str
    department: str
    case_id: str
    referral_id: str | None
    case_code: str
    status: str
    reason: str | None
    note: str | None
    outputs: tuple[str, ...]
    external_ref: str | None
    updated_at: str | None
    mark_synced: bool = False
    record_type: str = "referral"
    # Department-defined facts for the linked record (e.g. FIR sections), text only.
    details: Mapping[str, str] = field(default_factory=dict)
    # Primero case fields to set from those facts, where the job configures it.
    case_fields: Mapping[str, str] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["outputs"] = list(self.outputs)
        data["details"] = dict(self.details)
        data["case_fields"] = dict(self.case_fields)
        return data

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> WriteBack:
        values = dict(data)
        values["outputs"] = tuple(values.get("outputs") or ())
        values["details"] = dict(values.get("details") or {})
        values["case_fields"] = dict(values.get("case_fields") or {})
        return cls(**values)


def apply_write_back(client: PrimeroClient, write_back: WriteBack) -> dict[str, Any]:
    """Apply one write-back; returns the link columns it changed."""
    changed: dict[str, Any] = {}
    if write_back.referral_id:
        changed["primero_status"] = _referral_status(client, write_back)
    note = write_back.note or write_back.reason
    if write_back.details:
        facts = "; ".join(f"{k}: {v}" for k, v in sorted(write_back.details.items()))
        note = f"{facts}. {note}" if note else facts
    if write_back.outputs:
        note = f"{note or ''} [results: {', '.join(write_back.outputs)}]".strip()
    row = linked_record_row(
        link_key=write_back.link_key,
        department=write_back.department,
        record_type=write_back.record_type,
        case_code=write_back.case_code,
        external_reference=write_back.external_ref,
        status=write_back.status,
        status_note=note,
        last_update=(
            datetime.fromisoformat(write_back.updated_at) if write_back.updated_at else utcnow()
        ),
    )
    write_linked_record(client, write_back.case_id, row)
    if write_back.case_fields:
        updated = client.update_case(write_back.case_id, dict(write_back.case_fields))
        if updated.dropped_fields:
            raise PrimeroNoOp(
                f"PATCH /api/v2/cases/{write_back.case_id}: Primero did not store "
                f"{sorted(updated.dropped_fields)}: grant the integration role write access to "
                "those fields, or remove them from jobs.<name>.primero_fields.",
                status=200,
                method="PATCH",
                resource=f"/api/v2/cases/{write_back.case_id}",
            )
    if write_back.mark_synced:
        client.mark_synced(
            write_back.case_id, f"urn:cpims-adapter:{write_back.department}", status="synced"
        )
    return changed


def _referral_status(client: PrimeroClient, write_back: WriteBack) -> str | None:
    """Move the Primero referral towards the department's status, never backwards."""
    assert write_back.referral_id is not None
    target = _REFERRAL_TARGET.get(write_back.status)
    current = _current_status(client, write_back.case_id, write_back.referral_id)
    if target is None or current is None or current == target or current in _FINAL:
        return current
    case_id, referral_id = write_back.case_id, write_back.referral_id
    if target == "rejected":
        if current != "in_progress":
            return current  # Primero rejects only from in_progress (primero-api.md §5.3)
        client.reject_referral(case_id, referral_id, write_back.reason or write_back.note or "")
        return "rejected"
    if current == "in_progress":
        client.accept_referral(case_id, referral_id)
        current = "accepted"
    if target == "done":
        client.complete_referral(case_id, referral_id, write_back.note or "")
        current = "done"
    return current


def _current_status(client: PrimeroClient, case_id: str, referral_id: str) -> str | None:
    for referral in client.list_referrals(case_id):
        if str(referral.get("id")) == referral_id:
            status = referral.get("status")
            return str(status) if status else None
    return None
