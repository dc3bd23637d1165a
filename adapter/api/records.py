"""``POST /v1/records/{record_type}``: a record of any type the calling department's mapping
file declares (``[record_types.<name>]``: its label, statuses and details), e.g. education's
``school_enrolment``. A department is data (docs/architecture.md): a new record type needs a
mapping file, not a route.

The messages are built once, at start-up, from the record types the wiring read from the
configured mapping files (``adapter.app.record_types``): for each department and record type,
a strict model whose ``status`` must be one of the type's declared statuses and whose
``details`` may hold only its declared facts. The record then takes the same path as the FIR
links, court orders and verifications (``InboundService.record``): idempotent by message_id,
202, written into the case's "Linked department records" by the drain, its status mapped onto
the adapter's as the status feed maps it.
"""

# No `from __future__ import annotations`: FastAPI reads the route signature at runtime.
from collections.abc import Awaitable, Callable, Mapping
from typing import Annotated, Any

from fastapi import BackgroundTasks, FastAPI, Path, Request
from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    Field,
    StringConstraints,
    create_model,
)
from pydantic_core import PydanticCustomError
from starlette.responses import JSONResponse, Response

from adapter.api.errors import ApiError
from adapter.api.schemas import Instant, LongText, ShortText, _AboutCase, _Strict
from adapter.jobs.inbound import Answer, DepartmentRecord, Envelope
from adapter.mappings.mapped_spec import RecordTypeSpec

ROUTE = "records"  # the inbox's route name of these messages
NOT_DECLARED = "not_declared"  # our error type (errors.OWN_TYPES): its message is ours
_NAME = r"^[a-z][a-z0-9_]{0,39}$"  # mapped_spec: a record type's and a detail's name

DetailName = Annotated[str, StringConstraints(pattern=_NAME)]


class RecordBody(_Strict):
    """One record as your department keeps it. Which statuses and details a record type takes
    is declared in your department's mapping file (``[record_types.<name>]``)."""

    reference: ShortText = Field(
        description="Your reference for the record. A record sent again under the same "
        "reference updates its row in the case; another reference is another row."
    )
    status: ShortText = Field(
        description="One of the statuses your mapping file declares for this record type "
        "([record_types.<name>.statuses]); the case shows the adapter status it maps onto."
    )
    updated_at: Instant | None = None
    note: LongText | None = Field(None, description="Shown to the CPO in the case.")
    details: dict[DetailName, ShortText] = Field(
        default_factory=dict,
        description="Facts your mapping file declares for this record type "
        "([record_types.<name>.details]), each as short text; shown to the CPO.",
    )


class RecordIn(_AboutCase):
    """A record about a case, of a type your department's mapping file declares."""

    record: RecordBody

    def to_record(self, record_type: str, statuses: Mapping[str, str]) -> DepartmentRecord:
        """The inbound service's record, its status mapped onto the adapter's."""
        record = self.record
        return DepartmentRecord(
            case=self.case_ref(),
            record_type=record_type,
            status=statuses[record.status],
            natural_key=record.reference,
            external_ref=record.reference,
            note=record.note,
            details=dict(record.details),
            updated_at=record.updated_at,
        )


def record_model(record_type: str, declared: RecordTypeSpec) -> type[RecordIn]:
    """The strict message of one declared record type (its statuses and details only)."""
    statuses = ", ".join(declared.statuses) or "none (ask for its [record_types] statuses)"
    facts = ", ".join(declared.details) or "nothing"

    def known_status(value: str) -> str:
        if value not in declared.statuses:
            raise PydanticCustomError(
                NOT_DECLARED,
                "must be one of the statuses your mapping file declares for this record "
                "type: {allowed}.",
                {"allowed": statuses},
            )
        return value

    def known_details(value: Any) -> Any:
        # Checked before the keys are parsed, so an undeclared key is never named back.
        if isinstance(value, dict) and any(key not in declared.details for key in value):
            raise PydanticCustomError(
                NOT_DECLARED,
                "may hold only the details your mapping file declares for this record type "
                "({allowed}): remove the others.",
                {"allowed": facts},
            )
        return value

    name = "".join(part.title() for part in record_type.split("_"))
    body = create_model(
        f"{name}Record",
        __base__=RecordBody,
        status=(Annotated[ShortText, AfterValidator(known_status)], ...),
        details=(Annotated[dict[str, ShortText], BeforeValidator(known_details)], {}),
    )
    return create_model(f"{name}In", __base__=RecordIn, record=(body, ...))


def add_record_route(
    app: FastAPI,
    *,
    record_types: Mapping[str, Mapping[str, RecordTypeSpec]],
    prefix: str,
    department: Any,
    message: Callable[[Request, type[RecordIn]], Awaitable[RecordIn]],
    envelope: Callable[[str, str, BaseModel, str], Envelope],
    answer: Callable[[BackgroundTasks, Callable[[], Answer]], Awaitable[JSONResponse]],
    record: Callable[[Envelope, DepartmentRecord], Answer],
    documented: Mapping[str, Any],
) -> None:
    """Add ``POST {prefix}/records/{record_type}`` to ``app``: ``record_types`` maps each
    department to the record types its mapping file declares; ``department`` is the app's
    authenticating dependency type, ``message``, ``envelope`` and ``answer`` its steps of
    every write, ``record`` the inbound service's ``record``; ``documented`` the route's
    OpenAPI options."""
    models = {
        caller: {
            name: (record_model(name, declared), dict(declared.statuses))
            for name, declared in declared_types.items()
        }
        for caller, declared_types in record_types.items()
    }
    declared = sorted({name for types in models.values() for name in types})
    options = dict(documented)
    options["responses"] = {
        **options["responses"],
        404: {
            **options["responses"][404],
            "description": "A record type your department's mapping file does not declare, "
            "or no such referral for your department.",
        },
    }

    @app.post(f"{prefix}/records/{{record_type}}", **options)
    async def post_record(
        record_type: Annotated[
            str,
            Path(
                pattern=_NAME,
                description="A record type your department's mapping file declares, e.g. "
                "school_enrolment (the list holds every department's: each sends its own).",
                json_schema_extra={"enum": declared} if declared else None,
            ),
        ],
        request: Request,
        background: BackgroundTasks,
        caller: department,
    ) -> Response:
        """Record anything your department keeps about a case, of a type its mapping file
        declares (``[record_types.<name>]``): shown in the case's linked department records
        as that record type, with the adapter status your status maps onto."""
        known = models.get(caller, {}).get(record_type)
        if known is None:
            raise ApiError(
                404,
                "unknown_record_type",
                "record_type is not a record type your department's mapping file declares "
                "([record_types.<name>]): use one it declares, or ask the adapter's "
                "administrator to declare it.",
                field="record_type",
            )
        model, statuses = known
        body = await message(request, model)
        env = envelope(caller, ROUTE, body, record_type)
        return await answer(background, lambda: record(env, body.to_record(record_type, statuses)))
