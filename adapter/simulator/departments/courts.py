"""A simulated court case-management system: case summaries in, court orders out.

No Pakistani court publishes an API; the court-order record follows the minimum of
departments.md §5 (court, case number and year, order number, date, type, next hearing,
status), with OASIS ECF / NIEM only as vocabulary.

- ``POST /api/v1/case-summaries``: the child protection unit's case summary for proceedings;
  ``PUT /api/v1/case-summaries/{referral_key}``; ``POST …/{referral_key}/withdraw`` (the
  referral was revoked) and ``…/erase`` (consent withdrawn).
- ``GET /api/v1/court-orders?since=&limit=``: orders made or changed since then.

Control: ``POST /_sim/referrals/{referral_key}/order`` records an order (``order_number`` is the
next docket entry if omitted); ``POST /_sim/referrals/{key}/status`` varies or discharges it.
"""

from __future__ import annotations

from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse

from adapter.simulator.departments import intake
from adapter.simulator.departments.app import error, find, idempotent, read_json, state_of
from adapter.simulator.departments.state import Json, Record
from adapter.vocabulary import COURT_ORDER_TYPES

router = APIRouter(prefix="/api/v1")
control = APIRouter(prefix="/_sim")


def _receipt(record: Record) -> Json:
    return {"filing_id": record.record_id, "status": "filed"}


@router.post("/case-summaries")
async def case_summary(request: Request) -> Response:
    state = state_of(request)
    return await idempotent(
        request, lambda body: intake.receive(state, body, "case_summary", "CF", _receipt)
    )


@router.put("/case-summaries/{referral_key}")
async def update(referral_key: str, request: Request) -> Response:
    state = state_of(request)
    return await idempotent(
        request, lambda body: intake.update(state, referral_key, body, _receipt)
    )


@router.post("/case-summaries/{referral_key}/withdraw")
async def withdraw(referral_key: str, request: Request) -> Response:
    state = state_of(request)
    return await idempotent(request, lambda body: intake.cancel(state, referral_key, body))


@router.post("/case-summaries/{referral_key}/erase")
async def erase(referral_key: str, request: Request) -> Response:
    state = state_of(request)
    return await idempotent(request, lambda body: intake.erase(state, referral_key))


@router.get("/court-orders")
async def court_orders(request: Request) -> Response:
    state = state_of(request)
    since = request.query_params.get("since")
    limit = int(request.query_params.get("limit", "100"))
    with state.lock:
        items = [court_order(r) for r in state.changes(since, limit)]
    return JSONResponse({"items": items})


def court_order(record: Record) -> Json:
    return {
        "referral_key": record.referral_key,
        "filing_id": record.record_id,
        "status": record.status,
        "reason": record.reason,
        "updated_at": record.updated_at,
        **record.outcome,
    }


@control.post("/referrals/{referral_key}/order")
async def make_order(referral_key: str, request: Request) -> Response:
    """``{court{type, name, district}, case_number, case_year, order_type, order_date,
    next_hearing_date?, order_number?, status?}``: the court makes an order in the case."""
    body = await read_json(request)
    if not isinstance(body, dict) or body.get("order_type") not in COURT_ORDER_TYPES:
        return error(422, f"order_type must be one of {', '.join(COURT_ORDER_TYPES)}")
    state = state_of(request)
    with state.lock:
        record = find(state, referral_key)
        if record is None:
            return error(404, "no such case summary")
        order = {k: v for k, v in body.items() if k != "status"}
        order.setdefault("order_number", state.next_id("ORD"))
        state.report(record, str(body.get("status", "active")), **order)
        return JSONResponse(court_order(record), status_code=201)
