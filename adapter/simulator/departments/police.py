"""A simulated police system (PSRMS-like): protection referrals in, FIR links out.

Sindh has no documented police API (departments.md §4), so this is the simple JSON record §4
recommends. API (under ``/api/v1``; every write needs ``Idempotency-Key``):

- ``POST /referrals``: a protection referral; ``POST /juvenile-referrals``: a child in conflict
  with the law, for the juvenile desk (JJSA 2018). Answer ``{referral_id, status}``.
- ``PUT /referrals/{referral_key}``: the case changed; ``POST /referrals/{referral_key}/cancel``
  and ``/erase`` (consent withdrawn: the body is dropped).
- ``GET /fir-links?updated_since=&limit=``: FIR links changed since then, oldest first.

Control: ``POST /_sim/referrals/{referral_key}/fir`` registers the FIR (station, year, serial —
the next annual serial of the station if omitted, Police Rules 1934 r.24.5 — sections,
investigating officer, medico-legal requirement, status); ``POST /_sim/referrals/{key}/status``
moves it on (``under_investigation``, ``challan_submitted``, ``cancelled``) or declines it.
"""

from __future__ import annotations

from datetime import UTC, datetime

from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse

from adapter.simulator.departments import intake
from adapter.simulator.departments.app import error, find, idempotent, read_json, state_of
from adapter.simulator.departments.state import DepartmentState, Json, Record

router = APIRouter(prefix="/api/v1")
control = APIRouter(prefix="/_sim")
FIR_STATUSES = ("registered", "under_investigation", "challan_submitted", "cancelled")


def _receipt(record: Record) -> Json:
    return {"referral_id": record.record_id, "status": "received"}


@router.post("/referrals")
async def referral(request: Request) -> Response:
    state = state_of(request)
    return await idempotent(
        request, lambda body: intake.receive(state, body, "protection", "PR", _receipt)
    )


@router.post("/juvenile-referrals")
async def juvenile_referral(request: Request) -> Response:
    state = state_of(request)
    return await idempotent(
        request, lambda body: intake.receive(state, body, "juvenile", "JR", _receipt)
    )


@router.put("/referrals/{referral_key}")
async def update(referral_key: str, request: Request) -> Response:
    state = state_of(request)
    return await idempotent(
        request, lambda body: intake.update(state, referral_key, body, _receipt)
    )


@router.post("/referrals/{referral_key}/cancel")
async def cancel(referral_key: str, request: Request) -> Response:
    state = state_of(request)
    return await idempotent(request, lambda body: intake.cancel(state, referral_key, body))


@router.post("/referrals/{referral_key}/erase")
async def erase(referral_key: str, request: Request) -> Response:
    state = state_of(request)
    return await idempotent(request, lambda body: intake.erase(state, referral_key))


@router.get("/fir-links")
async def fir_links(request: Request) -> Response:
    state = state_of(request)
    since = request.query_params.get("updated_since")
    limit = int(request.query_params.get("limit", "100"))
    with state.lock:
        items = [fir_link(r) for r in state.changes(since, limit)]
    return JSONResponse({"items": items})


def fir_link(record: Record) -> Json:
    """A record as the FIR-link item the police publish (no child data: the case code only)."""
    return {
        "referral_key": record.referral_key,
        "referral_id": record.record_id,
        "desk": record.collection,
        "status": record.status,
        "note": record.note,
        "reason": record.reason,
        "updated_at": record.updated_at,
        **record.outcome,
    }


@control.post("/referrals/{referral_key}/fir")
async def register_fir(referral_key: str, request: Request) -> Response:
    """Register the FIR for a referral the police hold."""
    body = await read_json(request)
    if not isinstance(body, dict) or not isinstance(body.get("station"), str):
        return error(422, "station is required")
    state = state_of(request)
    with state.lock:
        record = find(state, referral_key)
        if record is None:
            return error(404, "no such referral")
        state.report(record, str(body.get("status", "registered")), **_fir(state, body))
        return JSONResponse(fir_link(record), status_code=201)


def _fir(state: DepartmentState, body: Json) -> Json:
    station = str(body["station"])
    year = int(body.get("year") or datetime.now(UTC).year)
    serial = body.get("serial")
    if serial is None:
        # FIR numbers are annual serials per police station (Police Rules 1934 r.24.5).
        state.counters[f"fir:{station}:{year}"] += 1
        serial = state.counters[f"fir:{station}:{year}"]
    return {
        "station": station,
        "year": year,
        "serial": int(serial),
        "sections": [str(s) for s in body.get("sections") or []],
        "investigating_officer": body.get("investigating_officer") or {},
        "medico_legal_required": bool(body.get("medico_legal_required", False)),
    }
