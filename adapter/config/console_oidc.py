"""Settings of the console's sign-in with the province's identity provider (OpenID Connect),
meant to be mounted by the console's section as ``[console.oidc]``
(``oidc: ConsoleOidcSettings | None = None`` in ``ConsoleSettings``; absent: no OIDC sign-in).

The client secret is never written in the config text: it comes from ``client_secret_file``
(readable by the service's user only) or from the environment variable
``CPIMS_ADAPTER_CONSOLE__OIDC__CLIENT_SECRET``. A ``client_secret`` found in the file is an
error naming both ways.
"""

from __future__ import annotations

import ipaddress
import os
from pathlib import Path
from typing import Literal
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator, model_validator

from adapter.errors import ConfigError

SECRET_VARIABLE = "CPIMS_ADAPTER_CONSOLE__OIDC__CLIENT_SECRET"  # noqa: S105 - a name
# The console's roles (adapter/console/accounts.py Role), named here so the ground does not
# import the console.
ConsoleRole = Literal["establishment_officer", "reviewer", "dpo", "operator"]


class ConsoleOidcSettings(BaseModel):
    """Which identity provider, as which client, and how its people map to console accounts."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    # The provider's issuer URL exactly as its ID tokens carry it in `iss`; its metadata is
    # read from <issuer>/.well-known/openid-configuration (OpenID Connect Discovery 1.0 §4).
    issuer: str
    client_id: str = Field(min_length=1)
    client_secret: SecretStr | None = None
    client_secret_file: Path | None = None
    # The console's callback as registered with the provider, e.g.
    # https://adapter.example.gov.pk/console/oidc/callback: built from here, never from the
    # request's Host header (a forged Host must not choose where codes are sent).
    redirect_uri: str
    # Where the provider sends the browser after RP-initiated logout (registered there too).
    post_logout_redirect_uri: str | None = None
    scopes: list[str] = ["openid", "email", "profile"]
    # Tolerance for the provider's and this host's clocks disagreeing (exp, iat, nbf).
    clock_skew_seconds: int = Field(60, ge=0, le=300)
    # How a provider identity finds its console account: `email` (a verified email equal to
    # the account's, once; the (issuer, subject) pair is what stays) or `sub` (only an account
    # already linked to this issuer and subject).
    account_claim: Literal["email", "sub"] = "email"
    # Off by default: the provider only authenticates and the console account holds the role.
    # Set to the claim carrying the provider's groups (Keycloak: `groups`) to take roles from
    # `group_roles` ({"cpims-dpo" = "dpo"}) instead.
    roles_claim: str | None = None
    group_roles: dict[str, ConsoleRole] = {}
    # An identity with no console account is refused unless this is on (and then only with a
    # role from roles_claim; establishment officers are always created locally: they need
    # their establishment).
    auto_provision: bool = False
    # Provider metadata and signing keys are re-read after this long; an unknown key id in a
    # token re-reads the keys at once, but not more than once per `jwks_refetch_seconds`.
    metadata_ttl_seconds: int = Field(3600, ge=60, le=86_400)
    jwks_refetch_seconds: float = Field(30.0, ge=0, le=3600)
    # The console asks reviewers, the DPO and operators for its own TOTP code after an OIDC
    # sign-in unless the ID token says the provider did multi-factor authentication: an `amr`
    # with "mfa" (RFC 8176), or an `acr` listed here (e.g. Keycloak's step-up level "2", or
    # "http://schemas.openid.net/pape/policies/2007/06/multi-factor").
    mfa_acr_values: list[str] = []
    # How long a sign-in may take between leaving for the provider and coming back.
    login_ttl_seconds: int = Field(600, ge=60, le=3600)
    timeout_seconds: float = Field(10.0, gt=0, le=120)
    # TLS to the provider is always verified; a province CA not in the system store goes here.
    ca_bundle: Path | None = None

    @field_validator("issuer", "redirect_uri", "post_logout_redirect_uri")
    @classmethod
    def _https_url(cls, value: str | None) -> str | None:
        if value is None:
            return None
        value = value.strip()
        parts = urlsplit(value)
        if parts.scheme == "https" and parts.hostname:
            return value.rstrip("/") if parts.path in ("", "/") else value
        if parts.scheme == "http" and parts.hostname and _is_loopback(parts.hostname):
            return value.rstrip("/") if parts.path in ("", "/") else value
        raise ValueError("must be an https:// URL (http:// only for a test provider on loopback)")

    @field_validator("redirect_uri")
    @classmethod
    def _the_console_callback(cls, value: str) -> str:
        if not urlsplit(value).path.endswith("/console/oidc/callback"):
            raise ValueError(
                "must be the console's callback, https://<adapter host>/console/oidc/callback "
                "(registered at the provider exactly so)"
            )
        return value

    @field_validator("scopes")
    @classmethod
    def _openid_scope(cls, value: list[str]) -> list[str]:
        if "openid" not in value:
            raise ValueError("must include 'openid' (without it the provider issues no ID token)")
        return value

    @model_validator(mode="after")
    def _consistent(self) -> ConsoleOidcSettings:
        if self.client_secret is not None and not _secret_from_environment():
            raise ValueError(
                "console.oidc.client_secret must not be written in the config file: put it in "
                f"client_secret_file or the environment variable {SECRET_VARIABLE}"
            )
        if self.client_secret is not None and self.client_secret_file is not None:
            raise ValueError("set console.oidc client_secret or client_secret_file, not both")
        if self.group_roles and not self.roles_claim:
            raise ValueError("console.oidc.group_roles needs roles_claim (the groups claim)")
        if self.auto_provision and not self.roles_claim:
            raise ValueError(
                "console.oidc.auto_provision needs roles_claim and group_roles: a provisioned "
                "account takes its role from the provider's groups"
            )
        return self

    def secret(self) -> str | None:
        """The client secret from ``client_secret_file`` or the environment, or None (a public
        client relying on PKCE alone)."""
        if self.client_secret is not None and self.client_secret.get_secret_value():
            return self.client_secret.get_secret_value()
        if self.client_secret_file is None:
            return None
        try:
            return self.client_secret_file.read_text(encoding="utf-8").strip()
        except OSError as exc:
            raise ConfigError(
                f"console.oidc.client_secret_file: cannot read the secret file "
                f"{self.client_secret_file} ({exc.strerror or type(exc).__name__}). Create it "
                "readable by the service's user only (mode 0400 or 0600), or fix the path."
            ) from None
        except UnicodeDecodeError:
            raise ConfigError(
                f"console.oidc.client_secret_file: the secret file {self.client_secret_file} "
                "is not UTF-8 text. Write the secret as text."
            ) from None


def _secret_from_environment() -> bool:
    # pydantic-settings matches variable names case-insensitively.
    return any(name.upper() == SECRET_VARIABLE for name in os.environ)


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False
