"""`POST /api/v2/tokens` (login) and `DELETE /api/v2/tokens` (logout) — primero-api.md §2.

Native login opens a cookie session (`_app_session` + `CSRF-TOKEN`) and returns
`{id, user_name, group_permission}`; an IdP bearer token instead returns the same plus `token`
(app/controllers/api/v2/tokens_controller.rb). Both login and logout expire the user's other
sessions.
"""

from __future__ import annotations

from fastapi import APIRouter, Request, Response

from adapter.simulator.primero import auth
from adapter.simulator.primero.endpoint import json_response, read_json, sim_state
from adapter.simulator.primero.errors import INVALID_LOGIN, unauthenticated

router = APIRouter()


@router.post("/api/v2/tokens")
async def login(request: Request) -> Response:
    """Devise sessions#create (or the IdP variant when a bearer token is presented)."""
    state = sim_state(request)
    body = await read_json(request)
    user_param = body.get("user") if isinstance(body, dict) else None
    user_param = user_param if isinstance(user_param, dict) else {}
    with state.lock:
        # Rack::Attack runs before Rails: throttled requests never reach Devise.
        auth.throttle_login(state, user_param.get("user_name"))
        header = request.headers.get("authorization") or ""
        if header.lower().startswith("bearer "):
            token = header.split(" ", 1)[1].strip()
            user_name = state.idp_tokens.get(token)
            if not user_name or user_name not in state.users:
                raise unauthenticated()
            auth.check_config_lock(state, request.url.path)
            user = state.users[user_name]
            return json_response(
                {
                    "id": user.id,
                    "user_name": user.user_name,
                    "group_permission": state.role_of(user).group_permission,
                    "token": token,
                }
            )
        user_name, password = user_param.get("user_name"), user_param.get("password")
        if not isinstance(user_name, str) or not isinstance(password, str):
            raise unauthenticated(INVALID_LOGIN)
        user = auth.check_password(state, user_name, password, "tokens")
        auth.check_config_lock(state, request.url.path)
        session = auth.start_session(state, user)
        response = json_response(
            {
                "id": user.id,
                "user_name": user.user_name,
                "group_permission": state.role_of(user).group_permission,
            }
        )
        max_age = int(state.options.session_timeout_seconds)
        response.set_cookie(
            auth.SESSION_COOKIE,
            session.session_id,
            max_age=max_age,
            path="/",
            httponly=True,
            samesite="lax",
        )
        response.set_cookie(auth.CSRF_COOKIE, session.csrf_token, path="/", samesite="strict")
        return response


@router.delete("/api/v2/tokens")
async def logout(request: Request) -> Response:
    """Devise sessions#destroy: always 200 `{}`; ends every session of the signed-in user."""
    state = sim_state(request)
    with state.lock:
        session = auth.live_session(state, request.cookies.get(auth.SESSION_COOKIE))
        if session is not None:
            principal = auth.Principal(state.users[session.user_name], "session", session)
            auth.check_csrf(
                principal, "DELETE", request.headers.get("x-csrf-token"), request.url.path
            )
            auth.expire_sessions(state, session.user_name)
        response = json_response({})
        response.delete_cookie(auth.SESSION_COOKIE, path="/")
        return response
