"""Errors as the inbound API answers them: ``{"error": {"code", "message", "field"}}``.

``code`` is stable (clients key on it), ``message`` says what is wrong and how to fix it, and
``field`` is the dotted path of the offending field (``child.date_of_birth``,
``concern_codes[1]``) or null. A message never repeats a value from the request: pydantic's own
texts can quote input (a UUID parse error quotes the bad character), so every error type gets
its own wording here.
"""

from __future__ import annotations

import types
import typing
from collections.abc import Mapping, Sequence
from typing import Any

from pydantic import BaseModel, ValidationError
from pydantic_core import ErrorDetails
from starlette.responses import JSONResponse

from adapter.errors import AdapterError
from adapter.jobs.inbound import (
    CaseCodeRefused,
    InboundError,
    MessageIdReused,
    ReferralClosed,
    UnknownDistrict,
    UnknownReferral,
)

# Error types raised by our own validators (schemas.py): their messages are ours, value-free,
# written to follow the field's name ("child.date_of_birth must not be in the future.") or,
# for a rule across fields, as a whole sentence with the field in the error's context.
OWN_TYPES = frozenset(
    {
        "cnic_refused",
        "one_of",
        "future_date",
        "control_characters",
        "date_range",
        "needs_field",
        "not_declared",  # records.py: a status or detail the mapping file does not declare
    }
)
_TYPE_TEXT = {
    "string_type": "must be a JSON string",
    "int_type": "must be a JSON integer",
    "int_from_float": "must be a whole number",
    "int_parsing": "must be a whole number",
    "bool_type": "must be true or false",
    "list_type": "must be a JSON array",
    "tuple_type": "must be a JSON array",
    "dict_type": "must be a JSON object",
    "model_type": "must be a JSON object",
    "model_attributes_type": "must be a JSON object",
    "uuid_type": "must be a UUID string such as 6f1c2d64-3b0e-4d8a-9a51-1f0c6c1b7e2a",
    "uuid_parsing": "must be a UUID string such as 6f1c2d64-3b0e-4d8a-9a51-1f0c6c1b7e2a",
    "uuid_version": "must be a UUID string such as 6f1c2d64-3b0e-4d8a-9a51-1f0c6c1b7e2a",
    "date_type": "must be a date written YYYY-MM-DD",
    "date_parsing": "must be a date written YYYY-MM-DD",
    "date_from_datetime_parsing": "must be a date written YYYY-MM-DD",
    "date_from_datetime_inexact": "must be a date written YYYY-MM-DD (no time)",
    "datetime_type": "must be a date-time with a time zone, e.g. 2026-03-01T10:00:00Z",
    "datetime_parsing": "must be a date-time with a time zone, e.g. 2026-03-01T10:00:00Z",
    "datetime_from_date_parsing": "must be a date-time with a time zone, e.g. 2026-03-01T10:00:00Z",
    "timezone_aware": "must carry a time zone (end it with Z or +05:00)",
    "none_required": "must be null",
    "string_unicode": "must be valid Unicode text",
}
# What a pattern-checked field must look like, by field name.
_FORMATS = {
    "case_code": "a case code exactly as the adapter sent it (cp1.<department>.<version>.<code>)",
    "referral_key": "the referral key from the referral the adapter delivered (letters, digits, "
    "and . _ : / -)",
    "reference": "your own reference: letters, digits and . _ : / - (up to 100 characters)",
    "district": "a Primero location code such as PK-SD-KHI",
    "phone": "a phone number: digits, spaces, dashes and a leading +",
    "email": "an e-mail address",
    "reason": "a short code: lowercase letters, digits, _ and -",
    "offence_sections": "a section such as 377-B or PPC-376",
    "document_sha256": "64 lowercase hexadecimal characters",
    "registration_number": "letters, digits, / and - only",
}
_ERROR_STATUS: dict[type[InboundError], int] = {
    MessageIdReused: 409,
    CaseCodeRefused: 403,
    UnknownReferral: 404,
    ReferralClosed: 409,
    UnknownDistrict: 422,
}


class ApiError(AdapterError):
    """An answer other than success, raised anywhere in a request and rendered by the app."""

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        *,
        field: str | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.field = field
        self.headers = dict(headers or {})

    def response(self) -> JSONResponse:
        return error_response(self.status, self.code, self.message, self.field, self.headers)


def error_response(
    status: int,
    code: str,
    message: str,
    field: str | None = None,
    headers: Mapping[str, str] | None = None,
) -> JSONResponse:
    """The one error shape of the API."""
    body = {"error": {"code": code, "message": message, "field": field}}
    return JSONResponse(body, status_code=status, headers=dict(headers or {}))


def from_inbound(error: InboundError) -> ApiError:
    """The HTTP answer to a message the inbound service refused."""
    return ApiError(_ERROR_STATUS.get(type(error), 400), error.code, str(error), field=error.field)


def from_validation(exc: ValidationError, model: type[BaseModel]) -> ApiError:
    """The first problem of a body that failed validation, as a 400 (not JSON) or 422."""
    errors = exc.errors(include_url=False, include_input=False, include_context=True)
    first = errors[0]
    if first["type"] == "json_invalid":
        where = str((first.get("ctx") or {}).get("error", "")).split(" at ")[-1]
        hint = f" (at {where})" if "line" in where else ""
        return ApiError(
            400,
            "malformed_json",
            f"the body is not valid JSON{hint}: send one JSON object encoded as UTF-8.",
        )
    ctx = first.get("ctx") or {}
    field = field_path(first["loc"])
    code, text = describe(first, model)
    if "field" in ctx:
        # A rule across fields (a model validator) names its field, relative to where it ran;
        # its message is a whole sentence.
        field = field_path([*first["loc"], str(ctx["field"])])
    elif field is None and first["type"] in ("model_type", "dict_type"):
        text = "the body must be one JSON object (see /openapi.json for this route's schema)"
    elif field is not None:
        text = f"{field} {text}"
    more = len(errors) - 1
    if more:
        text += f" ({more} more problem{'s' if more > 1 else ''} after this one)"
    return ApiError(422, code, text, field=field)


def describe(error: ErrorDetails, model: type[BaseModel]) -> tuple[str, str]:
    """(code, value-free text naming the fix) for one pydantic error."""
    kind = error["type"]
    ctx: dict[str, Any] = dict(error.get("ctx") or {})
    loc = error["loc"]
    name = str(loc[-1]) if loc and isinstance(loc[-1], str) else ""
    if kind in OWN_TYPES:
        return ("cnic_refused" if kind == "cnic_refused" else "invalid_value"), error["msg"]
    if kind == "missing":
        return "missing_field", "is required: add it."
    if kind == "extra_forbidden":
        if "cnic" in name.lower():
            return (
                "cnic_refused",
                "is a CNIC field: CNIC numbers are never accepted by this API (privacy "
                "policy: parents' CNICs stay with NADRA). Remove it.",
            )
        allowed = ", ".join(allowed_fields(model, loc[:-1]))
        return "unknown_field", f"is not a field of this message: remove it (allowed: {allowed})."
    if kind in _TYPE_TEXT:
        return "wrong_type", _TYPE_TEXT[kind] + "."
    if kind == "string_pattern_mismatch":
        key = name or _list_owner(loc)
        return "invalid_format", f"must be {_FORMATS.get(key, 'in the documented format')}."
    if kind in ("literal_error", "enum"):
        return "invalid_value", f"must be one of {ctx.get('expected', 'the documented values')}."
    if kind == "string_too_short":
        return "invalid_value", "must not be empty." if ctx.get("min_length") == 1 else (
            f"must be at least {ctx.get('min_length')} characters."
        )
    if kind == "string_too_long":
        return "invalid_value", f"must be at most {ctx.get('max_length')} characters: shorten it."
    if kind == "too_long":
        return "invalid_value", f"must have at most {ctx.get('max_length')} items."
    if kind == "too_short":
        return "invalid_value", f"must have at least {ctx.get('min_length')} item(s)."
    bounds = {
        "greater_than_equal": ("at least", "ge"),
        "greater_than": ("greater than", "gt"),
        "less_than_equal": ("at most", "le"),
        "less_than": ("less than", "lt"),
    }
    if kind in bounds:
        words, key = bounds[kind]
        return "invalid_value", f"must be {words} {ctx.get(key)}."
    return "invalid_value", f"is not valid here ({kind}): see /openapi.json for its schema."


def field_path(loc: Sequence[int | str]) -> str | None:
    """``("child", "name")`` → ``child.name``; ``("concern_codes", 1)`` → ``concern_codes[1]``."""
    text = ""
    for part in loc:
        if isinstance(part, int):
            text += f"[{part}]"
        else:
            # A key "" is a field too: named as "" rather than lost (the error had no field
            # and a sentence with no subject: tests/fuzz/test_api_schema.py).
            name = str(part) or '""'
            text += f".{name}" if text else name
    return text or None


def _list_owner(loc: Sequence[int | str]) -> str:
    names = [p for p in loc if isinstance(p, str)]
    return names[-1] if names else ""


def allowed_fields(model: type[BaseModel], loc: Sequence[int | str]) -> list[str]:
    """The field names allowed at ``loc`` inside ``model`` (for an unknown-field error)."""
    current: Any = model
    for part in loc:
        if isinstance(part, int):
            continue
        if not (isinstance(current, type) and issubclass(current, BaseModel)):
            return []
        info = current.model_fields.get(part)
        if info is None:
            return []
        current = _model_of(info.annotation)
    if isinstance(current, type) and issubclass(current, BaseModel):
        return sorted(current.model_fields)
    return []


def _model_of(annotation: Any) -> Any:
    """The BaseModel inside ``X | None``, ``list[X]`` or ``Annotated[X, ...]``, if any."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType, list, tuple, typing.Annotated):
        for arg in typing.get_args(annotation):
            found = _model_of(arg)
            if found is not None:
                return found
    return None
