"""ID-token checks a test provider cannot be made to break (``responses`` stands in for the
provider's metadata and keys; the tokens are signed here): key ids and rotation, several
audiences, a token from the future, and metadata naming another issuer."""

from __future__ import annotations

from typing import Any

import pytest
import responses
from joserfc import jwt
from joserfc.jwk import RSAKey

from adapter.config.console_oidc import ConsoleOidcSettings
from adapter.console.oidc import OidcProvider, ProviderUnavailable, TokenRejected, verify_id_token

ISSUER = "https://sso.punjab.example/realms/cpims"
CLIENT = "cpims-console"
NOW = 1_800_000_000
NONCE = "n-0S6_WzA2Mj"


def settings(**fields: Any) -> ConsoleOidcSettings:
    return ConsoleOidcSettings(
        issuer=ISSUER,
        client_id=CLIENT,
        redirect_uri="https://adapter.punjab.example/console/oidc/callback",
        **fields,
    )


def key(kid: str) -> RSAKey:
    return RSAKey.generate_key(2048, parameters={"kid": kid, "use": "sig"})


def token(signing: RSAKey, **claims: Any) -> str:
    body = {
        "iss": ISSUER,
        "sub": "u-1001",
        "aud": CLIENT,
        "exp": NOW + 300,
        "iat": NOW,
        "nonce": NONCE,
    } | claims
    header = {"alg": "RS256", "kid": signing.kid}
    return jwt.encode(header, {k: v for k, v in body.items() if v is not None}, signing)


class Provider:
    """The provider's metadata and JWKS as ``responses`` serves them; ``publish`` swaps keys."""

    def __init__(self, mocked: responses.RequestsMock, *keys: RSAKey) -> None:
        mocked.get(
            f"{ISSUER}/.well-known/openid-configuration",
            json={
                "issuer": ISSUER,
                "authorization_endpoint": f"{ISSUER}/protocol/openid-connect/auth",
                "token_endpoint": f"{ISSUER}/protocol/openid-connect/token",
                "jwks_uri": f"{ISSUER}/protocol/openid-connect/certs",
            },
        )
        self.mocked = mocked
        self.jwks = mocked.get(f"{ISSUER}/protocol/openid-connect/certs", json=self.body(keys))

    @staticmethod
    def body(keys: tuple[RSAKey, ...]) -> dict[str, Any]:
        return {"keys": [k.as_dict(private=False) for k in keys]}

    def publish(self, *keys: RSAKey) -> None:
        self.mocked.replace(
            responses.GET, f"{ISSUER}/protocol/openid-connect/certs", json=self.body(keys)
        )

    def key_fetches(self) -> int:
        return sum(1 for call in self.mocked.calls if call.request.url.endswith("/certs"))


@pytest.fixture
def mocked() -> Any:
    with responses.RequestsMock(assert_all_requests_are_fired=False) as mocked:
        yield mocked


def test_a_new_key_id_is_fetched_once_and_then_served_from_the_cache(mocked: Any) -> None:
    old, new = key("2026-11"), key("2026-12")
    idp = Provider(mocked, old)
    provider = OidcProvider(settings(jwks_refetch_seconds=0), now=lambda: NOW)
    assert verify_id_token(provider, token(old), nonce=NONCE)["sub"] == "u-1001"
    idp.publish(old, new)  # rotation: the provider publishes the next key and signs with it
    assert verify_id_token(provider, token(new), nonce=NONCE)["sub"] == "u-1001"
    assert verify_id_token(provider, token(new), nonce=NONCE)["sub"] == "u-1001"
    assert idp.key_fetches() == 2


def test_made_up_key_ids_cost_one_fetch_per_interval(mocked: Any) -> None:
    real, forged = key("2026-11"), key("forged")
    idp = Provider(mocked, real)
    clock = [0.0]
    provider = OidcProvider(
        settings(jwks_refetch_seconds=30), now=lambda: NOW, monotonic=lambda: clock[0]
    )
    verify_id_token(provider, token(real), nonce=NONCE)
    for _ in range(5):
        with pytest.raises(TokenRejected) as refused:
            verify_id_token(provider, token(forged), nonce=NONCE)
        assert str(refused.value) == (
            "the ID token is signed with a key the identity provider does not publish"
        )
    assert idp.key_fetches() == 1
    clock[0] += 30
    with pytest.raises(TokenRejected):
        verify_id_token(provider, token(forged), nonce=NONCE)
    assert idp.key_fetches() == 2


def test_several_audiences_need_azp_naming_this_client(mocked: Any) -> None:
    signing = key("k1")
    Provider(mocked, signing)
    provider = OidcProvider(settings(), now=lambda: NOW)
    both = [CLIENT, "registry-portal"]
    with pytest.raises(TokenRejected) as refused:
        verify_id_token(provider, token(signing, aud=both), nonce=NONCE)
    assert refused.value.problem == "audience"
    with pytest.raises(TokenRejected):
        verify_id_token(provider, token(signing, aud=both, azp="registry-portal"), nonce=NONCE)
    claims = verify_id_token(provider, token(signing, aud=both, azp=CLIENT), nonce=NONCE)
    assert claims["azp"] == CLIENT


def test_a_token_issued_in_the_future_beyond_the_skew_is_refused(mocked: Any) -> None:
    signing = key("k1")
    Provider(mocked, signing)
    provider = OidcProvider(settings(clock_skew_seconds=60), now=lambda: NOW)
    verify_id_token(provider, token(signing, iat=NOW + 60), nonce=NONCE)  # within the skew
    with pytest.raises(TokenRejected) as refused:
        verify_id_token(provider, token(signing, iat=NOW + 61, exp=NOW + 900), nonce=NONCE)
    assert str(refused.value) == "the ID token's 'iat' claim is not acceptable"


def test_a_token_missing_a_required_claim_is_refused(mocked: Any) -> None:
    signing = key("k1")
    Provider(mocked, signing)
    provider = OidcProvider(settings(), now=lambda: NOW)
    for claim in ("iss", "sub", "aud", "exp", "iat", "nonce"):
        with pytest.raises(TokenRejected):
            verify_id_token(provider, token(signing, **{claim: None}), nonce=NONCE)


def test_metadata_naming_another_issuer_is_refused(mocked: Any) -> None:
    mocked.get(
        f"{ISSUER}/.well-known/openid-configuration",
        json={"issuer": "https://attacker.example", "jwks_uri": "https://attacker.example/k"},
    )
    with pytest.raises(ProviderUnavailable) as refused:
        OidcProvider(settings()).metadata()
    assert str(refused.value) == (
        "the identity provider's metadata names another issuer than console.oidc.issuer; "
        "set issuer exactly as the provider's tokens carry it"
    )
