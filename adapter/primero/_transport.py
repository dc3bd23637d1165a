"""One HTTP exchange with Primero, retried when that is safe.

The transport knows nothing about authentication or Primero's JSON: it sends, retries and logs.
It never raises for an HTTP status; `_errors.error_from_response` turns a final status into an
exception. What it logs and raises names the method and the path only: query strings can carry
search terms or names (errors.py), and request/response bodies carry children's data.
"""

from __future__ import annotations

import enum
import logging
import random
import re
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any

import requests
from urllib3.exceptions import NewConnectionError

from adapter.connection import exception_chain, origin_of, outright_failure
from adapter.errors import PrimeroError, PrimeroTimeout, PrimeroUnreachable
from adapter.instruments import instruments

logger = logging.getLogger("adapter.primero")
# The destination label of Primero's calls in the HTTP latency histogram (adapter/ops).
PRIMERO_DESTINATION = "primero"
# Record ids in a request path: a log line names the route, not the child's record.
_ID_IN_PATH = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}", re.I)


def route_of(path: str) -> str:
    """``path`` with record ids replaced by ``:id`` (``/api/v2/cases/:id/referrals``), for
    log lines."""
    return _ID_IN_PATH.sub(":id", path)


Sleep = Callable[[float], None]
# Failures that broke an exchange off in transit: retried when `Replay` allows. (SSLError is a
# ConnectionError too, but a certificate problem is not retried: `Transport._request`.)
_IN_TRANSIT = (
    requests.exceptions.Timeout,
    requests.exceptions.ConnectionError,
    requests.exceptions.ChunkedEncodingError,  # the answer broke off mid-body
)


class Replay(enum.Enum):
    """When a call that failed in transit may be sent again."""

    #: GET, PATCH, DELETE and POSTs that are idempotent (case create with a client id):
    #: retried on 5xx, 429, timeouts and connection errors.
    SAFE = "safe"
    #: Non-idempotent POSTs (referral create, flag create): retried only when the request
    #: certainly never reached Primero (connection refused, connect timeout) or Primero said it
    #: did not process it (503 with Retry-After: its configuration lock, raised in a before_action
    #: [application_api_controller.rb]). Never after a read timeout: a referral could be made twice.
    UNSENT = "unsent"
    #: POST /api/v2/tokens: as UNSENT, and a 429 is never retried (Rack::Attack allows six logins
    #: per user name per minute; primero-api.md §2).
    LOGIN = "login"
    #: One attempt only (health probes: the caller wants the answer now, not after backoff).
    ONCE = "once"


@dataclass(frozen=True)
class RetryPolicy:
    """How hard the transport tries (from PrimeroSettings)."""

    max_retries: int = 4
    backoff_seconds: float = 1.0
    max_retry_after_seconds: float = 300.0


class Transport:
    """A `requests.Session` bound to one Primero base URL, with timeouts, TLS and retries."""

    def __init__(
        self,
        base_url: str,
        *,
        session: requests.Session,
        timeout: tuple[float, float],
        verify: bool | str,
        user_agent: str,
        retry: RetryPolicy,
        sleep: Sleep = time.sleep,
        rng: random.Random | None = None,
        now: Callable[[], datetime] | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.session = session
        self._timeout = timeout
        self._verify = verify
        self._headers = {"User-Agent": user_agent, "Accept": "application/json"}
        self._retry = retry
        self._sleep = sleep
        # Full jitter needs randomness, not secrecy; tests pass a seeded Random.
        self._rng = rng or random.Random()
        self._now = now or (lambda: datetime.now(UTC))
        # Whether Primero ever answered this client: a refused connection before that means
        # a wrong URL or a stopped server (fail at once); after it, a restart (retry).
        self._reached = False

    def send(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, Any] | None = None,
        json: Any = None,
        headers: Mapping[str, str] | None = None,
        replay: Replay = Replay.SAFE,
    ) -> requests.Response:
        """Send one call, retrying per `replay`; return the final response, whatever its status.

        Raises PrimeroTimeout when Primero could not be reached after the retries, PrimeroError
        for a TLS or URL problem (not retried: it needs a configuration change).
        """
        attempt = 0
        while True:
            attempt += 1
            started = time.monotonic()
            try:
                response = self._request(method, path, params, json, headers)
            except _IN_TRANSIT as exc:
                elapsed = time.monotonic() - started
                self._sleep(self._transit_retry(exc, method, path, attempt, replay, elapsed))
                continue
            self._reached = True
            elapsed = time.monotonic() - started
            delay = self._answered(response, method, path, attempt, replay, elapsed)
            if delay is None:
                return response
            response.close()
            self._sleep(delay)

    def _request(
        self,
        method: str,
        path: str,
        params: Mapping[str, Any] | None,
        json: Any,
        headers: Mapping[str, str] | None,
    ) -> requests.Response:
        """One attempt. A failure in transit propagates (the caller decides on a retry); any
        other failure to send is a PrimeroError."""
        try:
            return self.session.request(
                method,
                self.base_url + path,
                params=params,
                json=json,
                headers={**self._headers, **(headers or {})},
                timeout=self._timeout,
                verify=self._verify,
                # A redirect would carry the Authorization header to wherever it points;
                # Primero's API never redirects, so a 3xx is reported as a misconfiguration.
                allow_redirects=False,
            )
        except requests.exceptions.SSLError:
            # `from None` everywhere below: requests' messages embed the full URL, query
            # string included.
            raise PrimeroError(
                f"{method} {path}: the TLS handshake with Primero failed (certificate not "
                "trusted or hostname mismatch). Set primero.ca_bundle to the CA that signed "
                "Primero's certificate; do not turn verify_tls off in production.",
                method=method,
                resource=path,
            ) from None
        except _IN_TRANSIT:
            raise
        except requests.exceptions.RequestException as exc:
            raise PrimeroError(
                f"{method} {path}: the request could not be sent ({type(exc).__name__}). "
                "Check primero.url.",
                method=method,
                resource=path,
            ) from None

    def _transit_retry(
        self,
        exc: BaseException,
        method: str,
        path: str,
        attempt: int,
        replay: Replay,
        elapsed: float,
    ) -> float:
        """Seconds to wait before sending again after ``exc`` broke the exchange off; raises
        PrimeroUnreachable or PrimeroTimeout when the call is not to be sent again."""
        instruments.http_request(PRIMERO_DESTINATION, "error", elapsed)
        kind = type(exc).__name__
        unsent = _never_sent(exc)
        outright = None if self._reached else outright_failure(exc)
        retry = (
            outright is None
            and attempt <= self._retry.max_retries
            and replay is not Replay.ONCE
            and (replay is Replay.SAFE or unsent)
        )
        # The final failure is raised, and whoever catches it reports it: a second,
        # WARNING line here would only repeat it.
        logger.log(
            logging.WARNING if retry else logging.DEBUG,
            "primero %s %s failed (%s) after %.0f ms, attempt %d%s",
            method,
            route_of(path),
            kind,
            elapsed * 1000,
            attempt,
            ", retrying" if retry else "",
        )
        if retry:
            return self._backoff(attempt)
        where = origin_of(self.base_url) + route_of(path)
        if outright is not None:
            raise PrimeroUnreachable(
                f"{method} {where}: {outright}. Check primero.url and that Primero "
                "is running there.",
                method=method,
                resource=path,
            ) from None
        hint = (
            ""
            if unsent or replay is Replay.SAFE
            else (
                " The request may have reached Primero, so it was not repeated (it is not "
                "idempotent): check in Primero before trying again."
            )
        )
        raise PrimeroTimeout(
            f"{method} {path}: Primero did not answer at {where} ({kind}) after "
            f"{attempt} attempt(s). Check primero.url, the network and "
            "primero.timeout_seconds." + hint,
            method=method,
            resource=path,
        ) from None

    def _answered(
        self,
        response: requests.Response,
        method: str,
        path: str,
        attempt: int,
        replay: Replay,
        elapsed: float,
    ) -> float | None:
        """Record and log Primero's answer; seconds to wait before sending again, or None to
        hand the response back."""
        status = response.status_code
        instruments.http_request(PRIMERO_DESTINATION, f"{status // 100}xx", elapsed)
        delay = self._retry_delay(response, attempt, replay)
        logger.log(
            logging.WARNING if delay is not None else logging.DEBUG,
            "primero %s %s -> %d in %.0f ms, attempt %d%s",
            method,
            route_of(path),
            status,
            elapsed * 1000,
            attempt,
            f", retrying in {delay:.1f} s" if delay is not None else "",
        )
        return delay

    def _retry_delay(
        self, response: requests.Response, attempt: int, replay: Replay
    ) -> float | None:
        """Seconds to wait before sending again, or None to hand the response back."""
        status = response.status_code
        if status != 429 and status < 500:
            return None
        if attempt > self._retry.max_retries or replay is Replay.ONCE:
            return None
        retry_after = parse_retry_after(response.headers.get("Retry-After"), self._now())
        if status == 429 and replay is Replay.LOGIN:
            return None
        if replay is not Replay.SAFE and not (status == 503 and retry_after is not None):
            return None
        if retry_after is None:
            return self._backoff(attempt)
        if retry_after > self._retry.max_retry_after_seconds:
            # Waiting less than Primero asked only spends a retry on a server that said it is
            # not ready; the caller gets PrimeroUnavailable/RateLimited(retry_after) to reschedule.
            return None
        return retry_after

    def _backoff(self, attempt: int) -> float:
        # Exponential backoff with full jitter (AWS architecture blog, "Exponential Backoff And
        # Jitter"): spreads the retries of many workers instead of synchronising them.
        ceiling = min(
            self._retry.max_retry_after_seconds,
            self._retry.backoff_seconds * (2 ** (attempt - 1)),
        )
        return self._rng.uniform(0, ceiling)

    def close(self) -> None:
        """Close the pooled connections."""
        self.session.close()


def parse_retry_after(value: str | None, now: datetime) -> float | None:
    """Seconds from a Retry-After header (delta-seconds or HTTP-date, RFC 9110 §10.2.3)."""
    if value is None:
        return None
    value = value.strip()
    if not value:
        return None
    try:
        return max(0.0, float(int(value)))
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:  # an HTTP-date is always GMT
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - now).total_seconds())


def _never_sent(exc: BaseException) -> bool:
    """True when the request certainly did not reach the server (no TCP connection was made)."""
    if isinstance(exc, requests.exceptions.ConnectTimeout):
        return True
    if not isinstance(exc, requests.exceptions.ConnectionError):
        return False
    # requests wraps urllib3's MaxRetryError(reason=NewConnectionError) for refused/unresolvable
    # hosts; a reset or "connection aborted" after sending is a ProtocolError and may have arrived.
    return any(isinstance(item, NewConnectionError) for item in exception_chain(exc))
