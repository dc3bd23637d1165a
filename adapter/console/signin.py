"""Signing in and out: password, then TOTP for the roles that need it; and the seam through
which an OIDC sign-in (``adapter/console/oidc.py``) starts the same session.

Every path that grants a session ends in :func:`start_session`: the session id is replaced,
the account's last sign-in is stamped, the throttle for the source is cleared and the sign-in
is audited — whichever way the person proved who they are.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from fastapi import FastAPI, Request
from starlette.concurrency import run_in_threadpool
from starlette.responses import Response

from adapter.clock import utcnow
from adapter.console.accounts import Account, Accounts, Role
from adapter.console.oidc import (
    IdentityRefused,
    OidcError,
    OidcProvider,
    VerifiedIdentity,
    end_session_url,
    match_account,
    oidc_routes,
)
from adapter.console.sessions import ANONYMOUS, SIGNED_IN, TOTP, OidcLogins
from adapter.console.web import HOME, PREFIX, Console, Visit, safe_next


@dataclass(frozen=True)
class IdentityClaims:
    """What a verified OIDC ID token says about the person (the provider checked them)."""

    issuer: str
    subject: str
    email: str | None = None
    name: str | None = None


def start_session(
    console: Console, visit: Visit, account: Account, *, method: str, now: datetime | None = None
) -> Visit:
    """Sign ``account`` in on this visit: a new session id (the old one ends), stamped and
    audited. ``method`` says how they proved it (password, password+totp, oidc)."""
    now = now or utcnow()
    session = console.sessions.rotate(visit.session, SIGNED_IN, account.id, now)
    console.accounts.mark_signed_in(account.id, now)
    console.record("console_sign_in", account, reason=f"method={method}")
    return Visit(session, account, account.locale, cookie_changed=True)


def sign_in_with_identity(
    console: Console, visit: Visit, claims: IdentityClaims, source: str
) -> Visit | None:
    """The seam for OIDC: the account mapped to ``claims`` (issuer and subject), signed in
    exactly as a password+TOTP sign-in is; None (audited) when no active account is mapped.
    The caller vouches for the second factor: the console's own OIDC callback
    (:func:`add_oidc_routes`) uses it only as far as :func:`start_session`, and asks
    reviewers, the DPO and operators for the console's TOTP unless the ID token's
    ``amr``/``acr`` says the provider did multi-factor authentication.

    An OIDC callback route (on the console's app: ``request.app.state.console`` is the
    :class:`Console`) verifies the ID token, then::

        visit = sign_in_with_identity(console, console.visit(request), claims, source_of(request))
        return console.redirect(visit, HOME[visit.account.role])   # sets the new cookie
    """
    account = console.accounts.by_identity(claims.issuer, claims.subject)
    if account is None or account.disabled:
        console.record("console_sign_in_failed", None, reason="method=oidc;problem=unmapped")
        return None
    console.throttle.succeeded(account.username, source)
    return start_session(console, visit, account, method="oidc")


def source_of(request: Request) -> str:
    return request.client.host if request.client else "unknown"


def add_sign_in_routes(app: FastAPI, console: Console) -> None:
    """``/console/sign-in``, ``/console/totp``, ``/console/sign-out``, ``/console/language``."""

    @app.get("/")
    async def index(request: Request) -> Response:
        visit = console.visit(request)
        if visit.signed_in and visit.account is not None:
            return console.redirect(visit, HOME[visit.account.role])
        return console.redirect(visit, f"{PREFIX}/sign-in")

    @app.get("/sign-in")
    async def sign_in_form(request: Request) -> Response:
        visit = console.visit(request)
        return _sign_in_page(console, visit, request.query_params.get("next"))

    @app.post("/sign-in")
    async def sign_in(request: Request) -> Response:
        visit = console.visit(request)
        form = await console.form(request, visit)
        username = form.get("username", "").strip().lower()[:80]
        password = form.get("password", "")
        next_path = safe_next(form.get("next"), "")
        source, now = source_of(request), utcnow()
        if console.throttle.locked_until(username, source, now):
            console.record("console_sign_in_failed", None, reason="problem=throttled")
            return _sign_in_page(console, visit, next_path, error="throttled", status=429)
        account = console.accounts.verify_password(username, password)
        if account is None:
            known = console.accounts.by_username(username)
            console.throttle.failed(username, source, now)
            # The name typed is recorded only when it is an account's: a password typed into
            # the username box must not land in the audit log.
            console.record(
                "console_sign_in_failed",
                None,
                recorded_by=known.username if known else "unknown",
                reason="method=password;problem=bad_credentials",
            )
            return _sign_in_page(console, visit, next_path, error="bad_credentials", status=401)
        if not account.needs_totp:
            console.throttle.succeeded(username, source)
            visit = start_session(console, visit, account, method="password")
            return console.redirect(visit, next_path or HOME[account.role])
        # Half-way: the password is right, the second factor is outstanding (a new id here too).
        session = console.sessions.rotate(visit.session, TOTP, account.id, now)
        visit = Visit(session, account, account.locale, cookie_changed=True)
        target = f"{PREFIX}/totp" + (f"?next={next_path}" if next_path else "")
        return console.redirect(visit, target)

    @app.get("/totp")
    async def totp_form(request: Request) -> Response:
        visit = console.visit(request)
        if visit.session.stage != TOTP or visit.account is None:
            return console.redirect(visit, f"{PREFIX}/sign-in")
        return _totp_page(console, visit, request.query_params.get("next"))

    @app.post("/totp")
    async def totp(request: Request) -> Response:
        visit = console.visit(request)
        form = await console.form(request, visit)
        account = visit.account
        if visit.session.stage != TOTP or account is None:
            return console.redirect(visit, f"{PREFIX}/sign-in")
        source, now = source_of(request), utcnow()
        next_path = safe_next(form.get("next"), "")
        if console.throttle.locked_until(account.username, source, now):
            console.record("console_sign_in_failed", account, reason="problem=throttled")
            return _totp_page(console, visit, next_path, error="throttled", status=429)
        enrolling = not account.totp_confirmed
        if not console.accounts.verify_totp(account, form.get("code", "")):
            console.throttle.failed(account.username, source, now)
            console.record("console_sign_in_failed", account, reason="method=totp;problem=bad_code")
            return _totp_page(console, visit, next_path, error="bad_code", status=401)
        console.throttle.succeeded(account.username, source)
        if enrolling:
            console.record("console_totp_enrolled", account)
        first = "oidc" if console.sessions.has_id_token(visit.session) else "password"
        visit = start_session(console, visit, account, method=f"{first}+totp")
        return console.redirect(visit, next_path or HOME[account.role])

    @app.post("/sign-out")
    async def sign_out(request: Request) -> Response:
        visit = console.visit(request)
        await console.form(request, visit)
        id_token = console.sessions.id_token(visit.session) if visit.account else None
        if visit.account is not None:
            console.record("console_sign_out", visit.account)
        session = console.sessions.rotate(visit.session, ANONYMOUS, None, utcnow())
        visit = Visit(session, None, visit.locale, cookie_changed=True)
        # After an OIDC sign-in the provider's session ends too, when it says how
        # (RP-Initiated Logout 1.0): the local session is already over either way.
        provider = console.oidc_provider
        if id_token is not None and provider is not None:
            try:
                elsewhere = await run_in_threadpool(end_session_url, provider, id_token)
            except OidcError:
                elsewhere = None
            if elsewhere is not None:
                # A page, not a redirect: the sign-out form's CSP (form-action 'self') would
                # stop a redirect to the provider's site.
                return console.render(visit, "continue.html", target=elsewhere, signed_out=True)
        return console.redirect(visit, f"{PREFIX}/sign-in")

    @app.post("/language")
    async def language(request: Request) -> Response:
        visit = console.visit(request)
        form = await console.form(request, visit)
        locale = form.get("locale", "")
        back = safe_next(form.get("back"))
        if visit.account is not None:
            console.accounts.set_locale(visit.account.id, locale)
            return console.redirect(visit, back)
        sep = "&" if "?" in back else "?"
        return console.redirect(
            visit, f"{back}{sep}lang={locale}" if locale in ("en", "ur") else back
        )


def _sign_in_page(
    console: Console,
    visit: Visit,
    next_path: str | None,
    *,
    error: str | None = None,
    problem: str | None = None,
    status: int = 200,
) -> Response:
    return console.render(
        visit,
        "sign_in.html",
        status=status,
        next=safe_next(next_path, ""),
        error=error,
        problem=problem,
        oidc=console.settings.oidc is not None,
    )


def _totp_page(
    console: Console,
    visit: Visit,
    next_path: str | None,
    *,
    error: str | None = None,
    status: int = 200,
) -> Response:
    account = visit.account
    assert account is not None
    context: dict[str, Any] = {"next": safe_next(next_path, ""), "error": error}
    if not account.totp_confirmed:
        # Enrolment: the secret is shown until the first good code confirms it.
        secret = console.accounts.totp_secret(account)
        context["secret"] = secret
        context["otpauth"] = console.accounts.provisioning_uri(account, secret)
    return console.render(visit, "totp.html", status=status, **context)


# --- sign-in with the province's identity provider (adapter/console/oidc.py) -------------------


def add_oidc_routes(app: FastAPI, console: Console, provider: OidcProvider | None = None) -> None:
    """``/console/oidc/login`` and ``/console/oidc/callback`` when ``[console.oidc]`` is set.

    A verified identity signs in the console account it maps to (:func:`match_account`) by
    :func:`start_session`, like a password: a new session id, stamped and audited
    (``method=oidc``). Reviewers, the DPO and operators are asked for the console's TOTP code
    too, unless the ID token says the provider did multi-factor authentication (``amr``
    "mfa", or an ``acr`` in ``mfa_acr_values``). A refusal is audited
    (``console_sign_in_failed``, ``problem=…``) and answered on the sign-in page."""
    settings = console.settings.oidc
    if settings is None:
        return
    provider = provider or OidcProvider(settings)
    console.oidc_provider = provider
    directory = _Directory(console.accounts)

    def on_identity(request: Request, identity: VerifiedIdentity) -> Response:
        visit = console.visit(request)
        account = match_account(settings, identity, directory)
        if account.disabled:
            raise IdentityRefused(
                "your console account is disabled; ask the data-protection officer",
                problem="disabled",
            )
        console.throttle.succeeded(account.username, source_of(request))
        back = identity.return_to if identity.return_to != HOME_PATH else ""
        if account.needs_totp and not identity.mfa:
            # Half-way, as after a password: the console's own second factor is outstanding.
            session = console.sessions.rotate(visit.session, TOTP, account.id, utcnow())
            console.sessions.keep_id_token(session, identity.id_token)
            visit = Visit(session, account, account.locale, cookie_changed=True)
            target = f"{PREFIX}/totp" + (f"?next={back}" if back else "")
            return _continue(console, visit, target)
        method = "oidc+provider_mfa" if account.needs_totp else "oidc"
        visit = start_session(console, visit, account, method=method)
        console.sessions.keep_id_token(visit.session, identity.id_token)
        return _continue(console, visit, back or HOME[account.role])

    def on_error(request: Request, error: OidcError) -> Response:
        visit = console.visit(request)
        console.record(
            "console_sign_in_failed", None, reason=f"method=oidc;problem={error.problem}"
        )
        return _sign_in_page(console, visit, None, error="oidc", problem=str(error), status=403)

    logins = OidcLogins(console.store, utcnow)
    app.include_router(
        oidc_routes(
            settings, on_identity, logins, provider=provider, on_error=on_error, prefix="/oidc"
        )
    )


HOME_PATH = PREFIX + "/"


def _continue(console: Console, visit: Visit, target: str) -> Response:
    """A page that goes on to ``target`` at once. Not a redirect: the browser arrives here from
    the provider's site, and a redirect would carry that cross-site origin to the next page,
    whose request then goes without the ``SameSite=Strict`` session cookie."""
    return console.render(visit, "continue.html", target=target)


class _Directory:
    """The console's accounts as :func:`match_account` asks for them."""

    def __init__(self, accounts: Accounts) -> None:
        self.accounts = accounts

    def by_identity(self, issuer: str, subject: str) -> Account | None:
        return self.accounts.by_identity(issuer, subject)

    def by_email(self, email: str) -> Account | None:
        return self.accounts.by_email(email)

    def link(self, account: Account, identity: VerifiedIdentity) -> None:
        self.accounts.link(account, identity.issuer, identity.subject)

    def provision(self, identity: VerifiedIdentity) -> Account:
        (role,) = identity.roles
        digest = hashlib.sha256(f"{identity.issuer}|{identity.subject}".encode()).hexdigest()
        return self.accounts.add(
            f"oidc-{digest[:16]}",
            display_name=(identity.name or identity.email or "OIDC account")[:120],
            role=Role(role),
            password=None,
            created_by="oidc",
            oidc_issuer=identity.issuer,
            oidc_subject=identity.subject,
            email=identity.email,
        )
