"""`PrimeroClient`: the one object the rest of the adapter uses to talk to Primero v2."""

from __future__ import annotations

import ipaddress
import random
import time
from collections.abc import Callable
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Literal
from urllib.parse import urlsplit

import requests

from adapter._version import __version__
from adapter.connection import environment_verify, long_lived_session
from adapter.errors import ConfigError
from adapter.primero._admin import AdminMixin
from adapter.primero._auth import Authenticator, BasicAuth, BearerAuth, SessionAuth
from adapter.primero._cases import MAX_PER, CasesMixin
from adapter.primero._history import HistoryMixin
from adapter.primero._referrals import ReferralsMixin
from adapter.primero._transport import RetryPolicy, Sleep, Transport

if TYPE_CHECKING:
    # Only a type: the client reads the section's attributes, so importing the client does not
    # load the whole configuration (every feature's settings) with it (docs/architecture.md).
    from adapter.config import PrimeroSettings

AuthMode = Literal["basic", "session", "bearer"]


class PrimeroClient(CasesMixin, ReferralsMixin, HistoryMixin, AdminMixin):
    """A Primero v2 API client: authentication, retries, incremental listing, cases, referrals,
    write-back and configuration.

    Build it with :meth:`from_settings` (or the keyword arguments), use it as a context manager,
    and keep one per thread. Every exception comes from :mod:`adapter.errors` and carries the
    method, the path (never the query string), the status, field names and Primero's message
    keys only. The logger ``adapter.primero`` records method, path, status, duration and attempt.
    """

    def __init__(
        self,
        url: str,
        *,
        auth: AuthMode = "basic",
        username: str | None = None,
        password: str | None = None,
        token: str | Callable[[], str | None] | None = None,
        timeout_seconds: float = 30.0,
        connect_timeout_seconds: float = 10.0,
        max_retries: int = 4,
        backoff_seconds: float = 1.0,
        max_retry_after_seconds: float = 300.0,
        page_size: int = MAX_PER,
        verify_tls: bool = True,
        ca_bundle: str | Path | None = None,
        min_version: str = "2.11",
        session: requests.Session | None = None,
        sleep: Sleep = time.sleep,
        rng: random.Random | None = None,
        allow_insecure_http: bool = False,
    ) -> None:
        base_url = _checked_url(url, allow_insecure_http)
        self._owns_session = session is None
        self._transport = Transport(
            base_url,
            session=session or long_lived_session(base_url),
            timeout=(connect_timeout_seconds, timeout_seconds),
            verify=str(ca_bundle) if ca_bundle else environment_verify(verify_tls),
            user_agent=f"cpims-adapter/{__version__}",
            retry=RetryPolicy(max_retries, backoff_seconds, max_retry_after_seconds),
            sleep=sleep,
            rng=rng,
        )
        self._auth = _authenticator(auth, username, password, token)
        self._page_size = max(1, min(page_size, MAX_PER))
        self._min_version = min_version
        self._username = username if auth != "bearer" else None
        self._closed = False

    @classmethod
    def from_settings(
        cls,
        settings: PrimeroSettings,
        *,
        session: requests.Session | None = None,
        sleep: Sleep = time.sleep,
    ) -> PrimeroClient:
        """A client configured by the `[primero]` section (adapter.config.PrimeroSettings)."""
        if not settings.url:
            raise ConfigError(
                "primero.url is not set. Set it in the config file or CPIMS_ADAPTER_PRIMERO__URL."
            )
        bearer = settings.auth == "bearer"
        return cls(
            settings.url,
            auth=settings.auth,
            username=settings.username,
            password=None if bearer else settings.secret(),
            # Re-read on a 401: a sidecar may refresh primero.token_file.
            token=settings.secret if bearer else None,
            timeout_seconds=settings.timeout_seconds,
            connect_timeout_seconds=settings.connect_timeout_seconds,
            max_retries=settings.max_retries,
            backoff_seconds=settings.backoff_seconds,
            max_retry_after_seconds=settings.max_retry_after_seconds,
            page_size=settings.page_size,
            verify_tls=settings.verify_tls,
            ca_bundle=settings.ca_bundle,
            min_version=settings.min_version,
            session=session,
            sleep=sleep,
        )

    @property
    def base_url(self) -> str:
        """Primero's base URL, without a trailing slash."""
        return self._transport.base_url

    def close(self) -> None:
        """Sign out (session mode: `DELETE /api/v2/tokens`) and release connections."""
        if self._closed:
            return
        self._closed = True
        self._auth.close(self._transport)
        if self._owns_session:
            self._transport.close()

    def __enter__(self) -> PrimeroClient:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


def _checked_url(url: str, allow_insecure_http: bool) -> str:
    parts = urlsplit(url.strip())
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ConfigError("primero.url must be an https:// URL (http:// only for loopback)")
    if parts.scheme == "http" and not allow_insecure_http and not _loopback(parts.hostname):
        # Basic auth sends the password with every request: never in clear text off-host.
        raise ConfigError(
            "primero.url uses http:// for a host that is not loopback: credentials and children's "
            "data would cross the network unencrypted. Use https://."
        )
    return url.strip().rstrip("/")


def _loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _authenticator(
    mode: str,
    username: str | None,
    password: str | None,
    token: str | Callable[[], str | None] | None,
) -> Authenticator:
    if mode == "bearer":
        if token is None:
            raise ConfigError(
                "primero.auth = 'bearer' needs primero.token or primero.token_file "
                "(CPIMS_ADAPTER_PRIMERO__TOKEN)."
            )
        source = token if callable(token) else (lambda: token)
        if not source():
            raise ConfigError("primero.token (or primero.token_file) is empty.")
        return BearerAuth(source)
    if mode not in ("basic", "session"):
        raise ConfigError(f"primero.auth must be basic, session or bearer, not {mode!r}")
    if not username or not password:
        raise ConfigError(
            f"primero.auth = '{mode}' needs primero.username and primero.password (or "
            "primero.password_file; env CPIMS_ADAPTER_PRIMERO__USERNAME / __PASSWORD). Use a "
            "dedicated service account: a sign-in ends the account's other sessions."
        )
    if mode == "session":
        return SessionAuth(username, password)
    return BasicAuth(username, password)
