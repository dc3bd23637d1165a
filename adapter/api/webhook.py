"""``POST /v1/primero/webhook``: Primero's case webhooks as a trigger, never as data.

Primero POSTs ``{"data": {"record_id", "record_type": "case", ...every field the webhook's
role may read}}`` after each case save, once, with no retry (primero-api.md §7). The body is
personal data we do not need: only ``record_type`` is looked at, nothing is stored or logged,
and the answer is the same whatever the body says. A case webhook asks every `cpims-adapter
run` instance to run the sync jobs now (``job_wakeups``); the jobs then pull through the
normal, authorised, minimising path. A lost webhook costs nothing: the schedule still runs.
"""

from __future__ import annotations

import hashlib
import hmac
import json

from fastapi import APIRouter, Request, Response
from starlette.concurrency import run_in_threadpool

from adapter.state import StateStore
from adapter.state.service import Instances

ROUTE = "/v1/primero/webhook"


def build_webhook_router(
    store: StateStore, jobs: list[str], key_sha256: str | None, *, max_body_bytes: int = 65536
) -> APIRouter:
    """The webhook route; 404 unless ``api.primero_webhook_key_sha256`` is configured."""
    router = APIRouter()
    expected = bytes.fromhex(key_sha256) if key_sha256 else None
    instances = Instances(store)

    @router.post(ROUTE, include_in_schema=False)
    async def primero_webhook(request: Request) -> Response:
        if expected is None:
            return _answer(404, "not_found", "Primero webhooks are not enabled here.")
        presented = request.headers.get("x-api-key", "").encode()
        if not hmac.compare_digest(hashlib.sha256(presented).digest(), expected):
            return _answer(401, "unauthorised", "x-api-key is missing or wrong.")
        declared = request.headers.get("content-length", "")
        if declared.isdigit() and int(declared) > max_body_bytes:
            return _answer(413, "too_large", f"The body must be at most {max_body_bytes} bytes.")
        raw = b""
        async for chunk in request.stream():
            raw += chunk
            if len(raw) > max_body_bytes:
                return _answer(
                    413, "too_large", f"The body must be at most {max_body_bytes} bytes."
                )
        try:
            body = json.loads(raw)
            record_type = body["data"]["record_type"]
        except (ValueError, KeyError, TypeError):
            return _answer(400, "invalid_body", 'Expected {"data": {"record_type": "case", ...}}.')
        if record_type == "case" and jobs:
            # A database write: off the event loop, so a busy store never stalls other requests.
            await run_in_threadpool(instances.wake, jobs, "primero webhook")
        return _answer(202, "accepted", "The sync jobs will run shortly.")

    return router


def _answer(status: int, code: str, message: str) -> Response:
    return Response(
        json.dumps({"status": code, "message": message}),
        status_code=status,
        media_type="application/json",
    )
