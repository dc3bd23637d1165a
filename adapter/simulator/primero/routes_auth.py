"""Sign-in: `POST /api/v2/tokens`, `DELETE /api/v2/tokens` and the `/health` session primer.

Native login opens a cookie session (`_app_session` + `CSRF-TOKEN`) and returns
`{id, user_name, group_permission}`; an IdP bearer token instead returns the same plus `token`
(app/controllers/api/v2/tokens_controller.rb). Both login and logout expire the user's other
sessions.

TokensController is a Devise::SessionsController whose parent is ApplicationApiController
(config/initializers/devise.rb `parent_controller`), so its before_actions run in that class's
order before Devise checks the password: `check_config_update_lock!` (503), then
`set_csrf_cookie` and `protect_from_forgery` (403), then the action (401 on a bad password).
`authenticate_user!` does nothing in a Devise controller. Rack::Attack (429) runs before Rails.
"""

from __future__ import annotations

from fastapi import APIRouter, Request, Response

from adapter.simulator.primero import auth
from adapter.simulator.primero.endpoint import error_response, json_response, read_json, sim_state
from adapter.simulator.primero.errors import INVALID_LOGIN, PrimeroError, unauthenticated
from adapter.simulator.primero.state import Session, SimulatorState

router = APIRouter()
# HealthCheckService::BACKENDS and HealthController::RETRY_AFTER (health_check_service.rb,
# health_controller.rb).
HEALTH_BACKENDS = ("database", "solr", "server", "api")
HEALTH_RETRY_AFTER = "60"


def _set_cookies(
    response: Response, state: SimulatorState, session: Session | None, csrf: str | None
) -> Response:
    """The `_app_session` cookie (session_store.rb: expire_after, SameSite Lax) and the
    `CSRF-TOKEN` cookie (csrf_protection.rb: path /, SameSite Strict)."""
    if session is not None:
        response.set_cookie(
            auth.SESSION_COOKIE,
            session.session_id,
            max_age=int(state.options.session_timeout_seconds),
            path="/",
            httponly=True,
            samesite="lax",
        )
    if csrf:
        response.set_cookie(auth.CSRF_COOKIE, csrf, path="/", samesite="strict")
    return response


@router.post("/api/v2/tokens")
async def login(request: Request) -> Response:
    """Devise sessions#create (or the IdP variant when a bearer token is presented)."""
    state = sim_state(request)
    body = await read_json(request)
    user_param = body.get("user") if isinstance(body, dict) else None
    user_param = user_param if isinstance(user_param, dict) else {}
    path = request.url.path
    with state.lock:
        # Rack::Attack runs before Rails: throttled requests never reach Devise.
        auth.throttle_login(state, user_param.get("user_name"))
        header = request.headers.get("authorization") or ""
        if header.lower().startswith("bearer "):
            # IdP mode: no CSRF (csrf_protection.rb use_csrf_protection?); the configuration
            # lock is a before_action, so it answers before the token is looked at.
            auth.check_config_lock(state, path)
            token = header.split(" ", 1)[1].strip()
            user_name = state.idp_tokens.get(token)
            if not user_name or user_name not in state.users:
                raise unauthenticated()
            user = state.users[user_name]
            return json_response(
                {
                    "id": user.id,
                    "user_name": user.user_name,
                    "group_permission": state.role_of(user).group_permission,
                    "token": token,
                }
            )
        auth.check_config_lock(state, path)
        # set_csrf_cookie runs before verify_authenticity_token, so even a refused request
        # leaves with a session and a token (the answer a client can retry with).
        known = auth.live_session(state, request.cookies.get(auth.SESSION_COOKIE))
        session, opened = auth.csrf_session(state, known)
        cookie_session = session if opened else None
        csrf = session.csrf_token
        try:
            auth.verify_csrf(session, request.headers.get("x-csrf-token"), path)
            if session.user_name in state.users:
                # Warden returns the user already in the session without running a strategy,
                # and Devise's sign_in leaves a signed-in user's session as it is.
                user = state.users[session.user_name]
                auth.expire_sessions(state, user.user_name, keep=session.session_id)
            else:
                user_name, password = user_param.get("user_name"), user_param.get("password")
                if not isinstance(user_name, str) or not isinstance(password, str):
                    raise unauthenticated(INVALID_LOGIN)
                user = auth.check_password(state, user_name, password, "tokens")
                session = cookie_session = auth.start_session(state, user, previous=session)
        except PrimeroError as error:
            return _set_cookies(error_response(error), state, cookie_session, csrf)
        response = json_response(
            {
                "id": user.id,
                "user_name": user.user_name,
                "group_permission": state.role_of(user).group_permission,
            }
        )
        # The CSRF-TOKEN cookie was written before sign-in dropped that token: it is stale.
        return _set_cookies(response, state, cookie_session, csrf)


@router.delete("/api/v2/tokens")
async def logout(request: Request) -> Response:
    """Devise sessions#destroy: always 200 `{}`; ends every session of the signed-in user.

    `verify_signed_out_user` is prepended: with nobody signed in it answers `{}` before the
    configuration lock and CSRF before_actions run.
    """
    state = sim_state(request)
    path = request.url.path
    with state.lock:
        session = auth.live_session(state, request.cookies.get(auth.SESSION_COOKIE))
        if session is not None and session.user_name in state.users:
            auth.check_config_lock(state, path)
            auth.verify_csrf(session, request.headers.get("x-csrf-token"), path)
            auth.expire_sessions(state, session.user_name)
        response = json_response({})
        response.delete_cookie(auth.SESSION_COOKIE, path="/")
        return response


def _health(request: Request, healthy: bool, retry_after: bool) -> Response:
    """HealthController (an ApplicationController): `?session=true` turns on its CSRF
    protection, so `set_csrf_cookie` writes a token into the session, opening an anonymous
    session if the request has none. This is how the web client primes its sign-in
    (connectivity/action-creators.js getServerStatus: `/health/server`, `session: true`)."""
    state = sim_state(request)
    headers = {} if healthy or not retry_after else {"Retry-After": HEALTH_RETRY_AFTER}
    response = Response(status_code=204 if healthy else 503, headers=headers)
    if request.query_params.get("session") != "true":
        return response
    with state.lock:
        known = auth.live_session(state, request.cookies.get(auth.SESSION_COOKIE))
        session, opened = auth.csrf_session(state, known)
        return _set_cookies(response, state, session if opened else None, session.csrf_token)


@router.get("/health")
async def health_index(request: Request) -> Response:
    """HealthController#index: 204 when database and Solr answer (always, here)."""
    return _health(request, healthy=True, retry_after=False)


@router.get("/health/{backend}")
async def health_show(backend: str, request: Request) -> Response:
    """HealthController#show: 204 for a healthy known backend, else 503 + Retry-After: 60.

    `api` is unhealthy while a configuration update holds the lock (health_check_service.rb).
    """
    state = sim_state(request)
    with state.lock:
        healthy = backend in HEALTH_BACKENDS and not (backend == "api" and state.config_locked)
    return _health(request, healthy=healthy, retry_after=True)
