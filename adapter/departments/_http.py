"""HTTP plumbing shared by department connectors: one call, classified into the error taxonomy.

A connector never retries (the outbox does, with its own backoff and dead-lettering); it only
says what kind of failure happened, through ``adapter.errors``:

- no answer (connection refused or reset, timeout, TLS failure), 408 and 5xx → ``Retryable``;
- 429, and 503 with ``Retry-After`` → ``RateLimited(retry_after)``;
- any other 4xx → :class:`Rejected` (a ``Fatal``): the same request cannot succeed.

What is raised or logged names the method, the resource type and the status, nothing else: URLs
carry identifiers in their query strings, and bodies and third-party exception texts may carry a
child's data (errors.py).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any

import requests

from adapter.connection import origin_of, outright_failure
from adapter.errors import Fatal, RateLimited, Retryable, Unreachable
from adapter.instruments import instruments

logger = logging.getLogger("adapter.departments")


class Rejected(Fatal):
    """The department refused the request (a 4xx other than 408/429).

    ``status`` is the HTTP status, ``resource`` what was being sent or read (a resource type,
    never an id or a query), ``reasons`` the machine-readable codes the department gave (for
    FHIR: OperationOutcome ``issue.code``), never its free-text diagnostics.
    """

    def __init__(self, message: str, *, status: int, resource: str, reasons: Iterable[str] = ()):
        super().__init__(message)
        self.status = status
        self.resource = resource
        self.reasons = tuple(reasons)


def parse_retry_after(value: str | None, now: datetime | None = None) -> float | None:
    """Seconds from a ``Retry-After`` header: delta-seconds or an HTTP-date (RFC 9110 §10.2.3)."""
    if value is None or not value.strip():
        return None
    value = value.strip()
    if value.isdigit():
        return float(int(value))
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:  # an HTTP-date is always GMT
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - (now or datetime.now(UTC))).total_seconds())


def send(
    session: requests.Session,
    method: str,
    url: str,
    *,
    resource: str,
    timeout: float | tuple[float, float],
    headers: Mapping[str, str] | None = None,
    params: Mapping[str, str] | None = None,
    data: bytes | None = None,
    verify: bool | str = True,
) -> requests.Response:
    """One request; raises ``Retryable`` when no answer came. Statuses are left to the caller."""
    started = time.monotonic()
    try:
        try:
            response = session.request(
                method,
                url,
                headers=dict(headers or {}),
                params=dict(params) if params else None,
                data=data,
                timeout=timeout,
                verify=verify,
                allow_redirects=False,  # a redirect could carry our credentials elsewhere
            )
        except requests.exceptions.RequestException:
            instruments.http_request(None, "error", time.monotonic() - started)
            raise
    except requests.exceptions.SSLError:
        # Before ConnectionError, its base class: this one needs a person (CA bundle, expired
        # certificate) but may also be fixed on the department's side, so it stays retryable.
        raise Retryable(
            f"{method} {resource}: TLS verification failed; check the department's certificate "
            "and the configured CA bundle"
        ) from None
    except requests.exceptions.ConnectTimeout:
        raise Unreachable(
            f"{method} {resource}: no connection within {timeout}s (connect timeout) at "
            f"{origin_of(url)}; check the department's base_url, the network and that its "
            "server is running"
        ) from None
    except requests.exceptions.Timeout:
        raise Retryable(f"{method} {resource}: no answer within {timeout}s (timeout)") from None
    except (requests.exceptions.ConnectionError, requests.exceptions.ChunkedEncodingError) as exc:
        # Never the exception's text: it contains the full URL, query string included. The
        # server's address (scheme, host, port) is what the operator needs to check.
        what = outright_failure(exc) or f"connection failed ({type(exc).__name__})"
        raise Unreachable(
            f"{method} {resource}: {what} at {origin_of(url)}; check the department's base_url "
            "and that its server is running"
        ) from None
    instruments.http_request(None, f"{response.status_code // 100}xx", time.monotonic() - started)
    logger.debug(
        "department call",
        extra={
            "method": method,
            "resource": resource,
            "status": response.status_code,
            "elapsed_ms": round((time.monotonic() - started) * 1000),
        },
    )
    return response


def raise_for_status(
    response: requests.Response, *, method: str, resource: str, reasons: Iterable[str] = ()
) -> None:
    """Raise the taxonomy's error for a non-2xx ``response``; return quietly otherwise.

    ``reasons`` are the already-redacted codes from the body (e.g. FHIR issue codes).
    """
    status = response.status_code
    if 200 <= status < 300:
        return
    reasons = tuple(reasons)
    detail = f" ({', '.join(reasons)})" if reasons else ""
    where = f"{method} {resource} answered {status}{detail}"
    retry_after = parse_retry_after(response.headers.get("Retry-After"))
    if status == 429 or (status == 503 and retry_after is not None):
        raise RateLimited(f"{where}: slow down", retry_after=retry_after)
    if status == 408 or status >= 500:
        raise Retryable(f"{where}: the department's server failed; try again later")
    if status in (401, 403):
        hint = "check the department's credentials and the account's permissions"
    elif status in (301, 302, 303, 307, 308):
        hint = "the base URL redirects; configure the final URL"
    else:
        hint = "the department refused this request; retrying the same payload cannot succeed"
    raise Rejected(f"{where}: {hint}", status=status, resource=resource, reasons=reasons)


def json_or_none(response: requests.Response) -> Any:
    """The decoded JSON body, or None when there is none or it is not JSON."""
    if not response.content:
        return None
    try:
        return response.json()
    except ValueError:
        return None
