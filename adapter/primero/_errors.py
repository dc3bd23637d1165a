"""Turn Primero's error answers into adapter.errors exceptions, without personal data.

Primero answers errors in two shapes (primero-api.md §0, §2):
- its own `{"errors":[{"status","resource","message","detail"}]}`, where `message` is a string or
  an array of i18n keys and `detail` a field name, an array of JSON pointers ("/age") or free text
  [app/services/error_service.rb];
- Devise's `{"error": "..."}` for authentication failures [app/middleware/www_authenticate.rb].

Only message *keys* and field *names* are kept, and only when they look like keys: a 500's message
is a Ruby exception text and a 404's detail names the record, either may hold data.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Any

import requests

from adapter.errors import (
    PrimeroConflict,
    PrimeroError,
    PrimeroForbidden,
    PrimeroNotFound,
    PrimeroProtocolError,
    PrimeroRateLimited,
    PrimeroUnavailable,
    PrimeroValidationError,
)
from adapter.primero._transport import parse_retry_after

# A message key or a short fixed sentence ("transition.errors.consent", "Forbidden",
# "Invalid Record JSON"). No '=', quotes, '@', '/', brackets or braces: those appear when a
# message interpolates a value ("Couldn't find Child with 'id'=...").
_SAFE_MESSAGE = re.compile(r"^[A-Za-z][A-Za-z0-9_.:' ,\-]{0,119}$")
_SAFE_FIELD = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.\-/]{0,119}$")


def json_body(response: requests.Response) -> Any:
    """The decoded JSON body, or None when there is none or it is not JSON."""
    if response.status_code == 204 or not response.content:
        return None
    try:
        return response.json()
    except ValueError:
        return None


def message_keys(body: Any) -> list[str]:
    """Primero's message keys from either error shape, filtered to key-like strings."""
    raw: list[Any] = []
    if isinstance(body, dict):
        errors = body.get("errors")
        if isinstance(errors, list):
            for item in errors:
                if isinstance(item, dict):
                    message = item.get("message")
                    raw.extend(message if isinstance(message, list) else [message])
        if "error" in body:
            raw.append(body.get("error"))
    keys: list[str] = []
    for item in raw:
        if isinstance(item, str) and _SAFE_MESSAGE.match(item) and item not in keys:
            keys.append(item)
    return keys


def field_names(body: Any) -> list[str]:
    """Field names from the `detail` of 422 errors: JSON pointers lose their leading '/'."""
    names: list[str] = []
    errors = body.get("errors") if isinstance(body, dict) else None
    if not isinstance(errors, list):
        return names
    for item in errors:
        if not isinstance(item, dict):
            continue
        detail = item.get("detail")
        for value in detail if isinstance(detail, list) else [detail]:
            if not isinstance(value, str):
                continue
            name = value.lstrip("/")
            if _SAFE_FIELD.match(name) and name not in names:
                names.append(name)
    return names


def devise_error(body: Any) -> str:
    """Devise's `error` text (authentication failures), '' when absent or not key-like."""
    if isinstance(body, dict):
        text = body.get("error")
        if isinstance(text, str) and _SAFE_MESSAGE.match(text):
            return text
    return ""


def _said(keys: list[str]) -> str:
    return f" ({'; '.join(keys)})" if keys else ""


def error_from_response(response: requests.Response, method: str, path: str) -> PrimeroError:
    """The exception for a final non-2xx answer (401 is handled by the authenticator)."""
    status = response.status_code
    body = json_body(response)
    keys = message_keys(body)
    where = f"{method} {path}"
    kw: dict[str, Any] = {"status": status, "method": method, "resource": path}
    if status == 403:
        return PrimeroForbidden(
            f"{where}: Primero refused the call (403){_said(keys)}. The integration account's "
            "role lacks the permission for it: ask the Primero administrator to grant it.",
            **kw,
        )
    if status == 404:
        return PrimeroNotFound(
            f"{where}: not found (404). The record does not exist, or it is outside the "
            "service account's scope (group permission, module, agency).",
            **kw,
        )
    if status == 409:
        return PrimeroConflict(
            f"{where}: a record with this id already exists (409){_said(keys)}.", **kw
        )
    if status == 422:
        fields = field_names(body)
        named = f" Fields: {', '.join(fields)}." if fields else ""
        return PrimeroValidationError(
            f"{where}: Primero rejected the payload (422){_said(keys)}.{named} Fix the mapping "
            "or the record in Primero; resending the same payload cannot succeed.",
            fields=fields,
            **kw,
        )
    retry_after = parse_retry_after(response.headers.get("Retry-After"), datetime.now(UTC))
    if status == 429:
        return PrimeroRateLimited(
            f"{where}: Primero is throttling this account (429). "
            + (f"Retry after {retry_after:.0f} s." if retry_after is not None else "Retry later."),
            retry_after=retry_after,
            **kw,
        )
    if status >= 500:
        # A 503 with Retry-After is Primero's configuration-update lock (error_service.rb).
        return PrimeroUnavailable(
            f"{where}: Primero answered {status} after the retries. "
            + (
                f"It asked to retry after {retry_after:.0f} s."
                if retry_after is not None
                else "Try again later; if it persists, check Primero's logs."
            ),
            retry_after=retry_after,
            **kw,
        )
    if 300 <= status < 400:
        return PrimeroProtocolError(
            f"{where}: Primero redirected ({status}). Set primero.url to the final address "
            "(https, no trailing path): credentials are never sent across a redirect.",
            **kw,
        )
    return PrimeroError(f"{where}: Primero answered {status}{_said(keys)}.", **kw)


def malformed(method: str, path: str, status: int, problem: str) -> PrimeroProtocolError:
    """The exception for a 2xx answer that is not what Primero's API returns."""
    return PrimeroProtocolError(
        f"{method} {path}: Primero's answer ({status}) {problem}. Check that primero.url points "
        "at Primero itself (not a login page or proxy) and that its version is supported.",
        status=status,
        method=method,
        resource=path,
    )
