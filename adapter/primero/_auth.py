"""How the client proves who it is to Primero, and how it avoids locking the account out.

Three modes (primero-api.md §2):
- `basic`: `Authorization: Basic` on every request. No session, no CSRF [devise.rb
  http_authenticatable, csrf_protection.rb]. The recommended server-to-server mode.
- `session`: a Rails cookie session from `POST /api/v2/tokens`, plus `X-CSRF-Token` on writes.
- `bearer`: an identity-provider JWT in `Authorization: Bearer` on every request.

Lockout safety: six failed sign-ins lock the account for 30 minutes, Basic-auth failures included
[devise.rb maximum_attempts/unlock_in]. So a wrong password may cost at most ONE failed attempt per
client: after a credential failure the authenticator remembers it and refuses every later request
without contacting Primero. Primero runs Devise with `paranoid = true`, so a locked account usually
answers like a wrong password; the messages say both.
"""

from __future__ import annotations

import base64
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any
from urllib.parse import unquote

import requests

from adapter.errors import (
    PrimeroAuthError,
    PrimeroError,
    PrimeroLockedOut,
    PrimeroRateLimited,
)
from adapter.primero._errors import devise_error, error_from_response, json_body, malformed
from adapter.primero._transport import Replay, Transport, parse_retry_after

TOKENS_PATH = "/api/v2/tokens"
# The web UI primes its session and CSRF cookie with this call before signing in
# [health_controller.rb use_csrf_protection?, connectivity/action-creators.js, commit d514effac4].
SESSION_PRIMER_PATH = "/health/server"
_WRITES = frozenset({"POST", "PUT", "PATCH", "DELETE"})
_NO_MORE = "No further attempt will be made by this client."
_LOCKOUT = (
    "Primero locks an account for 30 minutes after six failed attempts (Basic-auth failures "
    "count too), and may report a locked account as a wrong password."
)


class Authenticator:
    """Base: the refusal latch shared by every mode."""

    mode = "none"

    def __init__(self) -> None:
        self._refusal: PrimeroAuthError | None = None
        #: The login answer in session/IdP mode: {id, user_name, group_permission}.
        self.identity: dict[str, Any] | None = None

    def ensure(self, transport: Transport, method: str, path: str) -> None:
        """Raise at once if credentials already failed; otherwise make sure we can call."""
        if self._refusal is not None:
            refused = type(self._refusal)(
                f"{method} {path}: not sent. {self._refusal}",
                method=method,
                resource=path,
            )
            raise refused

    def headers(self, transport: Transport, method: str) -> dict[str, str]:
        """Headers that authenticate one request."""
        return {}

    def recover(
        self, transport: Transport, response: requests.Response, method: str, path: str
    ) -> bool:
        """Called at most once per request on a 401 (or a CSRF 403): True to send it again."""
        return False

    def fail(self, response: requests.Response, method: str, path: str) -> PrimeroAuthError:
        """Remember a credential failure and return the exception to raise."""
        text = devise_error(json_body(response))
        if "locked" in text.lower():
            error: PrimeroAuthError = PrimeroLockedOut(
                f"{method} {path}: Primero reports the integration account as locked ({text}). "
                "Wait 30 minutes or ask a Primero administrator to unlock it, then check "
                f"{self._secret_hint()}. {_NO_MORE}",
                status=response.status_code,
                method=method,
                resource=path,
            )
        else:
            said = f" ({text})" if text else ""
            error = PrimeroAuthError(
                f"{method} {path}: Primero refused the credentials (401){said}. Check "
                f"{self._secret_hint()}. {self._consequence()} {_NO_MORE}",
                status=response.status_code,
                method=method,
                resource=path,
            )
        self._refusal = error
        return error

    def close(self, transport: Transport) -> None:
        """End the session, if there is one."""

    def _secret_hint(self) -> str:
        return (
            "CPIMS_ADAPTER_PRIMERO__PASSWORD (or primero.password_file) and "
            "CPIMS_ADAPTER_PRIMERO__USERNAME / the service account in Primero"
        )

    def _consequence(self) -> str:
        return _LOCKOUT


class BasicAuth(Authenticator):
    """HTTP Basic on every request: any 401 is a failed sign-in that Devise counts."""

    mode = "basic"

    def __init__(self, username: str, password: str) -> None:
        super().__init__()
        token = base64.b64encode(f"{username}:{password}".encode()).decode("ascii")
        self._header = {"Authorization": f"Basic {token}"}

    def headers(self, transport: Transport, method: str) -> dict[str, str]:
        return dict(self._header)


class BearerAuth(Authenticator):
    """An identity-provider token. On a 401 the token is read again once (a sidecar may have
    refreshed `primero.token_file`); an unchanged token is not retried."""

    mode = "bearer"

    def __init__(self, token: Callable[[], str | None]) -> None:
        super().__init__()
        self._token_source = token
        self._token = token() or ""

    def headers(self, transport: Transport, method: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self._token}"}

    def recover(
        self, transport: Transport, response: requests.Response, method: str, path: str
    ) -> bool:
        if response.status_code != 401:
            return False
        fresh = self._token_source() or ""
        if fresh and fresh != self._token:
            self._token = fresh
            return True
        return False

    def _secret_hint(self) -> str:
        return (
            "CPIMS_ADAPTER_PRIMERO__TOKEN (or primero.token_file): the identity provider's token "
            "may have expired, or Primero may not run in identity-provider mode"
        )

    def _consequence(self) -> str:
        return "Refresh the token before the next run."


class SessionAuth(Authenticator):
    """A Rails cookie session (`_app_session`) with CSRF protection on writes.

    Signing in: `GET /health/server?session=true` sets the CSRF cookie; `POST /api/v2/tokens`
    with `X-CSRF-Token` signs in; a second primer fetches the token Devise rotates on sign-in
    (`clean_up_csrf_token_on_authentication`, devise.rb). A 401 on a request made with a live
    session means the session expired (60 min): sign in again once and resend.
    """

    mode = "session"

    def __init__(
        self,
        username: str,
        password: str,
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        super().__init__()
        self._username = username
        self._password = password
        self._live = False
        self._clock = clock
        self._login_blocked_until: float | None = None

    def ensure(self, transport: Transport, method: str, path: str) -> None:
        super().ensure(transport, method, path)
        if not self._live:
            self._login(transport)

    def headers(self, transport: Transport, method: str) -> dict[str, str]:
        if method.upper() not in _WRITES:
            return {}
        token = _csrf_cookie(transport.session)
        return {"X-CSRF-Token": token} if token else {}

    def recover(
        self, transport: Transport, response: requests.Response, method: str, path: str
    ) -> bool:
        if not self._live:
            return False  # the login itself failed; never retry that
        # 401: the session expired. 403 "Can't verify CSRF token authenticity": the token went
        # stale. The request was refused before the action ran either way, so it is safe to
        # resend even a non-idempotent POST once.
        self._live = False
        self._login(transport)
        return True

    def is_csrf_failure(self, response: requests.Response) -> bool:
        """A 403 from ActionController::InvalidAuthenticityToken (error_service.rb)."""
        if response.status_code != 403:
            return False
        body = json_body(response)
        errors = body.get("errors") if isinstance(body, dict) else None
        if not isinstance(errors, list):
            return False
        for item in errors:
            message = item.get("message") if isinstance(item, dict) else None
            if isinstance(message, str) and (
                "csrf" in message.lower() or "authenticity" in message.lower()
            ):
                return True
        return False

    def close(self, transport: Transport) -> None:
        if not self._live or self._refusal is not None:
            return
        self._live = False
        try:
            transport.send(
                "DELETE",
                TOKENS_PATH,
                headers=self.headers(transport, "DELETE"),
                replay=Replay.UNSENT,
            )
        except PrimeroError:
            pass  # the session expires on its own after 60 minutes

    def _login(self, transport: Transport) -> None:
        method, path = "POST", TOKENS_PATH
        if self._login_blocked_until is not None:
            remaining = self._login_blocked_until - self._clock()
            if remaining > 0:
                raise PrimeroRateLimited(
                    f"{method} {path}: not sent. Primero throttled sign-ins for this account "
                    f"(429); wait {remaining:.0f} s before signing in again.",
                    retry_after=remaining,
                    method=method,
                    resource=path,
                )
        self._prime(transport)
        response = transport.send(
            method,
            path,
            json={"user": {"user_name": self._username, "password": self._password}},
            headers=self.headers(transport, method),
            replay=Replay.LOGIN,
        )
        status = response.status_code
        if status == 401:
            raise self.fail(response, method, path)
        if status == 429:
            # Rack::Attack: six POST /api/v2/tokens per user name per minute (rack_attack.rb).
            said = parse_retry_after(response.headers.get("Retry-After"), datetime.now(UTC))
            retry_after = said if said is not None else 60.0
            self._login_blocked_until = self._clock() + retry_after
            raise PrimeroRateLimited(
                f"{method} {path}: Primero throttled sign-ins for this account (429; six per "
                f"minute). Retry after {retry_after:.0f} s; do not restart the job in a loop.",
                retry_after=retry_after,
                status=status,
                method=method,
                resource=path,
            )
        if not 200 <= status < 300:
            raise error_from_response(response, method, path)
        body = json_body(response)
        if not isinstance(body, dict):
            raise malformed(method, path, status, "is not the sign-in JSON object")
        self.identity = body
        self._live = True
        self._prime(transport)

    def _prime(self, transport: Transport) -> None:
        # Status is irrelevant (503 while unhealthy still sets the cookie); transport errors
        # surface on the sign-in call that follows.
        try:
            transport.send(
                "GET", SESSION_PRIMER_PATH, params={"session": "true"}, replay=Replay.ONCE
            ).close()
        except PrimeroError:
            pass


def _csrf_cookie(session: requests.Session) -> str | None:
    value = None
    for cookie in session.cookies:
        if cookie.name == "CSRF-TOKEN" and cookie.value:
            value = cookie.value
    # The cookie is URL-encoded; the web UI decodes it before sending (get-csrf-token.js).
    return unquote(value) if value else None
