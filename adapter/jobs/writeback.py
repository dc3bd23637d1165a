"""Write-back: a department's answer, shown to the CPO inside the Primero case.

Up to four parts, each its own outbox message (kind ``writeback.<part>``) with its own
idempotency key and its own lane, so Primero refusing one part never holds another back:

- ``status``: the referral's own status (accept, reject, done with the provider's note;
  primero-api.md §5.3), moved forward only: a referral at or past the target is left alone.
  The status the adapter last saw is the guess and Primero's answer to each PATCH the check,
  so the referral is not read first (:func:`_referral_status`, docs/primero-requests.md §2);
- ``row``: a row of the "Linked department records" subform (department, case code, external
  reference, status, last update), with a stable ``unique_id``, so a re-sent write updates it
  in place;
- ``fields``: the department's facts in case fields, where the job configures them;
- ``synced``: ``mark_synced`` (Primero's sync status), where the job asks for it.

Why separate messages rather than one message recording which parts succeeded: ``Outbox.due``
hands out one message per lane at a time, oldest first. With one message per write-back, a
part that keeps failing (a role that may not write the form: a normal first-day
misconfiguration) kept the message pending, and every later write-back of that referral
waited behind it — the referral's status stayed ``in_progress`` for good. Per part, each lane
keeps its own order (``accepted`` before ``done``) and retries on its own, and the dead-letter
and ``outbox`` commands show which part is stuck and why.

The row keeps the link's own key as its lane (and the whole message's idempotency key), so a
message queued by an older version (kind ``writeback``, every part in one) stays ordered
before the rows queued after it; :func:`apply_write_back` applies such a message part by part,
each attempted even if an earlier one failed.

A part refused for want of a permission raises ``PrimeroNotPermitted`` naming the grant
(:func:`needed_grant` says it again from the message's kind, for ``status``): it waits for the
administrator, retried and never a dead letter.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any

from adapter.clock import utcnow
from adapter.errors import PrimeroForbidden, PrimeroNoOp, PrimeroNotPermitted
from adapter.mappings.vocabulary import ACCEPTED, COMPLETED, IN_PROGRESS, REJECTED
from adapter.primero import PrimeroClient
from adapter.primero.linked_records import FORM_ID, linked_record_row, write_linked_record
from adapter.state.links import Links
from adapter.state.outbox import NewMessage, lane_key

PRIMERO = "primero"  # the outbox destination of write-backs
PART_STATUS, PART_ROW, PART_FIELDS, PART_SYNCED = "status", "row", "fields", "synced"
PARTS = (PART_STATUS, PART_ROW, PART_FIELDS, PART_SYNCED)
# Every part in one message: what versions before the split queued (still applied).
KIND_WRITEBACK = "writeback"
_PART_KIND_PREFIX = "writeback."
# A held referral's row in "Linked department records" (adapter/jobs/sync.py queues it).
KIND_DECISION_NOTE = "decision_note"
_PART_NAMESPACE = uuid.UUID("2b7e51a4-7d0c-4f7e-b5e3-8a4c0d9f1e63")

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
class NeededGrant:
    """What the integration role lacks for one part: ``target`` names the Primero form, field
    or permission; ``change`` is what an administrator does. Configuration names only."""

    target: str
    change: str

    def __str__(self) -> str:
        return f"the integration role may not write {self.target}: {self.change}"


_ROW_GRANT = NeededGrant(
    f"the form '{FORM_ID}'",
    f"grant it Read and write on the form '{FORM_ID}' in Primero (Settings › Roles › Forms; "
    "the role also needs Case: write), and check the form is attached to the cases' module "
    "(`cpims-adapter primero install-forms --module ID`)",
)
_STATUS_GRANT = NeededGrant(
    "referral statuses",
    "grant it the Case permission 'receive_referral' in Primero (Settings › Roles › Case), "
    "which accepts, rejects and completes referrals",
)
_SYNCED_GRANT = NeededGrant(
    "the case's sync status",
    "grant it the Case permission 'sync_external' in Primero (Settings › Roles › Case), or "
    "set jobs.<name>.mark_synced = false",
)


def _fields_grant(fields: Sequence[str]) -> NeededGrant:
    named = ", ".join(sorted(fields)) if fields else "the configured case fields"
    return NeededGrant(
        f"the case fields {named}",
        "grant it Read and write on the forms that hold them in Primero (Settings › Roles › "
        "Forms), or remove them from jobs.<name>.primero_fields",
    )


def part_kind(part: str) -> str:
    """The outbox kind of one part of a write-back."""
    return f"{_PART_KIND_PREFIX}{part}"


def part_of(kind: str) -> str | None:
    """The part an outbox kind carries (None: the whole write-back, or not a write-back)."""
    if kind.startswith(_PART_KIND_PREFIX) and kind[len(_PART_KIND_PREFIX) :] in PARTS:
        return kind[len(_PART_KIND_PREFIX) :]
    return None


def needed_grant(kind: str, fields: Sequence[str] = ()) -> NeededGrant | None:
    """The grant a Primero message of ``kind`` waits for when it failed with
    ``PrimeroNotPermitted`` (``fields``: the job's configured case fields, to name them)."""
    part = part_of(kind)
    if kind in (KIND_DECISION_NOTE, KIND_WRITEBACK) or part == PART_ROW:
        return _ROW_GRANT
    if part == PART_STATUS:
        return _STATUS_GRANT
    if part == PART_FIELDS:
        return _fields_grant(fields)
    if part == PART_SYNCED:
        return _SYNCED_GRANT
    return None


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


def write_back_messages(
    write_back: WriteBack,
    *,
    idempotency_key: str,
    job: str,
    encrypt: Callable[[bytes, bytes], bytes],
) -> list[NewMessage]:
    """The outbox messages of one write-back: one per part it has, each with its own
    idempotency key (derived from ``idempotency_key``, so a re-read enqueues nothing twice)
    and its own lane. ``encrypt(plain, context)`` seals a payload under its key."""
    parts = [PART_ROW]
    if write_back.referral_id and write_back.status in _REFERRAL_TARGET:
        # A status that moves no referral (requested, cancelled, failed) has no status part:
        # it would be a message that sends nothing (_referral_status).
        parts.insert(0, PART_STATUS)
    if write_back.case_fields:
        parts.append(PART_FIELDS)
    if write_back.mark_synced:
        parts.append(PART_SYNCED)
    body = json.dumps(write_back.to_json(), separators=(",", ":")).encode()
    messages = []
    for part in parts:
        # The row keeps the whole message's key and the link's own lane (module docstring).
        key = (
            idempotency_key
            if part == PART_ROW
            else str(uuid.uuid5(_PART_NAMESPACE, f"{idempotency_key}:{part}"))
        )
        messages.append(
            NewMessage(
                idempotency_key=key,
                job=job,
                destination=PRIMERO,
                kind=part_kind(part),
                link_key=(
                    write_back.link_key if part == PART_ROW else lane_key(write_back.link_key, part)
                ),
                payload=encrypt(body, key.encode()),
            )
        )
    return messages


def last_seen_status(links: Links, write_back: WriteBack, part: str | None) -> str | None:
    """The referral's status as the adapter last saw it (the link's ``primero_status``: the
    pull's copy, or the last write-back's answer), for a message that moves it (``part``
    ``status``, or None: every part, queued by an older version); None otherwise."""
    if part not in (None, PART_STATUS) or not write_back.referral_id:
        return None
    link = links.get(write_back.link_key)
    return link.primero_status if link is not None else None


def apply_part(
    client: PrimeroClient, write_back: WriteBack, part: str, known_status: str | None = None
) -> dict[str, Any]:
    """Apply one part of a write-back; returns the link columns it changed. Raises
    ``PrimeroNotPermitted`` when the integration role may not do it. ``known_status``: the
    referral's status as the adapter last saw it (the link's ``primero_status``), which spares
    reading it from Primero first (:func:`_referral_status`)."""
    if part == PART_STATUS:
        if not write_back.referral_id:
            return {}
        try:
            return {"primero_status": _referral_status(client, write_back, known_status)}
        except PrimeroForbidden as exc:
            raise _not_permitted(exc, _STATUS_GRANT) from exc
    if part == PART_ROW:
        write_row(client, write_back.case_id, _row(write_back))
        return {"written_back_status": write_back.status}
    if part == PART_FIELDS:
        _write_fields(client, write_back)
        return {}
    if part == PART_SYNCED:
        if write_back.mark_synced:
            try:
                client.mark_synced(
                    write_back.case_id,
                    f"urn:cpims-adapter:{write_back.department}",
                    status="synced",
                )
            except (PrimeroNoOp, PrimeroForbidden) as exc:
                raise _not_permitted(exc, _SYNCED_GRANT) from exc
        return {}
    raise ValueError(f"unknown write-back part {part!r}; one of {', '.join(PARTS)}")


def apply_write_back(
    client: PrimeroClient, write_back: WriteBack, known_status: str | None = None
) -> dict[str, Any]:
    """Apply every part of a write-back (a message queued as one, kind ``writeback``); each
    part is tried even if an earlier one failed, then the first failure is raised. Returns
    the link columns changed."""
    changed: dict[str, Any] = {}
    failure: Exception | None = None
    for part in PARTS:
        try:
            changed.update(apply_part(client, write_back, part, known_status))
        except Exception as exc:  # noqa: BLE001 - raised below, once every part was tried
            failure = failure or exc
    if failure is not None:
        raise failure
    return changed


def write_row(client: PrimeroClient, case_id: str, row: Mapping[str, Any]) -> None:
    """Write one "Linked department records" row; a role that may not write the form raises
    ``PrimeroNotPermitted`` (Primero's silent drop, or its 403)."""
    try:
        write_linked_record(client, case_id, row)
    except (PrimeroNoOp, PrimeroForbidden) as exc:
        raise _not_permitted(exc, _ROW_GRANT) from exc


def _row(write_back: WriteBack) -> dict[str, Any]:
    note = write_back.note or write_back.reason
    if write_back.details:
        facts = "; ".join(f"{k}: {v}" for k, v in sorted(write_back.details.items()))
        note = f"{facts}. {note}" if note else facts
    if write_back.outputs:
        note = f"{note or ''} [results: {', '.join(write_back.outputs)}]".strip()
    return linked_record_row(
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


def _write_fields(client: PrimeroClient, write_back: WriteBack) -> None:
    if not write_back.case_fields:
        return
    fields = sorted(write_back.case_fields)
    try:
        updated = client.update_case(write_back.case_id, dict(write_back.case_fields))
    except PrimeroForbidden as exc:
        raise _not_permitted(exc, _fields_grant(fields)) from exc
    if updated.dropped_fields:
        dropped = sorted(updated.dropped_fields)
        path = f"/api/v2/cases/{write_back.case_id}"
        raise PrimeroNotPermitted(
            f"PATCH {path}: Primero did not store {dropped}: grant the integration role write "
            "access to those fields, or remove them from jobs.<name>.primero_fields.",
            grant=str(_fields_grant(dropped)),
            status=200,
            method="PATCH",
            resource=path,
        )


def _not_permitted(exc: PrimeroNoOp | PrimeroForbidden, grant: NeededGrant) -> PrimeroNotPermitted:
    return PrimeroNotPermitted(
        str(exc), grant=str(grant), status=exc.status, method=exc.method, resource=exc.resource
    )


def _referral_status(client: PrimeroClient, write_back: WriteBack, known: str | None) -> str | None:
    """Move the Primero referral towards the department's status, never backwards.

    ``known`` is the status the adapter last saw (the link's ``primero_status``: what the pull
    read, or what the last write-back's answer said). Primero's referral statuses only move
    forward (in_progress → accepted → done, in_progress → rejected, any → revoked;
    referral.rb), so the referral is at ``known`` or past it, and a PATCH Primero does not
    allow is a 200 that changes nothing and answers the status the referral has
    (``move_referral``). So ``known`` is the guess and each PATCH's answer the check — no
    listing of the case's referrals first:

    - nothing to do by ``known`` (no target, already there, final, or a rejection of an
      accepted referral, which Primero refuses): no request at all; the pull sees anything
      newer and records it on the link;
    - otherwise the moves from ``known`` to the target (accept, then done), each stopping at
      an answer that is not the step's status (revoked, rejected or done meanwhile):
      that status is returned and recorded, and nothing more is sent;
    - redelivered after a crash, the same PATCHes answer the status already reached (a
      repeated move is a no-op in Primero), so the outcome is the same.

    Without ``known`` (a link written by an older version) the referral is read first, as
    before."""
    assert write_back.referral_id is not None
    case_id, referral_id = write_back.case_id, write_back.referral_id
    target = _REFERRAL_TARGET.get(write_back.status)
    current = known if known else _current_status(client, case_id, referral_id)
    if target is None or current is None or current == target or current in _FINAL:
        return current
    if target == "rejected":
        if current != "in_progress":
            return current  # Primero rejects only from in_progress (primero-api.md §5.3)
        reason = write_back.reason or write_back.note or ""
        return _moved(client, write_back, "rejected", rejected_reason=reason)
    if current == "in_progress":
        current = _moved(client, write_back, "accepted")
        if current != "accepted":
            return current  # revoked (or already done) meanwhile: stop, recorded on the link
    if target == "done":
        current = _moved(client, write_back, "done", rejection_note=write_back.note or "")
    return current


def _moved(client: PrimeroClient, write_back: WriteBack, status: str, **fields: str) -> str:
    """One PATCH towards ``status``; the status Primero answers (the check)."""
    assert write_back.referral_id is not None
    answer = client.move_referral(write_back.case_id, write_back.referral_id, status, **fields)
    return str(answer["status"])


def _current_status(client: PrimeroClient, case_id: str, referral_id: str) -> str | None:
    for referral in client.list_referrals(case_id):
        if str(referral.get("id")) == referral_id:
            status = referral.get("status")
            return str(status) if status else None
    return None
