"""The operator's page: what ``cpims-adapter status`` says (jobs, lag, next run, queues,
retrying and dead messages with their age and last error), retry or drop one dead letter (what
``cpims-adapter sync deadletters retry|drop`` does), run a job now (the ``job_wakeups`` row
Primero's webhook writes: the running service picks it up), and each job's runs.

Nothing here shows a payload or a person: messages are shown by id, job, destination, kind,
attempts, age and their redacted last error, as the CLI shows them.
"""

from __future__ import annotations

from fastapi import FastAPI, Request
from starlette.concurrency import run_in_threadpool
from starlette.responses import Response

from adapter.clock import utcnow
from adapter.console.accounts import Role
from adapter.console.web import PREFIX, Console, Refused
from adapter.ops.status import collect_status, format_duration
from adapter.state.outbox import DEAD, RETRYING, Outbox
from adapter.state.service import Instances

SHOWN = 200


def add_routes(app: FastAPI, console: Console) -> None:
    """``/console/operator`` and its actions."""

    @app.get("/operator")
    async def page(request: Request) -> Response:
        visit = console.require(request, Role.operator)
        notice = request.query_params.get("done", "")[:20]

        def read() -> Response:
            now = utcnow()
            outbox = Outbox(console.store)
            status = collect_status(console.full_settings, console.store, now=now)
            waiting = outbox.waiting(status=RETRYING, limit=SHOWN) + outbox.waiting(
                status=DEAD, limit=SHOWN
            )
            messages = [
                {
                    "id": m.id,
                    "job": m.job,
                    "destination": m.destination,
                    "kind": m.kind,
                    "status": m.status if m.status == DEAD else RETRYING,
                    "attempts": m.attempts,
                    "age": format_duration(max(0.0, (now - m.created_at).total_seconds())),
                    "error": f"{m.last_error_class}: {m.last_error or ''}"
                    if m.last_error_class
                    else "-",
                }
                for m in waiting
            ]
            return console.render(
                visit,
                "operator.html",
                status=200,
                report=status,
                messages=messages,
                format_duration=format_duration,
                notice=notice,
            )

        return await run_in_threadpool(read)

    @app.post("/operator/outbox/{message_id}/{action}")
    async def outbox_action(message_id: int, action: str, request: Request) -> Response:
        visit = console.require(request, Role.operator)
        await console.form(request, visit)
        if action not in ("retry", "drop"):
            raise Refused(404, "not_found")
        outbox = Outbox(console.store)
        done = await run_in_threadpool(
            outbox.retry if action == "retry" else outbox.drop, [message_id]
        )
        console.record(
            f"console_outbox_{action}",
            visit.account,
            case_code=str(message_id),
            count=done,
        )
        return console.redirect(visit, f"{PREFIX}/operator?done={action if done else 'none'}")

    @app.post("/operator/jobs/{job}/run")
    async def run_now(job: str, request: Request) -> Response:
        visit = console.require(request, Role.operator)
        await console.form(request, visit)
        if job not in console.full_settings.jobs:
            raise Refused(404, "not_found")
        await run_in_threadpool(Instances(console.store).wake, [job], "console")
        console.record("console_job_run_now", visit.account, reason=f"job={job}")
        return console.redirect(visit, f"{PREFIX}/operator?done=woken")

    @app.get("/operator/runs")
    async def runs(request: Request) -> Response:
        visit = console.require(request, Role.operator)
        job = request.query_params.get("job") or None
        if job is not None and job not in console.full_settings.jobs:
            job = None
        found = await run_in_threadpool(console.store.recent_runs, job, 100)
        return console.render(
            visit,
            "runs.html",
            runs=found,
            job=job,
            jobs=sorted(console.full_settings.jobs),
        )
