"""Settings of the web console (issue 16), mounted by ``adapter.config`` as ``[console]``.

The console is off until ``enabled = true``. Its cookies are ``Secure`` unless
``cookie_secure = false``, which is allowed only while the API listens on loopback (a developer
on http://127.0.0.1): ``adapter.console`` refuses it anywhere else.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from adapter.config.console_oidc import ConsoleOidcSettings


class ConsoleSettings(BaseModel):
    """Who may sign in, for how long, and how the console's pages are served."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    enabled: bool = False
    # A session ends after this many minutes without a request, and after this many hours in
    # any case (OWASP ASVS 3.3: idle and absolute timeouts).
    session_idle_minutes: int = Field(15, ge=1, le=240)
    session_absolute_hours: int = Field(8, ge=1, le=24)
    cookie_secure: bool = True
    # Sign-in with the province's identity provider (OpenID Connect; docs/console-oidc.md).
    # Absent: local accounts only.
    oidc: ConsoleOidcSettings | None = None
    default_locale: Literal["en", "ur"] = "en"
    # Sign-in throttling per account and source address: after `lockout_after` failures the
    # pair waits `lockout_base_seconds`, doubling with each further failure up to
    # `lockout_max_seconds` — short, so nobody can lock a colleague out for long.
    lockout_after: int = Field(5, ge=1, le=50)
    lockout_base_seconds: int = Field(30, ge=1, le=3600)
    lockout_max_seconds: int = Field(900, ge=1, le=86_400)
    # Every answer page of an establishment's check is padded to this many bytes, so the
    # outcome cannot be read from the size of the encrypted page (privacy.md §6.6 item 5).
    check_page_bytes: int = Field(16_384, ge=4096, le=131_072)

    @model_validator(mode="after")
    def _lockout_bounds(self) -> ConsoleSettings:
        if self.lockout_max_seconds < self.lockout_base_seconds:
            raise ValueError("lockout_max_seconds must be at least lockout_base_seconds")
        if self.session_idle_minutes > self.session_absolute_hours * 60:
            raise ValueError("session_idle_minutes must not exceed session_absolute_hours")
        return self
