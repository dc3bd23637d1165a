"""A simulated birth-registration system: DCI search and registration requests (departments.md §3).

NADRA has no public API; OpenCRVS's DCI CRVS API is the best template (§3), so verification is
``POST /registry/sync/search`` with the SPDCI envelope: ``header{message_id, action:"search",
sender_id, receiver_id}``, ``message.search_request[]{reference_id, registry_type, event_type,
search_criteria{query_type, query}, consent}``. ``query_type`` ``idtype-value`` looks up a
``BRN``; ``predicate`` matches minimal demographics (``[{attribute_name, operator:"eq",
attribute_value}]``, at least two of them). The answer returns only the match flag and the
registration numbers (§3, data minimisation).

- ``POST /registry/registration-requests``: ask the Union Council to register an unregistered
  child's birth; ``PUT …/{referral_key}``; ``POST /registry/requests/{referral_key}/cancel``
  and ``/erase`` for either kind.
- ``GET /registry/changes?since=&limit=``: search results and registration outcomes.

Control: ``POST /_sim/registry`` adds a registered child; ``POST /_sim/referrals/{key}/register``
completes a registration request with a registration number.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse

from adapter.simulator.departments import intake
from adapter.simulator.departments.app import error, find, idempotent, read_json, state_of
from adapter.simulator.departments.state import DepartmentState, Json, Record

router = APIRouter(prefix="/registry")
control = APIRouter(prefix="/_sim")
_ATTRIBUTES = {"given_name", "family_name", "birth_date", "sex", "name"}


def _receipt(record: Record) -> Json:
    return {"request_id": record.record_id, "status": "received"}


@router.post("/sync/search")
async def sync_search(request: Request) -> Response:
    state = state_of(request)
    return await idempotent(request, lambda body: _search(state, body))


def _search(state: DepartmentState, envelope: Json) -> tuple[int, Json]:
    header = envelope.get("header") or {}
    requests = (envelope.get("message") or {}).get("search_request")
    if not isinstance(header, dict) or header.get("action") != "search":
        return 400, {"error": "header.action must be 'search'"}
    if not isinstance(requests, list) or not requests:
        return 400, {"error": "message.search_request[] is required"}
    responses = []
    for item in requests:
        reference = item.get("reference_id") if isinstance(item, dict) else None
        if not isinstance(reference, str) or not reference:
            return 400, {"error": "every search_request needs a reference_id"}
        matches = _matches(state, item.get("search_criteria") or {})
        status = "match" if len(matches) == 1 else "multiple" if matches else "no_match"
        record = state.receive("search", reference, item, "SR")
        found = matches[0] if len(matches) == 1 else {}
        state.report(
            record,
            status,
            match_status=status,
            registration_number=found.get("registration_number"),
            registering_uc=found.get("registering_uc"),
            registration_date=found.get("registration_date"),
        )
        responses.append(
            {
                "reference_id": reference,
                "timestamp": record.updated_at,
                "status": "succ",
                "match_status": status,
                "data": {
                    "reg_type": "civil",
                    "reg_event_type": "birth",
                    "reg_records": [
                        {k: m[k] for k in ("registration_number", "registering_uc")}
                        for m in matches[:1]
                    ],
                },
            }
        )
    transaction = state.next_id("TX")
    return 200, {
        "header": {
            "message_id": state.next_id("MSG"),
            "message_ts": state.now(),
            "action": "on-search",
            "status": "succ",
            "sender_id": header.get("receiver_id"),
            "receiver_id": header.get("sender_id"),
            "total_count": len(responses),
        },
        "message": {"transaction_id": transaction, "search_response": responses},
    }


def _matches(state: DepartmentState, criteria: Json) -> list[Json]:
    query: Any = criteria.get("query")
    if criteria.get("query_type") == "idtype-value" and isinstance(query, dict):
        number = str(query.get("identifier_value") or "")
        return [r for r in state.registry if r.get("registration_number") == number]
    if criteria.get("query_type") != "predicate" or not isinstance(query, list):
        return []
    wanted = {
        str(p.get("attribute_name")): str(p.get("attribute_value")).casefold()
        for p in query
        if isinstance(p, dict) and p.get("operator", "eq") == "eq"
    }
    wanted = {k: v for k, v in wanted.items() if k in _ATTRIBUTES}
    if len(wanted) < 2:
        return []  # one attribute matches far too many children to be a verification
    return [
        r
        for r in state.registry
        if all(str(r.get(k, "")).casefold() == v for k, v in wanted.items())
    ]


@router.post("/registration-requests")
async def registration_request(request: Request) -> Response:
    state = state_of(request)
    return await idempotent(
        request, lambda body: intake.receive(state, body, "registration", "RR", _receipt)
    )


@router.put("/registration-requests/{referral_key}")
async def update(referral_key: str, request: Request) -> Response:
    state = state_of(request)
    return await idempotent(
        request, lambda body: intake.update(state, referral_key, body, _receipt)
    )


@router.post("/requests/{referral_key}/cancel")
async def cancel(referral_key: str, request: Request) -> Response:
    state = state_of(request)
    return await idempotent(request, lambda body: intake.cancel(state, referral_key, body))


@router.post("/requests/{referral_key}/erase")
async def erase(referral_key: str, request: Request) -> Response:
    state = state_of(request)
    return await idempotent(request, lambda body: intake.erase(state, referral_key))


@router.get("/changes")
async def changes(request: Request) -> Response:
    state = state_of(request)
    since = request.query_params.get("since")
    limit = int(request.query_params.get("limit", "100"))
    with state.lock:
        items = [_change(r) for r in state.changes(since, limit)]
    return JSONResponse({"items": items})


def _change(record: Record) -> Json:
    return {
        "reference_id": record.referral_key,
        "kind": record.collection,
        "status": record.status,
        "reason": record.reason,
        "updated_at": record.updated_at,
        **record.outcome,
    }


@control.post("/registry")
async def add_registered_child(request: Request) -> Response:
    """``{given_name, family_name, birth_date, sex, registration_number?, registering_uc?}``."""
    body = await read_json(request)
    if not isinstance(body, dict) or not body.get("birth_date"):
        return error(422, "birth_date and the names are required")
    state = state_of(request)
    with state.lock:
        entry = {k: body[k] for k in _ATTRIBUTES if k in body}
        entry["registration_number"] = str(body.get("registration_number") or state.next_id("BRN"))
        entry["registering_uc"] = str(body.get("registering_uc") or "UC-Saddar-Karachi")
        entry["registration_date"] = str(body.get("registration_date") or "2015-01-01")
        state.registry.append(entry)
    return JSONResponse(entry, status_code=201)


@control.post("/referrals/{referral_key}/register")
async def register(referral_key: str, request: Request) -> Response:
    """The Union Council registered the birth asked for in a registration request."""
    body = await read_json(request)
    body = body if isinstance(body, dict) else {}
    state = state_of(request)
    with state.lock:
        record = find(state, referral_key)
        if record is None:
            return error(404, "no such registration request")
        state.report(
            record,
            "registered",
            registration_number=str(body.get("registration_number") or state.next_id("BRN")),
            registering_uc=str(body.get("registering_uc") or "UC-Saddar-Karachi"),
            registration_date=str(body.get("registration_date") or record.updated_at[:10]),
        )
        return JSONResponse(_change(record), status_code=201)
