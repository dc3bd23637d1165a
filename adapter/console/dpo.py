"""The data-protection officer's pages: incidents with their 24-hour countdown, the notice to
download and closing with a reason (``adapter.incidents``); decisions recorded on the server —
list, add with the CLI fallback's rules, revoke (``adapter.app.decisions``); the audit chain's
last verification and a verification now; and ``explain`` for one case.

Errors the adapter raises on purpose carry no personal data (STYLE.md) and are shown as they
are; the notice names departments and case codes, never a case id or a name.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from fastapi import FastAPI, Request
from starlette.concurrency import run_in_threadpool
from starlette.responses import Response

from adapter.app.decisions import DecisionRequest, explain_case, record_decision, revoke_decision
from adapter.clock import utcnow
from adapter.console.accounts import Role
from adapter.console.web import NO_STORE, PREFIX, Console, Refused, Visit
from adapter.errors import AdapterError
from adapter.incidents import close_incident, get_incident, list_incidents, render_notice
from adapter.ops.status import AUDIT_VERIFY_JOB, format_duration, recorded_run
from adapter.primero import PrimeroClient
from adapter.privacy import OverrideBasis
from adapter.privacy.consent import list_overrides


def add_routes(app: FastAPI, console: Console) -> None:
    """``/console/dpo`` and its incidents, decisions, audit and explain pages."""

    @app.get("/dpo")
    async def page(request: Request) -> Response:
        visit = console.require(request, Role.dpo)
        show_closed = request.query_params.get("closed") == "1"
        return await run_in_threadpool(_incidents_page, console, visit, show_closed, None, None)

    @app.post("/dpo/incidents/{incident_id}/close")
    async def close(incident_id: int, request: Request) -> Response:
        visit = console.require(request, Role.dpo)
        form = await console.form(request, visit)
        account = visit.account
        assert account is not None
        try:
            await run_in_threadpool(
                close_incident,
                console.store,
                incident_id,
                by=account.display_name,
                resolution=form.get("resolution", "")[:1000],
            )
        except AdapterError as exc:
            return await run_in_threadpool(
                _incidents_page, console, visit, False, str(exc), form.get("resolution", "")
            )
        console.record("console_incident_closed", account, case_code=str(incident_id))
        return console.redirect(visit, f"{PREFIX}/dpo?done=closed")

    @app.get("/dpo/incidents/{incident_id}/notice")
    async def notice(incident_id: int, request: Request) -> Response:
        visit = console.require(request, Role.dpo)

        def text() -> str:
            return render_notice(
                console.store, get_incident(console.store, incident_id), console.full_settings
            )

        try:
            body = await run_in_threadpool(text)
        except AdapterError:
            raise Refused(404, "not_found") from None
        console.record("console_notice_downloaded", visit.account, case_code=str(incident_id))
        return console.page(
            visit,
            Response(
                body,
                media_type="text/plain; charset=utf-8",
                headers={
                    "Content-Disposition": f'attachment; filename="incident-{incident_id}.txt"',
                    **NO_STORE,
                },
            ),
        )

    @app.post("/dpo/audit/verify")
    async def verify(request: Request) -> Response:
        visit = console.require(request, Role.dpo)
        await console.form(request, visit)

        def run() -> Any:
            with recorded_run(console.store, AUDIT_VERIFY_JOB) as recorded:
                report = console.audit.verify()
                recorded.stats["entries"] = report.entries
                if not report.ok:
                    recorded.fail("AuditChainBroken")
            return report

        report = await run_in_threadpool(run)
        console.record("console_audit_verified", visit.account, allowed=report.ok)
        return await run_in_threadpool(_incidents_page, console, visit, False, None, None, report)

    @app.get("/dpo/decisions")
    async def decisions(request: Request) -> Response:
        visit = console.require(request, Role.dpo)
        return await run_in_threadpool(_decisions_page, console, visit, None, {}, None)

    @app.post("/dpo/decisions")
    async def add_decision(request: Request) -> Response:
        visit = console.require(request, Role.dpo)
        form = await console.form(request, visit)
        refill = {k: v[:2000] for k, v in form.items() if k != "csrf_token"}
        try:
            decision = DecisionRequest(
                case=form.get("case", "").strip()[:100],
                department=form.get("department", ""),
                basis=OverrideBasis(form.get("basis", "")),
                approved_by=form.get("approved_by", "").strip()[:120],
                legal_reference=form.get("legal_reference", "").strip()[:200],
                reason=form.get("reason", "").strip()[:2000],
                purpose=form.get("purpose", "").strip() or None,
                hours=float(form["hours"]) if form.get("hours", "").strip() else None,
            )
        except ValueError:
            problem = "basis and hours: choose a basis from the list; hours is a number."
            return await run_in_threadpool(_decisions_page, console, visit, problem, refill, None)

        def record() -> Any:
            with PrimeroClient.from_settings(console.full_settings.primero) as client:
                return record_decision(
                    console.full_settings, console.store, console.keyring, client, decision
                )

        try:
            stored = await run_in_threadpool(record)
        except AdapterError as exc:
            return await run_in_threadpool(_decisions_page, console, visit, str(exc), refill, None)
        console.record("console_decision_added", visit.account, override_id=stored.id)
        return console.redirect(visit, f"{PREFIX}/dpo/decisions?done=added")

    @app.post("/dpo/decisions/{decision_id}/revoke")
    async def revoke(decision_id: int, request: Request) -> Response:
        visit = console.require(request, Role.dpo)
        await console.form(request, visit)
        done = await run_in_threadpool(
            revoke_decision, console.full_settings, console.store, console.keyring, decision_id
        )
        console.record("console_decision_revoked", visit.account, override_id=decision_id)
        return console.redirect(
            visit, f"{PREFIX}/dpo/decisions?done={'revoked' if done else 'none'}"
        )

    @app.get("/dpo/explain")
    async def explain_form(request: Request) -> Response:
        visit = console.require(request, Role.dpo)
        return console.render(visit, "explain.html", **_explain_context(console, {}, None, None))

    @app.post("/dpo/explain")
    async def explain(request: Request) -> Response:
        visit = console.require(request, Role.dpo)
        form = await console.form(request, visit)
        case = form.get("case", "").strip()[:100]
        department = form.get("department", "")
        purpose = form.get("purpose", "").strip()[:40] or "referral"
        refill = {"case": case, "department": department, "purpose": purpose}
        if department not in console.full_settings.departments or not case:
            problem = "case and department: give a case id and choose a configured department."
            return console.render(
                visit, "explain.html", **_explain_context(console, refill, None, problem)
            )

        def run() -> dict[str, Any]:
            with PrimeroClient.from_settings(console.full_settings.primero) as client:
                record = client.get_case(client.resolve_case_id(case))
                return explain_case(
                    console.full_settings,
                    console.store,
                    console.keyring,
                    client,
                    record,
                    department,
                    purpose,
                )

        try:
            doc = await run_in_threadpool(run)
        except AdapterError as exc:
            return console.render(
                visit, "explain.html", **_explain_context(console, refill, None, str(exc))
            )
        console.record("console_explain", visit.account, department=department, purpose=purpose)
        return console.render(visit, "explain.html", **_explain_context(console, refill, doc, None))


def _countdown(deadline: datetime, now: datetime) -> tuple[str, bool]:
    """How long is left before the DPO deadline, or how long it is overdue."""
    seconds = (deadline - now).total_seconds()
    return format_duration(abs(seconds)), seconds < 0


def _incidents_page(
    console: Console,
    visit: Visit,
    show_closed: bool,
    problem: str | None,
    resolution: str | None,
    report: Any = None,
) -> Response:
    now = utcnow()
    incidents = list_incidents(console.store, include_closed=show_closed)
    rows = []
    for incident in incidents:
        left, overdue = _countdown(incident.deadline_at, now)
        rows.append(
            {
                "incident": incident,
                "state": incident.deadline_state(now),
                "left": left,
                "overdue": overdue and incident.notified_at is None,
            }
        )
    last = console.store.recent_runs(AUDIT_VERIFY_JOB, 1)
    return console.render(
        visit,
        "dpo.html",
        rows=rows,
        show_closed=show_closed,
        problem=problem,
        resolution=resolution or "",
        last_verification=last[0] if last else None,
        report=report,
    )


def _decisions_page(
    console: Console,
    visit: Visit,
    problem: str | None,
    refill: dict[str, str],
    _: Any,
) -> Response:
    now = utcnow()
    with console.store.transaction() as conn:
        found = list_overrides(conn)
    rows = [
        {
            "decision": o,
            "state": "revoked"
            if o.revoked_at
            else ("expired" if now >= o.expires_at else "active"),
        }
        for o in found[:200]
    ]
    return console.render(
        visit,
        "decisions.html",
        rows=rows,
        problem=problem,
        refill=refill,
        departments=sorted(console.full_settings.departments),
        bases=[str(b) for b in OverrideBasis],
        lifetime=console.full_settings.decisions.lifetime_hours,
    )


def _explain_context(
    console: Console, refill: dict[str, str], doc: dict[str, Any] | None, problem: str | None
) -> dict[str, Any]:
    return {
        "refill": refill,
        "doc": doc,
        "problem": problem,
        "departments": sorted(console.full_settings.departments),
    }
