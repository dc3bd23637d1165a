"""The inbound API: departments post referrals, responses and records; the adapter carries them
into Primero (issue 5). Routes are versioned under ``/v1/``; ``/openapi.json`` describes them.

Every write follows one path: authenticate (401) → size (413) → media type (415) → strict JSON
validation (400/422) → the inbound service (403/404/409, or 202 with the work committed to the
outbox) → after the answer is sent, a drain delivers the work into Primero. A request that is
refused changes nothing. Nothing here logs a body, a query string or a header value.
"""

# No `from __future__ import annotations`: FastAPI reads the route signatures at runtime, and
# the `Department` dependency type below is local to each group of routes.
import asyncio
import contextlib
import json
import re
import threading
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Annotated, Any, TypeVar

from fastapi import BackgroundTasks, FastAPI, Request, Security
from fastapi.openapi.utils import get_openapi
from fastapi.security import APIKeyHeader, HTTPAuthorizationCredentials, HTTPBearer
from pydantic import BaseModel, ValidationError
from starlette.concurrency import run_in_threadpool
from starlette.responses import JSONResponse, Response

from adapter._version import __version__
from adapter.api.auth import Credentials, authenticate
from adapter.api.edge import EdgeMiddleware, install_error_handlers
from adapter.api.errors import (
    ApiError,
    field_path,
    from_inbound,
    from_validation,
)
from adapter.api.records import RecordIn, add_record_route
from adapter.api.schemas import (
    REQUEST_MODELS,
    ConvictionAnswer,
    ConvictionIn,
    CourtOrderIn,
    ErrorBody,
    FirLinkIn,
    Health,
    RecordAccepted,
    ReferralAccepted,
    ReferralIn,
    ResponseAccepted,
    ResponseIn,
    VerificationIn,
)
from adapter.app.drain import Drainer
from adapter.config import Settings
from adapter.config.api import ApiSettings
from adapter.config.registry import RegistrySettings
from adapter.console.app import mount_console
from adapter.errors import AdapterError
from adapter.jobs.inbound import (
    Answer,
    Envelope,
    InboundError,
    InboundService,
    IntakeOptions,
    request_hash,
)
from adapter.mappings.mapped_spec import RecordTypeSpec
from adapter.primero import PrimeroClient
from adapter.primero.locations import LocationCatalogue
from adapter.privacy import KeyRing
from adapter.privacy.events import record_security_event
from adapter.registry import Registry
from adapter.state import StateStore

API_PREFIX = "/v1"
_REFERRAL_KEY = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:/-]{0,149}$")
_JSON = "application/json"
_M = TypeVar("_M", bound=BaseModel)

_ERRORS: dict[int | str, dict[str, Any]] = {
    400: {"model": ErrorBody, "description": "Malformed JSON or Content-Length."},
    401: {"model": ErrorBody, "description": "Missing or unknown credentials."},
    403: {"model": ErrorBody, "description": "A case code not issued to your department."},
    404: {"model": ErrorBody, "description": "No such referral for your department."},
    409: {
        "model": ErrorBody,
        "description": "message_id reused for a different message, or the referral is closed.",
    },
    413: {"model": ErrorBody, "description": "Body larger than the configured limit."},
    415: {"model": ErrorBody, "description": "Body not sent as application/json."},
    422: {"model": ErrorBody, "description": "A field is missing, unknown, or invalid."},
    503: {"model": ErrorBody, "description": "The adapter cannot take messages right now."},
}

DESCRIPTION = """\
Departments (health, police, NADRA birth registration, courts) send the child protection unit
referrals, answers to its referrals, FIR links, court orders and birth-verification results.

* **Authentication**: your department's API key as `Authorization: Bearer <key>` or
  `X-API-Key: <key>`, or your department's TLS client certificate (mutual TLS).
* **Case references**: the `case_code` the adapter issued to *your* department (or the
  `referral_key` of a referral it delivered to you). Another department's code is refused (403)
  and recorded as a security event.
* **Idempotency**: every write carries a `message_id` (UUID). Re-sending a message returns the
  first answer (same status and body, header `Idempotent-Replayed: true`) and changes nothing;
  a different message under a used id is refused (409).
* **Answers**: `202 Accepted` once the message is stored; the adapter then writes it into
  Primero. Errors are `{"error": {"code", "message", "field"}}` and never repeat your values.
* **Never send** CNIC numbers: they are refused wherever they appear, except in one route:
  `POST /v1/convictions` (court departments only) names the convicted person for the
  offender registry. Its answer is `accepted` or `not_registrable` and a reference, nothing
  of it goes to Primero, and another department is refused (403, a security event).
"""


def create_app(
    settings: Settings,
    *,
    store: StateStore,
    keyring: KeyRing,
    primero_client_factory: Callable[[], PrimeroClient],
    api_settings: ApiSettings | None = None,
    registry: Registry | None = None,
    record_types: Mapping[str, Mapping[str, RecordTypeSpec]] | None = None,
) -> FastAPI:
    """The inbound API over ``store`` and ``keyring``; Primero is reached through clients made
    by ``primero_client_factory`` (one per drain, closed afterwards).

    ``api_settings`` defaults to ``settings.api`` once that section is mounted, else to the
    defaults. Conviction orders go to ``registry`` (default: opened over ``store`` with
    ``settings.registry`` at the first order). ``record_types``: each department → the record
    types its mapping file declares, for ``POST /v1/records/{record_type}`` (the wiring reads
    them: ``adapter.app.record_types``). Raises ConfigError for malformed department
    credentials.
    """
    api = api_settings or getattr(settings, "api", None) or ApiSettings()
    credentials = Credentials.from_departments(settings.departments)
    service = InboundService(
        settings,
        store,
        keyring,
        intake=IntakeOptions(
            module_id=api.module_id, owners=api.responsible_cpo, default_owner=api.default_cpo
        ),
        # A district Primero does not know is refused at once (422 child.district) instead
        # of being accepted and then refused by Primero (finding F1).
        locations=LocationCatalogue(primero_client_factory, ttl_seconds=api.locations_ttl_seconds),
    )
    drainer = Drainer(service, settings, primero_client_factory)
    app = _new_app(service, drainer, api.drain_interval_seconds)
    inbound = Inbound(api, service, drainer, _calling_department(credentials))
    courts, the_registry = _offender_registry(store, keyring, settings, registry)

    # The routes, in the order /openapi.json lists them: one line per group.
    _referral_routes(app, inbound)
    _record_routes(app, inbound)
    _declared_record_route(app, inbound, record_types or {})
    _conviction_route(app, inbound, store, courts, the_registry)
    _health_route(app, store)
    mount_console(app, settings, store, keyring, the_registry)

    app.openapi = lambda: _openapi(app)  # type: ignore[method-assign]
    return app


def _new_app(service: InboundService, drainer: Drainer, drain_interval: float) -> FastAPI:
    """The FastAPI app without routes: its drain timer, edge middleware and error answers."""

    @contextlib.asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        # Work a crash left in the outbox is delivered at start-up, then retried on a timer.
        task = asyncio.create_task(drainer.loop(drain_interval))
        try:
            yield
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    app = FastAPI(
        title="cpims-adapter inbound API",
        version=__version__,
        description=DESCRIPTION,
        docs_url=None,  # the Swagger UI loads scripts from a CDN: not on a child-data host
        redoc_url=None,
        openapi_url="/openapi.json",
        lifespan=lifespan,
    )
    app.state.service = service
    app.state.drainer = drainer
    app.add_middleware(EdgeMiddleware)
    install_error_handlers(app)
    return app


def _calling_department(credentials: Credentials) -> Callable[..., Awaitable[str]]:
    """The dependency that authenticates a request and names the department that sent it."""
    bearer_scheme = HTTPBearer(auto_error=False, description="Your department's API key.")
    key_scheme = APIKeyHeader(
        name="X-API-Key", auto_error=False, description="Your department's API key."
    )

    async def calling_department(
        request: Request,
        bearer: Annotated[HTTPAuthorizationCredentials | None, Security(bearer_scheme)],
        api_key: Annotated[str | None, Security(key_scheme)],
    ) -> str:
        department = authenticate(
            credentials,
            bearer=bearer.credentials if bearer else None,
            api_key=api_key,
            scope=request.scope,
        )
        request.state.department = department  # for the access log line
        return department

    return calling_department


@dataclass(frozen=True)
class Inbound:
    """What the write routes share: the inbound service, the drain that follows an answer,
    the body limit, and ``calling_department`` (use it as
    ``Annotated[str, Security(inbound.calling_department)]``)."""

    api: ApiSettings
    service: InboundService
    drainer: Drainer
    calling_department: Callable[..., Awaitable[str]]

    async def message(self, request: Request, model: type[_M]) -> _M:
        """The body, read within the limit and validated strictly as ``model``."""
        raw = await read_body(request, self.api.max_body_bytes)
        try:
            return model.model_validate_json(raw)
        except ValidationError as exc:
            raise from_validation(exc, model) from None

    async def answer(
        self, background: BackgroundTasks, handler: Callable[[], Answer]
    ) -> JSONResponse:
        """Run ``handler`` off the event loop and answer; its work drains after the answer."""
        try:
            result = await run_in_threadpool(handler)
        except InboundError as exc:
            raise from_inbound(exc) from None
        for job in result.jobs:
            # Runs after the answer is sent: the message is already safe in the outbox.
            background.add_task(self.drainer.drain, job)
        headers = {"Idempotent-Replayed": "true"} if result.replayed else {}
        return JSONResponse(
            result.body, status_code=result.status_code, headers=headers, background=background
        )

    @staticmethod
    def envelope(department: str, route: str, body: BaseModel, path: str = "") -> Envelope:
        """The message's idempotency envelope: its id and a hash of route, path and body."""
        message_id = str(body.model_dump()["message_id"])
        digest = request_hash(route, path, body.model_dump(mode="json"))
        return Envelope(department, message_id, route, digest)


def _referral_routes(app: FastAPI, inbound: Inbound) -> None:
    """A department refers a child, and answers a referral the unit sent it."""
    Department = Annotated[str, Security(inbound.calling_department)]
    service = inbound.service

    @app.post(
        f"{API_PREFIX}/referrals",
        **_documented(ReferralIn, ReferralAccepted, "Refer a child to the child protection unit"),
    )
    async def submit_referral(
        request: Request, background: BackgroundTasks, department: Department
    ) -> Response:
        """Create (or complete) the child's case in Primero, owned by the responsible CPO and
        flagged for review; a possible match with an existing case is flagged, never merged.
        The answer carries the case code your department uses for this child from now on."""
        body = await inbound.message(request, ReferralIn)
        env = inbound.envelope(department, "referrals", body)
        return await inbound.answer(
            background, lambda: service.receive_referral(env, body.to_intake())
        )

    @app.post(
        f"{API_PREFIX}/referrals/{{referral_key}}/response",
        **_documented(ResponseIn, ResponseAccepted, "Accept, reject or complete a referral"),
    )
    async def respond_to_referral(
        referral_key: str, request: Request, background: BackgroundTasks, department: Department
    ) -> Response:
        """Answer a referral the child protection unit sent your department. The status and
        note appear in the Primero referral and the case's linked department records."""
        if not _REFERRAL_KEY.match(referral_key):
            raise ApiError(
                422,
                "invalid_format",
                "referral_key must be the key from the referral the adapter delivered (letters, "
                "digits and . _ : / -, up to 150 characters).",
                field="referral_key",
            )
        body = await inbound.message(request, ResponseIn)
        env = inbound.envelope(department, "referral-response", body, referral_key)
        return await inbound.answer(
            background, lambda: service.respond(env, body.to_response(referral_key))
        )


def _record_routes(app: FastAPI, inbound: Inbound) -> None:
    """A department's records about a case: FIR links, court orders, birth verifications."""
    Department = Annotated[str, Security(inbound.calling_department)]
    service = inbound.service

    @app.post(
        f"{API_PREFIX}/fir-links",
        **_documented(FirLinkIn, RecordAccepted, "Link a case to an FIR"),
    )
    async def post_fir_link(
        request: Request, background: BackgroundTasks, department: Department
    ) -> Response:
        """Record an FIR about the child (departments.md §4); shown in the case's linked
        department records as record type `fir`."""
        body = await inbound.message(request, FirLinkIn)
        env = inbound.envelope(department, "fir-links", body)
        return await inbound.answer(background, lambda: service.record(env, body.to_record()))

    @app.post(
        f"{API_PREFIX}/court-orders",
        **_documented(CourtOrderIn, RecordAccepted, "Record a court order about a case"),
    )
    async def post_court_order(
        request: Request, background: BackgroundTasks, department: Department
    ) -> Response:
        """Record a court order (departments.md §5); shown in the case's linked department
        records as record type `court_order`."""
        body = await inbound.message(request, CourtOrderIn)
        env = inbound.envelope(department, "court-orders", body)
        return await inbound.answer(background, lambda: service.record(env, body.to_record()))

    @app.post(
        f"{API_PREFIX}/birth-verifications",
        **_documented(VerificationIn, RecordAccepted, "Record a birth-verification result"),
    )
    async def post_birth_verification(
        request: Request, background: BackgroundTasks, department: Department
    ) -> Response:
        """Record a birth-registration check (departments.md §3): match status and
        registration number only, as record type `birth_registration`."""
        body = await inbound.message(request, VerificationIn)
        env = inbound.envelope(department, "birth-verifications", body)
        return await inbound.answer(background, lambda: service.record(env, body.to_record()))


def _declared_record_route(
    app: FastAPI, inbound: Inbound, record_types: Mapping[str, Mapping[str, RecordTypeSpec]]
) -> None:
    """``POST /v1/records/{record_type}``: records of the types the departments' mapping files
    declare (api/records.py), through the same steps as every write."""
    add_record_route(
        app,
        record_types=record_types,
        prefix=API_PREFIX,
        department=Annotated[str, Security(inbound.calling_department)],
        message=inbound.message,
        envelope=inbound.envelope,
        answer=inbound.answer,
        record=inbound.service.record,
        documented=_documented(RecordIn, RecordAccepted, "Record a record of a declared type"),
    )


def _offender_registry(
    store: StateStore, keyring: KeyRing, settings: Settings, registry: Registry | None
) -> tuple[frozenset[str], Callable[[], Registry]]:
    """The court departments, and the offender registry (opened at the first order unless
    one was handed in)."""
    registry_settings: RegistrySettings = (
        registry.settings if registry else getattr(settings, "registry", RegistrySettings())
    )
    opened: list[Registry] = [registry] if registry else []
    opening = threading.Lock()

    def the_registry() -> Registry:
        with opening:
            if not opened:
                opened.append(Registry.open(store, keyring, registry_settings))
            return opened[0]

    return frozenset(registry_settings.court_departments), the_registry


def _conviction_route(
    app: FastAPI,
    inbound: Inbound,
    store: StateStore,
    court_departments: frozenset[str],
    the_registry: Callable[[], Registry],
) -> None:
    """A court's conviction orders, for the offender registry (never for Primero)."""
    Department = Annotated[str, Security(inbound.calling_department)]
    service = inbound.service

    @app.post(
        f"{API_PREFIX}/convictions",
        include_in_schema=bool(court_departments),
        **_conviction_documented(),
    )
    async def post_conviction(request: Request, department: Department) -> Response:
        """A court's conviction order, for the offender registry (court departments only).
        The answer is `accepted` (the order is on the register, or updated it) or
        `not_registrable` (none of its offences is one the registry holds), with the entry's
        reference. Nothing of it is written to Primero."""
        if department not in court_departments:
            await run_in_threadpool(_not_a_court, store, department)
            raise ApiError(
                403,
                "not_a_court",
                "only a court department may send conviction orders: refused.",
            )
        raw = await read_body(request, inbound.api.max_body_bytes)
        try:
            body = ConvictionIn.model_validate_json(raw)
        except ValidationError as exc:
            raise _conviction_invalid(exc) from None
        reg = await run_in_threadpool(the_registry)
        content = json.dumps(
            {"route": "convictions", "body": body.model_dump(mode="json")},
            sort_keys=True,
            separators=(",", ":"),
        )
        env = Envelope(
            department, str(body.message_id), "convictions", reg.context.keys.message_mac(content)
        )

        def ingest() -> tuple[str, str | None]:
            offences = reg.settings.offences
            code = next((c for c in body.offence_codes if c in offences), None)
            if code is None:
                return "not_registrable", None
            result = reg.ingest_conviction(body.to_order(code))
            if result.action == "not_registrable":
                return "not_registrable", None
            return "accepted", result.entry_ref

        try:
            result = await run_in_threadpool(service.receive_conviction, env, ingest)
        except InboundError as exc:
            raise from_inbound(exc) from None
        headers = {"Idempotent-Replayed": "true"} if result.replayed else {}
        return JSONResponse(result.body, status_code=result.status_code, headers=headers)


def _health_route(app: FastAPI, store: StateStore) -> None:
    @app.get(
        f"{API_PREFIX}/health",
        response_model=Health,
        responses={503: _ERRORS[503]},
        summary="Is the API up and its state store reachable?",
    )
    async def health() -> Response:
        """No credentials needed; says nothing about cases or departments."""
        try:
            await run_in_threadpool(store.schema_version)
        except AdapterError:
            raise ApiError(
                503, "state_store_unavailable", "the state store cannot be reached."
            ) from None
        return JSONResponse({"status": "ok", "version": __version__})


async def read_body(request: Request, limit: int) -> bytes:
    """The raw body, refusing (413) anything over ``limit`` bytes before it is parsed, and
    anything but JSON (415)."""
    length = request.headers.get("content-length")
    if length is not None:
        if not length.isdigit():
            raise ApiError(400, "bad_content_length", "Content-Length must be a number of bytes.")
        if int(length) > limit:
            raise _too_large(limit)
    media = request.headers.get("content-type", "").split(";", 1)[0].strip().lower()
    if media != _JSON:
        raise ApiError(
            415,
            "unsupported_media_type",
            "send the body as JSON with the header Content-Type: application/json.",
        )
    chunks: list[bytes] = []
    size = 0
    # Chunked uploads have no Content-Length: count while reading, stop at the limit.
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise _too_large(limit)
        chunks.append(chunk)
    return b"".join(chunks)


def _too_large(limit: int) -> ApiError:
    return ApiError(
        413,
        "body_too_large",
        f"the body is larger than {limit} bytes: send only the fields this API documents.",
    )


def _documented(model: type[BaseModel], accepted: type[BaseModel], summary: str) -> dict[str, Any]:
    """Route options: the body schema (validated by hand, strictly) and every answer."""
    return {
        "summary": summary,
        "status_code": 202,
        "response_class": JSONResponse,
        "responses": {202: {"model": accepted, "description": "Accepted."}, **_ERRORS},
        "openapi_extra": {
            "requestBody": {
                "required": True,
                "content": {_JSON: {"schema": {"$ref": f"#/components/schemas/{model.__name__}"}}},
            }
        },
    }


def _conviction_documented() -> dict[str, Any]:
    options = _documented(ConvictionIn, ConvictionAnswer, "Register a conviction order")
    options["status_code"] = 200
    responses = {k: v for k, v in options["responses"].items() if k not in (202, 404)}
    responses[200] = {"model": ConvictionAnswer, "description": "Done (or a replay)."}
    responses[403] = {"model": ErrorBody, "description": "Your department is not a court."}
    options["responses"] = responses
    return options


def _not_a_court(store: StateStore, department: str) -> None:
    with store.transaction() as conn:
        record_security_event(
            conn,
            "conviction_from_non_court",
            department=department,
            detail="POST /v1/convictions from a department not in registry.court_departments",
        )


# Our own error types of the conviction message (schemas.py); errors.py words the others.
_CONVICTION_TYPES = frozenset({"cnic_invalid", "name_invalid"})


def _conviction_invalid(exc: ValidationError) -> ApiError:
    first = exc.errors(include_url=False, include_input=False)[0]
    if first["type"] in _CONVICTION_TYPES:
        field = field_path(first["loc"])
        return ApiError(422, "invalid_value", f"{field} {first['msg']}", field=field)
    return from_validation(exc, ConvictionIn)


def _openapi(app: FastAPI) -> dict[str, Any]:
    if app.openapi_schema:
        return app.openapi_schema
    schema = get_openapi(
        title=app.title, version=app.version, description=app.description, routes=app.routes
    )
    components = schema.setdefault("components", {}).setdefault("schemas", {})
    models: tuple[type[BaseModel], ...] = (*REQUEST_MODELS, RecordIn)
    for model in models:
        definition = model.model_json_schema(ref_template="#/components/schemas/{model}")
        for name, nested in definition.pop("$defs", {}).items():
            components.setdefault(name, nested)
        components[model.__name__] = definition
    app.openapi_schema = schema
    return schema
