"""A simulated department with no API of its own design: any collection of JSON documents.

The peer for a department that is "a mapping file plus config" (issue item 1), e.g. education:

- ``POST /{collection}`` (the body needs ``referral_key``), ``PUT /{collection}/{referral_key}``,
  ``POST /{collection}/{referral_key}/cancel`` and ``…/erase``;
- ``GET /changes?since=&limit=``: records whose status the department changed.

Control: ``POST /_sim/referrals/{referral_key}/status`` (``accepted``, ``enrolled``, …).
"""

from __future__ import annotations

from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse

from adapter.simulator.departments import intake
from adapter.simulator.departments.app import error, idempotent, state_of
from adapter.simulator.departments.state import Json, Record

router = APIRouter()


def _receipt(record: Record) -> Json:
    return {"id": record.record_id, "status": "received"}


@router.get("/changes")
async def changes(request: Request) -> Response:
    state = state_of(request)
    since = request.query_params.get("since")
    limit = int(request.query_params.get("limit", "100"))
    with state.lock:
        items = [
            {
                "referral_key": r.referral_key,
                "id": r.record_id,
                "collection": r.collection,
                "status": r.status,
                "note": r.note,
                "reason": r.reason,
                "updated_at": r.updated_at,
                **r.outcome,
            }
            for r in state.changes(since, limit)
        ]
    return JSONResponse({"items": items})


@router.post("/{collection}")
async def receive(collection: str, request: Request) -> Response:
    state = state_of(request)
    return await idempotent(
        request, lambda body: intake.receive(state, body, collection, "DOC", _receipt)
    )


@router.put("/{collection}/{referral_key}")
async def update(collection: str, referral_key: str, request: Request) -> Response:
    state = state_of(request)
    return await idempotent(
        request, lambda body: intake.update(state, referral_key, body, _receipt)
    )


@router.post("/{collection}/{referral_key}/{action}")
async def act(collection: str, referral_key: str, action: str, request: Request) -> Response:
    state = state_of(request)
    if action == "cancel":
        return await idempotent(request, lambda body: intake.cancel(state, referral_key, body))
    if action == "erase":
        return await idempotent(request, lambda body: intake.erase(state, referral_key))
    return error(404, "unknown action: use cancel or erase")
