"""The ``[console.oidc]`` section: what it accepts, what it refuses and how each refusal reads."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import BaseModel, ValidationError
from pydantic_settings import BaseSettings, SettingsConfigDict
from starlette.responses import Response

from adapter.config.console_oidc import SECRET_VARIABLE, ConsoleOidcSettings
from adapter.console.oidc import oidc_routes
from adapter.errors import ConfigError
from tests.support.oidc_provider import MemoryLoginStore

BASE = {
    "issuer": "https://sso.punjab.example/realms/cpims",
    "client_id": "cpims-console",
    "redirect_uri": "https://adapter.punjab.example/console/oidc/callback",
}


def refusal(**fields: object) -> str:
    with pytest.raises(ValidationError) as refused:
        ConsoleOidcSettings(**(BASE | fields))  # type: ignore[arg-type]
    # What adapter.config's load_settings shows: each error's location and message, never
    # the value (it may be a secret).
    return "\n".join(f"{err['loc']}: {err['msg']}" for err in refused.value.errors())


def test_the_defaults_ask_for_openid_email_and_profile_and_map_by_email() -> None:
    settings = ConsoleOidcSettings(**BASE)  # type: ignore[arg-type]
    assert settings.scopes == ["openid", "email", "profile"]
    assert settings.account_claim == "email"
    assert (settings.roles_claim, settings.auto_provision) == (None, False)
    assert settings.secret() is None  # a public client: PKCE alone


def test_a_client_secret_written_in_the_config_file_is_refused(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv(SECRET_VARIABLE, raising=False)
    message = refusal(client_secret="s3cret-in-the-file")
    assert "must not be written in the config file" in message
    assert SECRET_VARIABLE in message
    assert "s3cret-in-the-file" not in message


def test_the_client_secret_comes_from_the_environment_variable(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    class Console(BaseModel):
        oidc: ConsoleOidcSettings | None = None

    class Settings(BaseSettings):
        # As adapter.config.Settings reads the environment.
        model_config = SettingsConfigDict(env_prefix="CPIMS_ADAPTER_", env_nested_delimiter="__")
        console: Console = Console()

    monkeypatch.setenv(SECRET_VARIABLE, "from-the-environment")
    settings = Settings(console={"oidc": BASE})  # type: ignore[arg-type]
    assert settings.console.oidc is not None
    assert settings.console.oidc.secret() == "from-the-environment"


def test_the_client_secret_comes_from_its_file(tmp_path: Path) -> None:
    secret = tmp_path / "client-secret"
    secret.write_text("from-the-file\n")
    assert ConsoleOidcSettings(**BASE, client_secret_file=secret).secret() == "from-the-file"  # type: ignore[arg-type]


def test_an_unreadable_secret_file_is_one_line_naming_the_key(tmp_path: Path) -> None:
    settings = ConsoleOidcSettings(**BASE, client_secret_file=tmp_path / "missing")  # type: ignore[arg-type]
    with pytest.raises(ConfigError) as refused:
        settings.secret()
    message = str(refused.value)
    assert message.startswith("console.oidc.client_secret_file: cannot read the secret file")
    assert "\n" not in message
    # Mounting the routes reads it, so the server refuses to start rather than a sign-in failing.
    with pytest.raises(ConfigError):
        oidc_routes(settings, lambda request, identity: Response(), MemoryLoginStore())


@pytest.mark.parametrize(
    "field, value",
    [
        ("issuer", "http://sso.punjab.example/realms/cpims"),
        ("redirect_uri", "http://adapter.punjab.example/console/oidc/callback"),
        ("post_logout_redirect_uri", "ftp://adapter.punjab.example/"),
        ("issuer", "sso.punjab.example"),
    ],
)
def test_urls_must_be_https_except_on_loopback(field: str, value: str) -> None:
    assert "must be an https:// URL" in refusal(**{field: value})


def test_http_on_loopback_is_allowed_for_a_test_provider() -> None:
    settings = ConsoleOidcSettings(
        **(
            BASE
            | {
                "issuer": "http://127.0.0.1:9400/",
                "redirect_uri": "http://localhost:8700/console/oidc/callback",
            }
        )  # type: ignore[arg-type]
    )
    assert settings.issuer == "http://127.0.0.1:9400"


def test_the_redirect_uri_must_be_the_consoles_callback() -> None:
    message = refusal(redirect_uri="https://adapter.punjab.example/oauth/callback")
    assert "must be the console's callback" in message
    behind_a_proxy = "https://gw.punjab.example/adapter/console/oidc/callback"
    assert ConsoleOidcSettings(**(BASE | {"redirect_uri": behind_a_proxy})).redirect_uri  # type: ignore[arg-type]


def test_scopes_without_openid_are_refused() -> None:
    assert "must include 'openid'" in refusal(scopes=["email", "profile"])


def test_roles_from_groups_need_the_groups_claim_and_name_console_roles() -> None:
    assert "group_roles needs roles_claim" in refusal(group_roles={"cpims-dpo": "dpo"})
    assert "auto_provision needs roles_claim" in refusal(auto_provision=True)
    assert "group_roles" in refusal(roles_claim="groups", group_roles={"cpims-dpo": "admin"})


def test_unknown_keys_are_refused() -> None:
    assert "verify_tls" in refusal(verify_tls=False)  # TLS verification cannot be turned off
