"""Primero's error responses, shaped as the real server renders them.

API errors: `{"errors":[{"status","resource","detail"?,"message"}]}` — `status`, not `code`
(app/views/api/v2/errors/_error.json.jbuilder, app/services/error_service.rb; primero-api.md §0).
Authentication failures are Devise's `{"error": "..."}` instead (primero-api.md §2).
"""

from __future__ import annotations

from typing import Any

UNAUTHENTICATED = "You need to sign in or sign up before continuing."
INVALID_LOGIN = "Invalid User name or password."
LOCKED = "Your account is locked."
# WwwAuthenticate middleware adds this to every 401 (app/middleware/www_authenticate.rb).
WWW_AUTHENTICATE = 'Bearer realm="Primero" charset="UTF8"'


class PrimeroError(Exception):
    """A response Primero would send instead of the normal one."""

    def __init__(self, status: int, body: Any, headers: dict[str, str] | None = None) -> None:
        super().__init__(status)
        self.status = status
        self.body = body
        self.headers = headers or {}


def api_error(
    status: int,
    resource: str,
    message: Any,
    detail: Any = None,
    headers: dict[str, str] | None = None,
) -> PrimeroError:
    """One-entry `errors[]` body."""
    entry: dict[str, Any] = {"status": status, "resource": resource}
    if detail is not None:
        entry["detail"] = detail
    entry["message"] = message
    return PrimeroError(status, {"errors": [entry]}, headers)


def record_invalid(resource: str, messages: list[tuple[str, list[str]]]) -> PrimeroError:
    """ActiveRecord::RecordInvalid: 422, one entry per field, `message` is an array."""
    return PrimeroError(
        422,
        {
            "errors": [
                {"status": 422, "resource": resource, "detail": name, "message": msgs}
                for name, msgs in messages
            ]
        },
    )


def not_found(resource: str, model: str, record_id: str) -> PrimeroError:
    """ActiveRecord::RecordNotFound: 404 with Rails' message as `detail`."""
    return api_error(404, resource, "Not Found", f"Couldn't find {model} with 'id'={record_id}")


def forbidden(resource: str) -> PrimeroError:
    """CanCan::AccessDenied: 403."""
    return api_error(403, resource, "Forbidden")


def unauthenticated(message: str = UNAUTHENTICATED) -> PrimeroError:
    """Devise failure app: 401 `{"error": ...}` plus the WWW-Authenticate header."""
    return PrimeroError(401, {"error": message}, {"WWW-Authenticate": WWW_AUTHENTICATE})


def parameter_missing(resource: str, name: str) -> PrimeroError:
    """ActionController::ParameterMissing: 422."""
    return api_error(422, resource, f"param is missing or the value is empty or invalid: {name}")


def internal_error(resource: str, message: str) -> PrimeroError:
    """Any other exception: 500 with the Ruby exception message."""
    return api_error(500, resource, message)
