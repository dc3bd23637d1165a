"""The registry over HTTP: an ``APIRouter`` the inbound API mounts, and a standalone app.

    app.include_router(build_router(registry))         # in the inbound API
    uvicorn.run(create_app(registry), host="127.0.0.1") # standalone (tests, benchmark)

Routes (``Authorization: Bearer <establishment API key>``):

* ``POST /v1/registry/checks`` → 200 with the padded answer (the same byte length for CLEAR,
  PENDING_REVIEW and DO_NOT_ENGAGE); 401 unknown key; 403 locked; 409 consent reference
  already used; 413 body too large; 422 malformed (field names and shape problems only, never
  a value); 429 quota used up, with ``Retry-After``;
* ``GET /v1/registry/checks/{check_ref}`` → the current answer of one of the caller's checks;
* ``POST /v1/registry/workers`` → 201 ``{"worker_ref": …}`` (continuous monitoring);
* ``DELETE /v1/registry/workers/{worker_ref}`` → 204.

Every response carries ``Cache-Control: no-store``: no proxy or browser may keep an answer
(privacy.md §6.6 item 9, the NSOPW lesson). Blocking work runs in the thread pool.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from typing import Any, Literal, TypeVar

import uvicorn
from fastapi import APIRouter, FastAPI, Request, Response
from pydantic import BaseModel, Field, ValidationError
from starlette.concurrency import run_in_threadpool

from adapter.config.registry import RegistrySettings
from adapter.privacy.keys import KeyRing
from adapter.registry.errors import (
    AuthenticationFailed,
    ConsentRefUsed,
    EstablishmentLocked,
    InvalidState,
    QuotaExceeded,
    RequestRejected,
    UnknownReference,
)
from adapter.registry.models import CheckAnswer, CheckRequest, Establishment, WorkerRegistration
from adapter.registry.registry import Registry
from adapter.serving import bind, serve_workers
from adapter.state import StateStore

NO_STORE = {"Cache-Control": "no-store", "Pragma": "no-cache", "X-Content-Type-Options": "nosniff"}
_Model = TypeVar("_Model", bound=BaseModel)
_JSON = "application/json"


# --- what /openapi.json says about these routes ------------------------------------------------
# The routes parse their bodies by hand (size first, then pydantic), so FastAPI cannot see the
# messages; these models only document them where `cpims-adapter serve` mounts the router.


class RegistryProblem(BaseModel):
    """One malformed field of a refused request (never its value)."""

    field: str
    problem: str


class RegistryErrorBody(BaseModel):
    """Every refusal of a registry route."""

    error: str = Field(description="Stable code, e.g. unauthenticated, quota, consent_reused.")
    message: str = Field(description="What is wrong and what to do; never echoes a value.")
    problems: list[RegistryProblem] | None = Field(None, description="Only for 422.")
    retry_after: int | None = Field(None, description="Only for 429 (also Retry-After).")


class CheckAnswerBody(BaseModel):
    """The padded answer: the same byte length for every status (privacy.md §6.6 item 5)."""

    status: Literal["CLEAR", "PENDING_REVIEW", "DO_NOT_ENGAGE"]
    check_ref: str
    checked_at: str
    valid_until: str
    how_to_appeal: str
    pad: str = Field(description="Spaces that make every answer the same size.")


class WorkerCreated(BaseModel):
    """A worker registered for continuous monitoring."""

    worker_ref: str


def _refusals(*statuses: int) -> dict[int | str, dict[str, Any]]:
    what = {
        401: "Missing or unknown API key.",
        403: "The establishment is locked.",
        404: "No such reference for your establishment.",
        409: "Consent reference already used, or the reference is in the wrong state.",
        413: "Body larger than registry.max_body_bytes.",
        422: "Malformed request (field names and problems, never values).",
        429: "Quota used up (see Retry-After).",
    }
    return {s: {"model": RegistryErrorBody, "description": what[s]} for s in statuses}


def _documented(
    body: type[BaseModel] | None,
    ok: int,
    answer: type[BaseModel] | None,
    *refusals: int,
) -> dict[str, Any]:
    """Route options: the status of success, its answer, every refusal, the request body."""
    responses: dict[int | str, dict[str, Any]] = {
        ok: {"model": answer, "description": "Done."} if answer else {"description": "Done."},
        **_refusals(*refusals),
    }
    options: dict[str, Any] = {"status_code": ok, "responses": responses}
    if body is not None:
        options["openapi_extra"] = {
            "requestBody": {
                "required": True,
                "content": {_JSON: {"schema": body.model_json_schema()}},
            }
        }
    return options


class _Refused(Exception):
    """An HTTP refusal, turned into a JSON error response at the route's edge."""

    def __init__(self, status: int, error: str, message: str, **extra: Any) -> None:
        super().__init__(message)
        self.status, self.error, self.extra = status, error, extra


def _error(refused: _Refused) -> Response:
    body = {"error": refused.error, "message": str(refused), **refused.extra}
    headers = dict(NO_STORE)
    if "retry_after" in refused.extra:
        headers["Retry-After"] = str(refused.extra["retry_after"])
    return Response(
        json.dumps(body).encode(),
        status_code=refused.status,
        media_type="application/json",
        headers=headers,
    )


def _answer(answer: CheckAnswer, size: int) -> Response:
    return Response(answer.to_json(size), media_type="application/json", headers=NO_STORE)


def _problems(exc: ValidationError) -> list[dict[str, str]]:
    # Location and message only: pydantic's "input" would echo the CNIC or the name back.
    return [
        {
            "field": ".".join(str(p) for p in err["loc"])[:40] or "body",
            "problem": err["msg"].removeprefix("Value error, ")[:200],
        }
        for err in exc.errors()
    ]


class _Gate:
    """What every registry route does before its work: authenticate the establishment, and
    read the body within the limit (a refusal is counted against the establishment)."""

    def __init__(self, registry: Registry) -> None:
        self.registry = registry
        self.limit = registry.settings.max_body_bytes

    def authenticate(self, request: Request) -> Establishment:
        scheme, _, token = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise _Refused(401, "unauthenticated", "send Authorization: Bearer <API key>.")
        try:
            return self.registry.authenticate(token.strip())
        except AuthenticationFailed:
            raise _Refused(401, "unauthenticated", "unknown API key.") from None
        except EstablishmentLocked as exc:
            raise _Refused(403, "locked", str(exc)) from None

    async def read_body(self, request: Request) -> bytes | None:
        """The body, or None when it is larger than the limit; never more than the limit
        is read (a declared length over it is refused unread)."""
        declared = request.headers.get("content-length", "")
        if declared.isdigit() and int(declared) > self.limit:
            return None
        body = bytearray()
        async for chunk in request.stream():
            body += chunk
            if len(body) > self.limit:
                return None
        return bytes(body)

    def validated(
        self, body: bytes | None, model: type[_Model], establishment: Establishment
    ) -> _Model:
        """``body`` as ``model``; a refusal (counted against the establishment) otherwise.
        Runs on a pool thread."""
        registry, limit = self.registry, self.limit
        if body is None or len(body) > limit:
            registry.reject(establishment, "body_too_large")
            raise _Refused(413, "too_large", f"the body must be at most {limit} bytes.")
        try:
            return model.model_validate(json.loads(body))
        except ValidationError as exc:
            registry.reject(establishment, "invalid_request")
            raise _Refused(
                422, "invalid_request", "the request is malformed.", problems=_problems(exc)
            ) from None
        except ValueError:
            registry.reject(establishment, "invalid_request")
            raise _Refused(422, "invalid_request", "the body must be a JSON object.") from None

    async def parse(
        self, request: Request, model: type[_Model], establishment: Establishment
    ) -> _Model:
        registry, limit = self.registry, self.limit
        declared = request.headers.get("content-length", "")
        # Refuse on the declared length before reading a large body into memory.
        too_large = declared.isdigit() and int(declared) > limit
        body = b"" if too_large else await request.body()
        if too_large or len(body) > limit:
            await run_in_threadpool(registry.reject, establishment, "body_too_large")
            raise _Refused(413, "too_large", f"the body must be at most {limit} bytes.")
        try:
            return model.model_validate(json.loads(body))
        except ValidationError as exc:
            await run_in_threadpool(registry.reject, establishment, "invalid_request")
            raise _Refused(
                422, "invalid_request", "the request is malformed.", problems=_problems(exc)
            ) from None
        except ValueError:
            await run_in_threadpool(registry.reject, establishment, "invalid_request")
            raise _Refused(422, "invalid_request", "the body must be a JSON object.") from None


# What the registry refuses, as (status, error code): checked in this order.
_REFUSALS: tuple[tuple[type[Exception], int, str], ...] = (
    (ConsentRefUsed, 409, "consent_reused"),
    (EstablishmentLocked, 403, "locked"),
    (UnknownReference, 404, "not_found"),
    (InvalidState, 409, "invalid_state"),
)


def _refusal(exc: Exception) -> Response | None:
    """The error answer for what the registry refused; None for anything else."""
    if isinstance(exc, _Refused):
        return _error(exc)
    if isinstance(exc, QuotaExceeded):
        return _error(_Refused(429, "quota", str(exc), retry_after=exc.retry_after))
    if isinstance(exc, RequestRejected) and not isinstance(exc, ConsentRefUsed):
        return _error(_Refused(422, exc.reason, str(exc)))
    for kind, status, error in _REFUSALS:
        if isinstance(exc, kind):
            return _error(_Refused(status, error, str(exc)))
    return None


async def _guarded(work: Callable[[], Any]) -> Response:
    """``work``'s response, or the error answer for what the registry refused."""
    try:
        result = await work()
    except Exception as exc:
        refused = _refusal(exc)
        if refused is None:
            raise
        return refused
    assert isinstance(result, Response)
    return result


def _guarded_sync(work: Callable[[], Response]) -> Response:
    """:func:`_guarded` for work done in one go on a pool thread."""
    try:
        return work()
    except Exception as exc:
        refused = _refusal(exc)
        if refused is None:
            raise
        return refused


def build_router(registry: Registry) -> APIRouter:
    """The registry routes, bound to ``registry``."""
    router = APIRouter(prefix="/v1/registry", tags=["registry"])
    gate = _Gate(registry)
    size = registry.settings.answer_bytes
    answer_min = registry.settings.answer_min_ms / 1000

    @router.post(
        "/checks", **_documented(CheckRequest, 200, CheckAnswerBody, 401, 403, 409, 413, 422, 429)
    )
    async def post_check(request: Request) -> Response:
        return await answer_check(
            registry, lambda: gate.authenticate(request), lambda: gate.read_body(request)
        )

    @router.get("/checks/{check_ref}", **_documented(None, 200, CheckAnswerBody, 401, 403, 404))
    async def get_check(check_ref: str, request: Request) -> Response:
        held = _Floor(answer_min)

        def work() -> Response:
            establishment = gate.authenticate(request)
            return _answer(registry.check_status(check_ref[:40], establishment), size)

        response = await run_in_threadpool(_guarded_sync, work)
        return await held.release(response)

    @router.post(
        "/workers",
        **_documented(WorkerRegistration, 201, WorkerCreated, 401, 403, 404, 409, 413, 422, 429),
    )
    async def post_worker(request: Request) -> Response:
        async def work() -> Response:
            establishment = await run_in_threadpool(gate.authenticate, request)
            registration = await gate.parse(request, WorkerRegistration, establishment)
            ref = await run_in_threadpool(registry.register_worker, establishment, registration)
            body = json.dumps({"worker_ref": ref}).encode()
            return Response(body, status_code=201, media_type="application/json", headers=NO_STORE)

        return await _guarded(work)

    @router.delete(
        "/workers/{worker_ref}", **_documented(None, 204, None, 401, 403, 404, 409, 422, 429)
    )
    async def delete_worker(worker_ref: str, request: Request) -> Response:
        async def work() -> Response:
            establishment = await run_in_threadpool(gate.authenticate, request)
            await run_in_threadpool(registry.end_worker, establishment, worker_ref[:40])
            return Response(status_code=204, headers=NO_STORE)

        return await _guarded(work)

    return router


async def answer_check(
    registry: Registry,
    establishment: Callable[[], Establishment],
    body: Callable[[], Awaitable[bytes | None]],
) -> Response:
    """The one path of an establishment's check, for ``POST /v1/registry/checks`` and the web
    console alike (the console is not a side door): ``establishment`` names the caller (or
    raises the refusal; it runs on the pool thread), ``body`` reads the JSON request (None:
    larger than ``max_body_bytes``). The same authentication, validation and refusal
    counting, quota, single-use consent reference, audit, padded answer and minimum answer
    time apply to both.

    The answer's release time is fixed when the check begins (before the body is read), and
    all the blocking work — naming the caller, validating, the check and its write turn — is
    one trip to the thread pool."""
    held = _Floor(registry.settings.answer_min_ms / 1000)
    gate = _Gate(registry)
    size = registry.settings.answer_bytes
    data = await body()

    def work() -> Response:
        caller = establishment()
        check = gate.validated(data, CheckRequest, caller)
        return _answer(registry.check(check, caller), size)

    response = await run_in_threadpool(_guarded_sync, work)
    return await held.release(response)


def create_app(registry: Registry) -> FastAPI:
    """A standalone app serving only the registry routes (tests, the benchmark, a small
    deployment behind a TLS-terminating proxy). No OpenAPI pages: nothing to browse."""
    app = FastAPI(title="cpims-adapter registry", docs_url=None, redoc_url=None, openapi_url=None)
    app.include_router(build_router(registry))
    return app


def serve_registry(
    url: str,
    kek: bytes,
    settings: RegistrySettings,
    *,
    host: str = "127.0.0.1",
    port: int = 0,
    workers: int = 1,
    on_ready: Callable[[str], None] | None = None,
) -> None:
    """The standalone registry app on ``host:port`` in ``workers`` processes, until SIGTERM
    (the benchmark, a small deployment behind a TLS-terminating proxy). Each worker opens
    its own store over ``url``."""
    sock = bind(host, port)
    try:
        if on_ready is not None:
            on_ready(f"http://{host}:{sock.getsockname()[1]}")

        def config() -> uvicorn.Config:
            store = StateStore(url)
            registry = Registry.open(store, KeyRing.open(store, kek), settings)
            return uvicorn.Config(
                create_app(registry), access_log=False, log_level="warning", lifespan="off"
            )

        serve_workers(config, sock, workers, name="registry")
    finally:
        sock.close()


class _Floor:
    """Holds an answer until ``seconds`` after the request began: the outcome's own work (a
    hit writes review and monitoring rows, a miss does not) cannot show in the time
    (privacy.md §7 item 3). Errors are held as long as answers, so they tell nothing either.

    The release time is fixed once, when the request begins (the event loop's clock), and
    only what is left of it is slept, on the loop's timer: no task and no thread per request.
    """

    __slots__ = ("release_at",)

    def __init__(self, seconds: float) -> None:
        self.release_at = asyncio.get_running_loop().time() + seconds

    async def release(self, response: Response) -> Response:
        remaining = self.release_at - asyncio.get_running_loop().time()
        if remaining > 0:
            await asyncio.sleep(remaining)
        return response
