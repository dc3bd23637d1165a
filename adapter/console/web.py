"""What every console page shares: the console's parts, the visitor's session, rendering in the
visitor's language, the security headers, CSRF and role checks, and audit entries.

Security rules, each with its reason:

* every response carries a CSP with no inline script or style (``default-src 'self'``), refuses
  framing (clickjacking), ``nosniff``, ``Referrer-Policy: no-referrer`` (a URL never leaks to
  another site), and pages are ``no-store`` (a shared computer's cache keeps no answer);
* the session cookie is ``HttpOnly``, ``SameSite=Strict`` and ``Secure`` (named ``__Host-…`` so
  no sub-domain can set it), unless the development override is on;
* every POST carries the session's CSRF token (a synchroniser token) or is refused and audited;
* a page names the roles that may open it; another role gets 403, audited.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from fastapi import Request
from jinja2 import Environment, FileSystemLoader, select_autoescape
from starlette.responses import HTMLResponse, RedirectResponse, Response

from adapter.clock import utcnow
from adapter.config import Settings
from adapter.config.console import ConsoleSettings
from adapter.console import i18n
from adapter.console.accounts import Account, Accounts, Role, Throttle
from adapter.console.sessions import ANONYMOUS, SIGNED_IN, Session, Sessions
from adapter.privacy.audit import AuditLog
from adapter.privacy.keys import KeyRing
from adapter.registry import Registry
from adapter.state import StateStore

if TYPE_CHECKING:
    from adapter.console.oidc import OidcProvider

log = logging.getLogger("adapter.console")

PREFIX = "/console"
HERE = Path(__file__).parent
SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        "form-action 'self'; frame-ancestors 'none'; base-uri 'none'; object-src 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
    "Cross-Origin-Opener-Policy": "same-origin",
    "Permissions-Policy": "camera=(), microphone=(), geolocation=()",
}
NO_STORE = {"Cache-Control": "no-store", "Pragma": "no-cache"}
HOME = {
    Role.establishment_officer: f"{PREFIX}/establishment",
    Role.reviewer: f"{PREFIX}/reviewer",
    Role.dpo: f"{PREFIX}/dpo",
    Role.operator: f"{PREFIX}/operator",
}


class Refused(Exception):
    """A request the console refuses: answered as a plain page with ``status``."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


class SignInNeeded(Exception):
    """The page needs a signed-in visitor: redirect to sign-in with ``next``."""

    def __init__(self, next_path: str) -> None:
        super().__init__(next_path)
        self.next_path = next_path


def safe_next(value: str | None, default: str = PREFIX + "/") -> str:
    """``value`` if it is a path on this console, else ``default``: a sign-in link can never
    send a person to another site (open redirect, OWASP ASVS 5.1.5)."""
    if not value or len(value) > 300:
        return default
    if "\\" in value or any(ord(c) < 0x20 or ord(c) == 0x7F for c in value):
        return default
    parts = urlsplit(value)
    if parts.scheme or parts.netloc or value.startswith("//"):
        return default
    if not (parts.path == PREFIX or parts.path.startswith(PREFIX + "/")):
        return default
    if "/../" in parts.path or parts.path.endswith("/.."):
        return default
    return value


@dataclass
class Visit:
    """One request's visitor: the live session (always one: anonymous visitors get one for
    the sign-in form's CSRF token), the account if signed in, and the language."""

    session: Session
    account: Account | None
    locale: str
    cookie_changed: bool = False

    @property
    def signed_in(self) -> bool:
        return self.account is not None and self.session.stage == SIGNED_IN


@dataclass
class Console:
    """The console's parts, built once by :func:`adapter.console.build_console`."""

    settings: ConsoleSettings
    full_settings: Settings
    store: StateStore
    keyring: KeyRing
    registry: Callable[[], Registry]
    accounts: Accounts
    sessions: Sessions
    throttle: Throttle
    audit: AuditLog
    environments: dict[str, Environment]
    # Set when [console.oidc] is: the identity provider, for sign-out (adapter/console/signin.py).
    oidc_provider: OidcProvider | None = None

    @classmethod
    def build(
        cls,
        settings: Settings,
        store: StateStore,
        keyring: KeyRing,
        registry: Callable[[], Registry],
    ) -> Console:
        console = settings.console
        environments = {}
        for locale in i18n.LOCALES:
            env = Environment(
                loader=FileSystemLoader(HERE / "templates"),
                autoescape=select_autoescape(["html"]),
                extensions=["jinja2.ext.i18n"],
            )
            env.install_gettext_translations(i18n.translations(locale), newstyle=True)  # type: ignore[attr-defined]
            environments[locale] = env
        return cls(
            settings=console,
            full_settings=settings,
            store=store,
            keyring=keyring,
            registry=registry,
            accounts=Accounts(store, keyring),
            sessions=Sessions(store, console, keyring),
            throttle=Throttle(store, console),
            audit=AuditLog(store, keyring),
            environments=environments,
        )

    # -- cookies and the visitor ------------------------------------------------------------

    @property
    def cookie_name(self) -> str:
        # The __Host- prefix needs Secure: a browser drops it over plain http.
        return "__Host-console" if self.settings.cookie_secure else "console"

    def visit(self, request: Request, now: datetime | None = None) -> Visit:
        """The request's visitor, starting an anonymous session when it has none."""
        now = now or utcnow()
        session = self.sessions.load(request.cookies.get(self.cookie_name), now)
        changed = False
        if session is None:
            session = self.sessions.start(ANONYMOUS, None, now)
            changed = True
        account = self.accounts.get(session.account_id) if session.account_id else None
        if account is not None and account.disabled:
            self.sessions.end(session.id)
            session, account, changed = self.sessions.start(ANONYMOUS, None, now), None, True
        locale = account.locale if account else request.query_params.get("lang", "")
        if locale not in i18n.LOCALES:
            locale = self.settings.default_locale
        return Visit(session, account, locale, changed)

    def require(self, request: Request, *roles: Role) -> Visit:
        """The signed-in visitor, if their role is one of ``roles``; else sign-in or 403."""
        visit = self.visit(request)
        if not visit.signed_in or visit.account is None:
            target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
            raise SignInNeeded(safe_next(target))
        if visit.account.role not in roles:
            self.record("console_forbidden", visit.account, reason=f"page={request.url.path[:60]}")
            raise Refused(403, "forbidden")
        return visit

    async def form(self, request: Request, visit: Visit) -> dict[str, str]:
        """The POSTed form, if it carries the session's CSRF token; else refused (403)."""
        form = await request.form()
        values = {k: v for k, v in form.items() if isinstance(v, str)}
        if not visit.session.csrf_ok(values.get("csrf_token")):
            self.record(
                "console_csrf_refused", visit.account, reason=f"page={request.url.path[:60]}"
            )
            raise Refused(403, "csrf")
        return values

    # -- answers ----------------------------------------------------------------------------

    def render(self, visit: Visit, template: str, *, status: int = 200, **context: Any) -> Response:
        env = self.environments[visit.locale]
        html = env.get_template(template).render(
            visit=visit,
            account=visit.account,
            csrf_token=visit.session.csrf_token,
            locale=visit.locale,
            direction="rtl" if visit.locale == "ur" else "ltr",
            prefix=PREFIX,
            home=HOME.get(visit.account.role) if visit.account else None,
            **context,
        )
        return self.page(visit, HTMLResponse(html, status_code=status))

    def redirect(self, visit: Visit, location: str) -> Response:
        return self.page(visit, RedirectResponse(location, status_code=303))

    def page(self, visit: Visit, response: Response) -> Response:
        """``response`` with the session cookie (when it changed) and the page headers."""
        response.headers.update(NO_STORE)
        if visit.cookie_changed:
            response.set_cookie(
                self.cookie_name,
                visit.session.id,
                max_age=self.settings.session_absolute_hours * 3600,
                path="/",
                secure=self.settings.cookie_secure,
                httponly=True,
                samesite="strict",
            )
        return response

    def record(self, event: str, account: Account | None, **entry: Any) -> None:
        """One console event in the audit log: who (the account's username and role), what,
        and a short reason; never a password, a code, a CNIC or a name checked."""
        values: dict[str, Any] = {"event": event, **entry}
        if account is not None:
            values.setdefault("recorded_by", account.username)
            values.setdefault("role", str(account.role))
        self.audit.append(values)
