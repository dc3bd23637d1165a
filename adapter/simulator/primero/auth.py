"""Authentication as Primero's Devise/Warden/Rack::Attack stack does it (primero-api.md §2).

- HTTP Basic on every request: no session, no CSRF (config/initializers/devise.rb,
  app/controllers/concerns/csrf_protection.rb). Failures count toward the lockout.
- Native cookie session from `POST /api/v2/tokens`: `_app_session` + `CSRF-TOKEN` cookies;
  writes need `X-CSRF-Token`. A live session cookie wins over a Basic header (Warden checks the
  session first). Expiry is sliding: each request renews it (`expire_after`,
  config/initializers/session_store.rb).
- CSRF guards the sign-in itself: TokensController inherits ApplicationApiController's
  `protect_from_forgery` (devise.rb `parent_controller`), and before sign-in no Warden strategy
  has won, so `use_csrf_protection?` is true (csrf_protection.rb). A client first opens an
  anonymous session holding a CSRF token with `GET /health/:id?session=true`
  (health_controller.rb). Signing in renews the session id (Warden `set_user` renew) and drops
  its CSRF token (devise.rb `clean_up_csrf_token_on_authentication`): the `CSRF-TOKEN` cookie of
  the sign-in answer is already stale, and the next primer fetches a fresh one.
- IdP bearer tokens registered in `state.idp_tokens` (app/auth/idp_token_strategy.rb).
- Devise `lockable`: the 6th consecutive failure locks the account for 30 minutes; while locked
  even the right password fails and still counts. With `paranoid` (Primero's setting) the body
  does not reveal the lock.
- Rack::Attack: more than 6 `POST /api/v2/tokens` per user name per fixed 60 s window is a 429
  (config/initializers/rack_attack.rb).
"""

from __future__ import annotations

import base64
import binascii
import secrets
import time
from dataclasses import dataclass

from adapter.simulator.primero.errors import (
    INVALID_LOGIN,
    LOCKED,
    PrimeroError,
    api_error,
    unauthenticated,
)
from adapter.simulator.primero.state import Session, SimulatorState, User

MAXIMUM_ATTEMPTS = 6
UNLOCK_IN_SECONDS = 30 * 60
LOGIN_THROTTLE_LIMIT = 6
LOGIN_THROTTLE_PERIOD = 60
SESSION_COOKIE = "_app_session"
CSRF_COOKIE = "CSRF-TOKEN"
UNSAFE_METHODS = {"POST", "PUT", "PATCH", "DELETE"}


@dataclass
class Credentials:
    """What a request presented: headers and cookies relevant to authentication."""

    authorization: str | None
    session_id: str | None
    csrf_header: str | None


@dataclass
class Principal:
    """The authenticated user and how they authenticated (basic | session | bearer)."""

    user: User
    via: str
    session: Session | None = None


def _locked(user: User, now: float) -> bool:
    return user.locked_at is not None and now - user.locked_at < UNLOCK_IN_SECONDS


def check_password(state: SimulatorState, user_name: str, password: str, via: str) -> User:
    """Devise database_authenticatable + lockable `valid_for_authentication?`."""
    now = time.time()
    key = user_name.strip().lower()  # case_insensitive_keys / strip_whitespace_keys
    user = state.users.get(key)
    if user is None:
        state.login_attempts.append(
            {"user_name": key, "at": now, "success": False, "via": via, "reason": "unknown_user"}
        )
        raise unauthenticated(INVALID_LOGIN)
    if user.locked_at is not None and not _locked(user, now):
        user.locked_at, user.failed_attempts = None, 0  # unlock_strategy :time
    good = secrets.compare_digest(password.encode(), user.password.encode()) and not user.disabled
    if good and not _locked(user, now):
        user.failed_attempts = 0
        state.login_attempts.append({"user_name": key, "at": now, "success": True, "via": via})
        return user
    user.failed_attempts += 1
    user.login_failures_total += 1
    if user.failed_attempts >= MAXIMUM_ATTEMPTS and user.locked_at is None:
        user.locked_at = now
    locked = _locked(user, now)
    state.login_attempts.append(
        {
            "user_name": key,
            "at": now,
            "success": False,
            "via": via,
            "reason": "locked" if locked else "invalid_password",
        }
    )
    message = LOCKED if locked and not state.options.paranoid else INVALID_LOGIN
    raise unauthenticated(message)


def _basic(header: str) -> tuple[str, str] | None:
    try:
        decoded = base64.b64decode(header.split(" ", 1)[1].strip()).decode("utf-8")
    except (IndexError, binascii.Error, UnicodeDecodeError):
        return None
    user_name, sep, password = decoded.partition(":")
    return (user_name, password) if sep else None


def live_session(state: SimulatorState, session_id: str | None) -> Session | None:
    """The session for this cookie if it has not expired; expired sessions are forgotten.

    The session may be anonymous (`user_name == ""`): one a primer opened for its CSRF token.
    """
    if not session_id:
        return None
    session = state.sessions.get(session_id)
    if session is None:
        return None
    now = time.time()
    if now - session.last_seen > state.options.session_timeout_seconds:
        del state.sessions[session_id]
        return None
    session.last_seen = now
    return session


def authenticate(state: SimulatorState, credentials: Credentials) -> Principal:
    """Warden: session first, then HTTP Basic, then an IdP bearer; else a Devise 401."""
    session = live_session(state, credentials.session_id)
    if session is not None and session.user_name in state.users:
        return Principal(state.users[session.user_name], "session", session)
    header = credentials.authorization or ""
    scheme = header.split(" ", 1)[0].lower()
    if scheme == "basic":
        pair = _basic(header)
        if pair is None:
            raise unauthenticated()
        return Principal(check_password(state, pair[0], pair[1], "basic"), "basic")
    if scheme == "bearer":
        token = header.split(" ", 1)[1].strip() if " " in header else ""
        user_name = state.idp_tokens.get(token)
        if user_name and user_name in state.users:
            return Principal(state.users[user_name], "bearer")
        state.login_attempts.append(
            {
                "user_name": None,
                "at": time.time(),
                "success": False,
                "via": "bearer",
                "reason": "invalid_token",
            }
        )
    raise unauthenticated()


def check_csrf(principal: Principal, method: str, csrf_header: str | None, path: str) -> None:
    """protect_from_forgery with: :exception — only for cookie sessions (CsrfProtection)."""
    if principal.via != "session" or method not in UNSAFE_METHODS:
        return
    verify_csrf(principal.session, csrf_header, path)


def verify_csrf(session: Session | None, csrf_header: str | None, path: str) -> None:
    """RequestForgeryProtection#verified_request?: the header must match the session's token.

    No session, or a session whose token was dropped at sign-in, verifies nothing.
    """
    token = session.csrf_token if session is not None else ""
    if not csrf_header or not token or not secrets.compare_digest(csrf_header, token):
        # ErrorService renders ActionController::InvalidAuthenticityToken with its message.
        raise csrf_refused(path)


def csrf_refused(path: str) -> PrimeroError:
    """The 403 of ActionController::InvalidAuthenticityToken (error_service.rb)."""
    return api_error(403, path, "Can't verify CSRF token authenticity.")


def csrf_session(state: SimulatorState, session: Session | None) -> tuple[Session, bool]:
    """CsrfProtection#set_csrf_cookie: `form_authenticity_token` stores a token in the session,
    opening an anonymous one when the request has none. Returns (session, newly opened)."""
    opened = session is None
    if session is None:
        _forget_expired(state)
        session = Session(
            session_id=secrets.token_urlsafe(32),
            user_name="",
            csrf_token="",
            last_seen=time.time(),
        )
        state.sessions[session.session_id] = session
    if not session.csrf_token:
        session.csrf_token = secrets.token_urlsafe(32)
    return session, opened


def _forget_expired(state: SimulatorState) -> None:
    # Primers that never sign in leave anonymous sessions behind; keep the store bounded.
    if len(state.sessions) < 10_000:
        return
    now = time.time()
    timeout = state.options.session_timeout_seconds
    for session_id in [k for k, v in state.sessions.items() if now - v.last_seen > timeout]:
        del state.sessions[session_id]


def check_config_lock(state: SimulatorState, path: str) -> None:
    """`check_config_update_lock!`: 503 + Retry-After while a configuration update runs."""
    if state.config_locked:
        retry = str(state.config_lock_retry_after)
        raise api_error(
            503, path, "Service Unavailable", f"Retry-After: {retry}", {"Retry-After": retry}
        )


def throttle_login(state: SimulatorState, user_name: object) -> None:
    """Rack::Attack 'Login attempts': fixed windows aligned to the epoch minute."""
    if not isinstance(user_name, str) or not user_name:
        return
    key = "".join(user_name.lower().split())
    window = int(time.time() // LOGIN_THROTTLE_PERIOD)
    for stale in [k for k in state.rate_windows if k[1] < window]:
        del state.rate_windows[stale]
    count = state.rate_windows.get((key, window), 0) + 1
    state.rate_windows[(key, window)] = count
    if count > LOGIN_THROTTLE_LIMIT:
        raise PrimeroError(429, "Retry later\n", {"Content-Type": "text/plain"})


def start_session(state: SimulatorState, user: User, previous: Session | None = None) -> Session:
    """Sign in: expire the user's other sessions and renew the (anonymous) session's id.

    The new session holds no CSRF token (Devise `clean_up_csrf_token_on_authentication`).
    """
    expire_sessions(state, user.user_name)
    if previous is not None:
        state.sessions.pop(previous.session_id, None)
    session = Session(
        session_id=secrets.token_urlsafe(32),
        user_name=user.user_name,
        csrf_token="",
        last_seen=time.time(),
    )
    state.sessions[session.session_id] = session
    return session


def expire_sessions(state: SimulatorState, user_name: str, keep: str | None = None) -> None:
    """TokensController#expire_other_user_sessions (on login and logout), sparing `keep`."""
    for session_id in [
        s for s, v in state.sessions.items() if v.user_name == user_name and s != keep
    ]:
        del state.sessions[session_id]
