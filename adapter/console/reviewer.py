"""The registry reviewer's pages: the PENDING_REVIEW queue with its deadlines, a check taken
by one reviewer (only they may open its sealed identity, which the registry audits, and decide
it with a reason), appeals (record one, decide one), and subject-access requests.

The queue shows what a reviewer needs to choose what to take — establishment, when, the rule
that queued it, purpose, position, deadline — and no identity. A check's sealed identity is
opened only for the reviewer who took it; another reviewer is refused (403, audited).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import sqlalchemy as sa
from fastapi import FastAPI, Request
from starlette.concurrency import run_in_threadpool
from starlette.responses import Response

from adapter.clock import utcnow
from adapter.console._tables import console_review_assignments
from adapter.console.accounts import Account, Role
from adapter.console.web import PREFIX, Console, Refused, Visit
from adapter.errors import AdapterError
from adapter.registry import Outcome, RegistryError

NOTE_MIN = 10


def add_routes(app: FastAPI, console: Console) -> None:
    """``/console/reviewer`` and its check, appeal and subject-access pages."""

    @app.get("/reviewer")
    async def page(request: Request) -> Response:
        visit = console.require(request, Role.reviewer)
        done = request.query_params.get("done", "")[:20]
        return await run_in_threadpool(_queue_page, console, visit, done, None, None)

    @app.post("/reviewer/checks/{check_ref}/take")
    async def take(check_ref: str, request: Request) -> Response:
        visit = console.require(request, Role.reviewer)
        await console.form(request, visit)
        account = _account(visit)
        queued = {item.check_ref for item in console.registry().review_queue()}
        if check_ref not in queued:
            raise Refused(404, "not_found")
        taken = await run_in_threadpool(_assign, console, check_ref, account, utcnow())
        if not taken:
            raise Refused(409, "taken")
        console.record("console_review_taken", account, case_code=check_ref)
        return console.redirect(visit, f"{PREFIX}/reviewer/checks/{check_ref}")

    @app.get("/reviewer/checks/{check_ref}")
    async def detail(check_ref: str, request: Request) -> Response:
        visit = console.require(request, Role.reviewer)
        account = _account(visit)
        _must_hold(console, check_ref[:24], account)
        # The registry audits the opening (registry_review_opened, with the officer).
        found = await run_in_threadpool(
            console.registry().review_detail, check_ref, account.username
        )
        console.record("console_review_opened", account, case_code=check_ref)
        return console.render(visit, "review.html", detail=found, problem=None, note="")

    @app.post("/reviewer/checks/{check_ref}/decide")
    async def decide(check_ref: str, request: Request) -> Response:
        visit = console.require(request, Role.reviewer)
        form = await console.form(request, visit)
        account = _account(visit)
        _must_hold(console, check_ref[:24], account)
        note = form.get("note", "").strip()[:500]
        decision = {"clear": Outcome.CLEAR, "do_not_engage": Outcome.DO_NOT_ENGAGE}.get(
            form.get("decision", "")
        )
        registry = console.registry()
        if decision is None or len(note) < NOTE_MIN:
            found = await run_in_threadpool(registry.review_detail, check_ref, account.username)
            return console.render(
                visit, "review.html", detail=found, problem="decision", note=note, status=400
            )
        await run_in_threadpool(registry.resolve, check_ref, decision, account.username, note)
        await run_in_threadpool(_release, console, check_ref)
        console.record(
            "console_review_decided", account, case_code=check_ref, reason=f"status={decision}"
        )
        return console.redirect(visit, f"{PREFIX}/reviewer?done=decided")

    @app.post("/reviewer/appeals")
    async def open_appeal(request: Request) -> Response:
        visit = console.require(request, Role.reviewer)
        form = await console.form(request, visit)
        account = _account(visit)
        about = form.get("about", "").strip()[:40]
        grounds = form.get("grounds", "").strip()[:2000]
        is_check = about.startswith("RC")
        if not about or len(grounds) < NOTE_MIN:
            return await run_in_threadpool(_queue_page, console, visit, "", "appeal_form", None)
        try:
            ref = await run_in_threadpool(
                lambda: console.registry().appeal(
                    grounds=grounds,
                    received_by=account.username,
                    check_ref=about if is_check else None,
                    entry_ref=None if is_check else about,
                )
            )
        except RegistryError:
            return await run_in_threadpool(_queue_page, console, visit, "", "appeal_ref", None)
        console.record("console_appeal_opened", account, case_code=ref)
        return console.redirect(visit, f"{PREFIX}/reviewer?done=appeal")

    @app.post("/reviewer/appeals/{appeal_ref}/decide")
    async def decide_appeal(appeal_ref: str, request: Request) -> Response:
        visit = console.require(request, Role.reviewer)
        form = await console.form(request, visit)
        account = _account(visit)
        granted = {"grant": True, "refuse": False}.get(form.get("decision", ""))
        note = form.get("note", "").strip()[:500]
        if granted is None or len(note) < NOTE_MIN:
            return await run_in_threadpool(_queue_page, console, visit, "", "appeal_decision", None)
        try:
            await run_in_threadpool(
                lambda: console.registry().decide_appeal(
                    appeal_ref[:24], granted=granted, officer=account.username, note=note
                )
            )
        except RegistryError:
            return await run_in_threadpool(_queue_page, console, visit, "", "appeal_ref", None)
        console.record(
            "console_appeal_decided",
            account,
            case_code=appeal_ref[:24],
            reason=f"granted={granted}",
        )
        return console.redirect(visit, f"{PREFIX}/reviewer?done=appeal_decided")

    @app.post("/reviewer/subject-access")
    async def subject_access(request: Request) -> Response:
        visit = console.require(request, Role.reviewer)
        form = await console.form(request, visit)
        account = _account(visit)
        try:
            rows = await run_in_threadpool(
                console.registry().subject_access, form.get("cnic", "")[:20], account.username
            )
        except (RegistryError, AdapterError, ValueError):
            # A malformed CNIC: the message would not name it either; the page asks again.
            return await run_in_threadpool(_queue_page, console, visit, "", "cnic", None)
        console.record("console_subject_access", account, count=len(rows))
        return await run_in_threadpool(_queue_page, console, visit, "", None, rows)


def _account(visit: Visit) -> Account:
    assert visit.account is not None
    return visit.account


def _assign(console: Console, check_ref: str, account: Account, now: datetime) -> bool:
    """Give ``check_ref`` to ``account`` unless another reviewer holds it."""
    table = console_review_assignments
    with console.store.transaction() as conn:
        holder = conn.execute(
            sa.select(table.c.account_id).where(table.c.check_ref == check_ref)
        ).first()
        if holder is not None:
            return bool(holder.account_id == account.id)
        conn.execute(
            table.insert().values(check_ref=check_ref, account_id=account.id, assigned_at=now)
        )
    return True


def _holders(console: Console) -> dict[str, int]:
    table = console_review_assignments
    with console.store.transaction() as conn:
        return {r.check_ref: r.account_id for r in conn.execute(sa.select(table))}


def _must_hold(console: Console, check_ref: str, account: Account) -> None:
    if _holders(console).get(check_ref) != account.id:
        console.record("console_review_refused", account, case_code=check_ref)
        raise Refused(403, "forbidden")


def _release(console: Console, check_ref: str) -> None:
    table = console_review_assignments
    with console.store.transaction() as conn:
        conn.execute(table.delete().where(table.c.check_ref == check_ref))


def _queue_page(
    console: Console,
    visit: Visit,
    done: str,
    problem: str | None,
    subject_rows: list[Any] | None,
) -> Response:
    account = _account(visit)
    now = utcnow()
    registry = console.registry()
    holders = _holders(console)
    names = {a.id: a.display_name for a in console.accounts.list()}
    queue = [
        {
            "item": item,
            "overdue": item.due_by is not None and item.due_by < now,
            "mine": holders.get(item.check_ref) == account.id,
            "holder": names.get(holders.get(item.check_ref, -1)),
        }
        for item in registry.review_queue()
    ]
    return console.render(
        visit,
        "reviewer.html",
        queue=queue,
        appeals=registry.appeals(),
        done=done,
        problem=problem,
        subject_rows=subject_rows,
    )
