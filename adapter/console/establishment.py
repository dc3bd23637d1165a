"""The establishment officer's page: check a person, see the answer and what to do next, the
establishment's own check history and its quota.

A check goes through :func:`adapter.registry.api.answer_check`, the very path of
``POST /v1/registry/checks``: the same validation, quota, single-use consent reference,
refusal counting, enumeration alarms, audit, padded answer and minimum answer time. The answer
page is padded to ``[console] check_page_bytes`` too, so its size tells nothing. The officer's
establishment comes from their account, never from the request, so no URL or form field can
reach another establishment's checks.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from fastapi import FastAPI, Request
from starlette.concurrency import run_in_threadpool
from starlette.responses import HTMLResponse, Response

from adapter.clock import utcnow
from adapter.console.accounts import Account, Role
from adapter.console.web import Console, Visit
from adapter.registry import Establishment, UnknownReference
from adapter.registry.api import answer_check

FIELDS = (
    "cnic",
    "full_name",
    "father_name",
    "date_of_birth",
    "consent_ref",
    "position",
    "purpose",
)
# Given back into the form after a refusal; the CNIC and date of birth are never sent back.
REFILLED = ("full_name", "father_name", "consent_ref", "position", "purpose")
HISTORY = 50


def add_routes(app: FastAPI, console: Console) -> None:
    """``/console/establishment`` and its check and one-check pages."""

    @app.get("/establishment")
    async def page(request: Request) -> Response:
        visit = console.require(request, Role.establishment_officer)
        return await run_in_threadpool(_page, console, visit, None, {})

    @app.post("/establishment/check")
    async def check(request: Request) -> Response:
        visit = console.require(request, Role.establishment_officer)
        form = await console.form(request, visit)
        account = visit.account
        assert account is not None and account.establishment is not None
        registry = console.registry()
        body = json.dumps({name: form.get(name, "") for name in FIELDS}).encode()

        async def read() -> bytes:
            return body

        answer = await answer_check(
            registry, lambda: registry.establishment(str(account.establishment)), read
        )
        result = _result(answer.status_code, bytes(answer.body))
        console.record(
            "console_check",
            account,
            department=account.establishment,
            case_code=result.get("check_ref"),
            reason=f"answer={result['kind']}",
        )
        refill = {k: form.get(k, "")[:200] for k in REFILLED} if result["kind"] != "answer" else {}
        html = await run_in_threadpool(_page, console, visit, result, refill)
        return _padded(html, console.settings.check_page_bytes)

    @app.get("/establishment/checks/{check_ref}")
    async def one_check(check_ref: str, request: Request) -> Response:
        visit = console.require(request, Role.establishment_officer)
        account = visit.account
        assert account is not None
        registry = console.registry()
        try:
            answer = await run_in_threadpool(
                registry.check_status, check_ref[:40], _establishment(console, account)
            )
        except UnknownReference:
            # Another establishment's reference looks exactly like one that does not exist.
            console.record(
                "console_check_lookup_refused", account, department=account.establishment
            )
            return await run_in_threadpool(
                _page, console, visit, {"kind": "error", "error": "not_found"}, {}
            )
        result = {"kind": "answer", **json.loads(answer.to_json(registry.settings.answer_bytes))}
        return await run_in_threadpool(_page, console, visit, result, {})


def _establishment(console: Console, account: Account) -> Establishment:
    return console.registry().establishment(str(account.establishment))


def _result(status: int, body: bytes) -> dict[str, Any]:
    """The API's answer as the page shows it: the answer's fields, or the refusal's code."""
    document = json.loads(body)
    if status == 200:
        return {"kind": "answer", **{k: v for k, v in document.items() if k != "pad"}}
    problems = [p.get("field", "") for p in document.get("problems") or []]
    return {
        "kind": "error",
        "error": document.get("error", "refused"),
        "fields": problems,
        "retry_after": document.get("retry_after"),
    }


def _page(
    console: Console, visit: Visit, result: dict[str, Any] | None, refill: dict[str, str]
) -> Response:
    account = visit.account
    assert account is not None
    registry = console.registry()
    establishment = _establishment(console, account)
    now: datetime = utcnow()
    today, month = registry.quota_used(establishment, now=now)
    return console.render(
        visit,
        "establishment.html",
        establishment=establishment,
        result=result,
        refill=refill,
        purposes=registry.settings.purposes,
        history=registry.check_history(establishment, limit=HISTORY),
        quota={
            "today": today,
            "daily": establishment.daily_quota,
            "month": month,
            "monthly": establishment.monthly_quota,
        },
        how_to_appeal=registry.settings.how_to_appeal,
    )


def _padded(response: Response, size: int) -> Response:
    """The page padded with trailing spaces to ``size`` bytes (privacy.md §6.6 item 5)."""
    body = bytes(response.body)
    if len(body) < size:
        body += b" " * (size - len(body))
    padded = HTMLResponse(body, status_code=response.status_code)
    for name, value in response.headers.items():
        if name.lower() != "content-length":
            padded.headers.append(name, value)
    return padded
