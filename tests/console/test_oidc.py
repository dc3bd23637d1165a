"""Sign-in with an identity provider: the console's OIDC routes on a real uvicorn server, a real
OpenID Connect provider (oidc-provider-mock) on 127.0.0.1, and a client that follows the
redirects and submits the provider's form as a person would."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import parse_qs, parse_qsl, urlsplit

import httpx
import pytest
import requests
import uvicorn
from fastapi import FastAPI
from starlette.responses import PlainTextResponse, Response

from adapter.config.console_oidc import ConsoleOidcSettings
from adapter.console.oidc import (
    BINDING_COOKIE,
    IdentityRefused,
    LoginStateInvalid,
    OidcError,
    OidcProvider,
    ProviderUnavailable,
    TokenRejected,
    VerifiedIdentity,
    begin,
    end_session_url,
    finish,
    match_account,
    oidc_routes,
    verify_id_token,
)
from adapter.serving import BackgroundServer, bind
from tests.support.oidc_provider import MemoryLoginStore, OidcProviderMock

EMAIL = "reviewer@registry.example"


@dataclass
class Account:
    username: str
    role: str
    issuer: str | None = None
    subject: str | None = None


class Accounts:
    """The console's accounts, as match_account sees them."""

    def __init__(self, *accounts: Account) -> None:
        self.accounts = list(accounts)
        self.provisioned: list[VerifiedIdentity] = []

    def by_identity(self, issuer: str, subject: str) -> Account | None:
        return next((a for a in self.accounts if (a.issuer, a.subject) == (issuer, subject)), None)

    def by_email(self, email: str) -> Account | None:
        return next((a for a in self.accounts if a.username == email and a.subject is None), None)

    def link(self, account: Account, identity: VerifiedIdentity) -> None:
        account.issuer, account.subject = identity.issuer, identity.subject

    def provision(self, identity: VerifiedIdentity) -> Account:
        self.provisioned.append(identity)
        account = Account(identity.email or identity.subject, next(iter(identity.roles)))
        self.accounts.append(account)
        return account


@dataclass
class Console:
    """The console's OIDC routes served on 127.0.0.1, and what a test needs around them."""

    url: str
    settings: ConsoleOidcSettings
    provider: OidcProvider
    store: MemoryLoginStore
    accounts: Accounts
    idp: OidcProviderMock

    def browser(self) -> httpx.Client:
        return httpx.Client(base_url=self.url, timeout=10)

    def sign_in(self, browser: httpx.Client, sub: str, next_path: str = "") -> httpx.Response:
        """The whole round trip a person makes: console → provider's form → console."""
        leave = browser.get("/console/oidc/login", params={"next": next_path} if next_path else {})
        assert leave.status_code == 303
        callback = self.idp.authorize(leave.headers["location"], sub)
        assert callback.startswith(self.settings.redirect_uri)
        return browser.get(callback)


def signed_in_page(
    settings: ConsoleOidcSettings, identity: VerifiedIdentity, accounts: Accounts
) -> Response:
    """What the console's on_identity does: find the account (or refuse), start a session."""
    account = match_account(settings, identity, accounts)
    return PlainTextResponse(
        f"signed in as {account.username} ({account.role}) → {identity.return_to}"
    )


def make_console(
    idp: OidcProviderMock,
    tmp_path: Path,
    accounts: Accounts,
    *,
    sub_app: bool = False,
    **overrides: object,
) -> Iterator[Console]:
    sock = bind("127.0.0.1", 0)
    url = f"http://127.0.0.1:{sock.getsockname()[1]}"
    redirect_uri = f"{url}/console/oidc/callback"
    client = idp.register_client(redirect_uri)
    secret_file = tmp_path / "oidc-client-secret"
    secret_file.write_text(client.client_secret + "\n")
    fields: dict[str, object] = {
        "issuer": idp.issuer,
        "client_id": client.client_id,
        "client_secret_file": secret_file,
        "redirect_uri": redirect_uri,
        "post_logout_redirect_uri": f"{url}/console/signed-out",
        "jwks_refetch_seconds": 0,
    } | overrides
    settings = ConsoleOidcSettings(**fields)  # type: ignore[arg-type]
    provider = OidcProvider(settings)
    store = MemoryLoginStore()
    app = FastAPI()
    console_app = FastAPI() if sub_app else app  # the console is an app mounted at /console
    console_app.include_router(
        oidc_routes(
            settings,
            lambda request, identity: signed_in_page(settings, identity, accounts),
            store,
            provider=provider,
            prefix="/oidc" if sub_app else "/console/oidc",
        )
    )
    if sub_app:
        app.mount("/console", console_app)
    server = BackgroundServer(
        uvicorn.Config(app, log_level="warning", lifespan="off"), sock, "console-oidc"
    )
    server.start()
    try:
        yield Console(url, settings, provider, store, accounts, idp)
    finally:
        server.stop()


@pytest.fixture
def accounts() -> Accounts:
    return Accounts(Account(EMAIL, "reviewer"))


@pytest.fixture
def console(
    oidc_provider: OidcProviderMock, tmp_path: Path, accounts: Accounts
) -> Iterator[Console]:
    oidc_provider.add_user("u-1001", email=EMAIL, email_verified=True, name="Registry Reviewer")
    yield from make_console(oidc_provider, tmp_path, accounts)


def callback_params(url: str) -> dict[str, str]:
    return dict(parse_qsl(urlsplit(url).query))


def payload(id_token: str) -> dict[str, object]:
    part = id_token.split(".")[1]
    return json.loads(base64.urlsafe_b64decode(part + "=" * (-len(part) % 4)))


# --- the flow over HTTP --------------------------------------------------------------------


def test_a_person_signs_in_through_the_provider_and_lands_where_they_were_going(
    console: Console,
) -> None:
    with console.browser() as browser:
        answer = console.sign_in(browser, "u-1001", next_path="/console/reviewer/queue")
        assert answer.status_code == 200
        assert answer.text == f"signed in as {EMAIL} (reviewer) → /console/reviewer/queue"
        assert answer.headers["cache-control"] == "no-store"
        # The browser binding is spent with the sign-in.
        assert BINDING_COOKIE not in browser.cookies
    assert console.store.entries == {}
    # The account found by its verified email is now linked to the provider's subject.
    [account] = console.accounts.accounts
    assert (account.issuer, account.subject) == (console.settings.issuer, "u-1001")


def test_an_account_linked_to_one_subject_is_not_taken_by_another_with_the_same_email(
    console: Console,
) -> None:
    with console.browser() as browser:
        assert console.sign_in(browser, "u-1001").status_code == 200
    # Someone else at the provider now shows the same (verified) email.
    console.idp.add_user("u-7007", email=EMAIL, email_verified=True)
    with console.browser() as browser:
        assert console.sign_in(browser, "u-7007").status_code == 403


def test_the_routes_work_in_a_console_app_mounted_at_console(
    oidc_provider: OidcProviderMock, tmp_path: Path, accounts: Accounts
) -> None:
    oidc_provider.add_user("u-1001", email=EMAIL, email_verified=True)
    for console in make_console(oidc_provider, tmp_path, accounts, sub_app=True):
        with console.browser() as browser:
            answer = console.sign_in(browser, "u-1001", next_path="/console/dpo")
    assert answer.text == f"signed in as {EMAIL} (reviewer) → /console/dpo"


def test_the_authorisation_request_uses_pkce_s256_nonce_and_the_configured_redirect_uri(
    console: Console,
) -> None:
    # A forged Host header must not choose where the provider sends the code.
    with console.browser() as browser:
        leave = browser.get("/console/oidc/login", headers={"Host": "evil.example"})
    query = parse_qs(urlsplit(leave.headers["location"]).query)
    assert query["redirect_uri"] == [console.settings.redirect_uri]
    assert query["code_challenge_method"] == ["S256"]
    assert query["scope"] == ["openid email profile"]
    assert query["response_type"] == ["code"]
    [entry] = [json.loads(value) for value, _ in console.store.entries.values()]
    challenge = base64.urlsafe_b64encode(hashlib.sha256(entry["verifier"].encode()).digest())
    assert query["code_challenge"] == [challenge.rstrip(b"=").decode()]
    assert query["nonce"] == [entry["nonce"]]
    # The store keeps only a digest of the state, never the state itself.
    assert query["state"][0] not in json.dumps(list(console.store.entries))


def test_a_next_address_off_the_console_is_replaced_by_the_console_home(console: Console) -> None:
    for next_path in (
        "https://evil.example/console/",
        "//evil.example/x",
        "/elsewhere",
        "/console/../x",
    ):
        with console.browser() as browser:
            answer = console.sign_in(browser, "u-1001", next_path=next_path)
        assert answer.text.endswith("→ /console/"), next_path


def test_a_callback_with_a_state_the_console_never_issued_is_refused(console: Console) -> None:
    with console.browser() as browser:
        leave = browser.get("/console/oidc/login")
        callback = console.idp.authorize(leave.headers["location"], "u-1001")
        forged = callback.replace("state=", "state=x")
        answer = browser.get(forged)
    assert answer.status_code == 403
    assert answer.text == (
        "this sign-in link is unknown, expired or already used; start the sign-in again"
    )


def test_a_callback_opened_twice_signs_in_once(console: Console) -> None:
    with console.browser() as browser:
        leave = browser.get("/console/oidc/login")
        callback = console.idp.authorize(leave.headers["location"], "u-1001")
        assert browser.get(callback).status_code == 200
        browser.cookies.set(BINDING_COOKIE, "replayed", path="/console/oidc")
        again = browser.get(callback)
    assert again.status_code == 403
    assert "already used" in again.text


def test_a_callback_carried_to_another_browser_signs_nobody_in(console: Console) -> None:
    # Login CSRF: someone's callback URL (their code and state) opened in a victim's browser.
    with console.browser() as attacker:
        leave = attacker.get("/console/oidc/login")
        callback = console.idp.authorize(leave.headers["location"], "u-1001")
    with console.browser() as victim:
        answer = victim.get(callback)
    assert answer.status_code == 403
    assert answer.text == "this sign-in was started in another browser; start the sign-in again"


def test_a_code_redeemed_once_is_refused_by_the_provider_the_second_time(console: Console) -> None:
    first = begin(console.provider, console.store, binding="b1")
    params = callback_params(console.idp.authorize(first, "u-1001"))
    finish(console.provider, console.store, params, binding="b1")
    # The same code under a fresh sign-in's state: the provider has spent it.
    second = begin(console.provider, console.store, binding="b2")
    replay = params | {"state": callback_params(second)["state"]}
    with pytest.raises(TokenRejected) as refused:
        finish(console.provider, console.store, replay, binding="b2")
    assert refused.value.problem == "replay"
    assert str(refused.value) == (
        "the identity provider refused the sign-in code (invalid_grant); start again"
    )


def test_a_person_who_denies_at_the_provider_is_told_so(console: Console) -> None:
    with console.browser() as browser:
        leave = browser.get("/console/oidc/login")
        answer = browser.get(console.idp.deny(leave.headers["location"]))
    assert answer.status_code == 403
    assert answer.text == "the identity provider did not sign you in (access_denied)"


def test_an_identity_with_no_console_account_is_refused_in_one_line(console: Console) -> None:
    console.idp.add_user("u-2002", email="stranger@elsewhere.example", email_verified=True)
    with console.browser() as browser:
        answer = console.sign_in(browser, "u-2002")
    assert answer.status_code == 403
    assert answer.text == (
        "your identity-provider account has no console account; ask the data-protection "
        "officer to create one"
    )
    assert "stranger" not in answer.text
    assert console.accounts.provisioned == []


def test_an_unverified_email_finds_no_account(console: Console) -> None:
    console.idp.add_user("u-3003", email=EMAIL, email_verified=False)
    with console.browser() as browser:
        answer = console.sign_in(browser, "u-3003")
    assert answer.status_code == 403
    assert "has no console account" in answer.text


def test_with_account_claim_sub_only_a_linked_account_signs_in(
    oidc_provider: OidcProviderMock, tmp_path: Path
) -> None:
    oidc_provider.add_user("u-4004", email=EMAIL, email_verified=True)
    oidc_provider.add_user("u-5005", email="dpo@registry.example", email_verified=True)
    accounts = Accounts(
        Account(EMAIL, "reviewer"),  # same email, not linked: must not be taken
        Account("dpo", "dpo", issuer=oidc_provider.issuer, subject="u-5005"),
    )
    for console in make_console(oidc_provider, tmp_path, accounts, account_claim="sub"):
        with console.browser() as browser:
            assert console.sign_in(browser, "u-4004").status_code == 403
        with console.browser() as browser:
            assert console.sign_in(browser, "u-5005").text == "signed in as dpo (dpo) → /console/"


def test_roles_from_the_providers_groups_provision_only_when_configured(
    oidc_provider: OidcProviderMock, tmp_path: Path
) -> None:
    oidc_provider.add_user(
        "u-6006", email="ops@it.example", email_verified=True, groups=["cpims-operators", "staff"]
    )
    accounts = Accounts()
    for console in make_console(
        oidc_provider,
        tmp_path,
        accounts,
        roles_claim="groups",
        group_roles={"cpims-operators": "operator"},
        auto_provision=True,
    ):
        with console.browser() as browser:
            answer = console.sign_in(browser, "u-6006")
    assert answer.text == "signed in as ops@it.example (operator) → /console/"
    [identity] = accounts.provisioned
    assert identity.roles == frozenset({"operator"})
    assert (identity.issuer, identity.subject) == (oidc_provider.issuer, "u-6006")


# --- the ID token's checks ---------------------------------------------------------------


def test_a_token_whose_nonce_is_not_this_sign_ins_is_refused(console: Console) -> None:
    url = begin(console.provider, console.store, binding="b")
    params = callback_params(console.idp.authorize(url, "u-1001"))
    # The server-side record of the sign-in says another nonce than the one the token carries.
    [(key, (value, expires))] = console.store.entries.items()
    console.store.entries[key] = (json.dumps(json.loads(value) | {"nonce": "another"}), expires)
    with pytest.raises(TokenRejected) as refused:
        finish(console.provider, console.store, params, binding="b")
    assert refused.value.problem == "nonce"


def identity_of(console: Console, sub: str) -> tuple[VerifiedIdentity, str]:
    url = begin(console.provider, console.store, binding="b")
    nonce = parse_qs(urlsplit(url).query)["nonce"][0]
    params = callback_params(console.idp.authorize(url, sub))
    return finish(console.provider, console.store, params, binding="b"), nonce


def test_a_token_issued_to_another_client_is_refused(
    console: Console, oidc_provider: OidcProviderMock, tmp_path: Path
) -> None:
    # Another application of the same provider signs the person in and its ID token is
    # presented to the console (token substitution): a real token, for another audience.
    other = oidc_provider.register_client("http://127.0.0.1:9/other/callback")
    secret = tmp_path / "other-secret"
    secret.write_text(other.client_secret)
    other_settings = console.settings.model_copy(
        update={
            "client_id": other.client_id,
            "client_secret_file": secret,
            "redirect_uri": "http://127.0.0.1:9/other/callback",
        }
    )
    other_app = Console(
        console.url,
        other_settings,
        OidcProvider(other_settings),
        MemoryLoginStore(),
        console.accounts,
        oidc_provider,
    )
    identity, nonce = identity_of(other_app, "u-1001")
    assert payload(identity.id_token)["aud"] in (other.client_id, [other.client_id])
    with pytest.raises(TokenRejected) as refused:
        verify_id_token(console.provider, identity.id_token, nonce=nonce)
    assert refused.value.problem == "audience"


def test_an_expired_token_is_refused_and_skew_is_allowed(console: Console) -> None:
    identity, nonce = identity_of(console, "u-1001")
    expires = int(payload(identity.id_token)["exp"])  # type: ignore[call-overload]
    skew = console.settings.clock_skew_seconds
    console.provider.now = lambda: expires + skew - 1  # within the allowed skew
    assert verify_id_token(console.provider, identity.id_token, nonce=nonce)["sub"] == "u-1001"
    console.provider.now = lambda: expires + skew + 1
    with pytest.raises(TokenRejected) as refused:
        verify_id_token(console.provider, identity.id_token, nonce=nonce)
    assert refused.value.problem == "expired"
    assert str(refused.value) == "the ID token has expired"


def test_a_token_from_another_issuer_is_refused(
    console: Console, oidc_provider: OidcProviderMock
) -> None:
    identity, nonce = identity_of(console, "u-1001")
    # The same provider reached as "localhost" puts another issuer in its tokens; a console
    # configured for it refuses them (and its metadata check refuses the mismatch first).
    issuer = oidc_provider.issuer.replace("127.0.0.1", "localhost")
    elsewhere = console.settings.model_copy(update={"issuer": issuer})
    with pytest.raises(OidcError):
        verify_id_token(OidcProvider(elsewhere), identity.id_token, nonce=nonce)


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def test_unsigned_and_hmac_tokens_are_refused_before_any_key_is_used(console: Console) -> None:
    identity, nonce = identity_of(console, "u-1001")
    claims = b64(json.dumps(payload(identity.id_token)).encode())
    unsigned = f"{b64(json.dumps({'alg': 'none'}).encode())}.{claims}."
    # Algorithm confusion: HS256 "signed" with the provider's public key as the HMAC secret.
    jwks = requests.get(console.provider.metadata()["jwks_uri"], timeout=10).json()
    public = json.dumps(jwks["keys"][0]).encode()
    header = b64(json.dumps({"alg": "HS256", "kid": jwks["keys"][0].get("kid")}).encode())
    mac = hmac.new(public, f"{header}.{claims}".encode(), hashlib.sha256).digest()
    confused = f"{header}.{claims}.{b64(mac)}"
    for token in (unsigned, confused):
        with pytest.raises(TokenRejected) as refused:
            verify_id_token(console.provider, token, nonce=nonce)
        assert "asymmetric" in str(refused.value)
    # The provider's signature over claims someone changed (another subject).
    head, _, signature = identity.id_token.split(".")
    changed = b64(json.dumps(payload(identity.id_token) | {"sub": "u-2002"}).encode())
    tampered = f"{head}.{changed}.{signature}"
    with pytest.raises(TokenRejected):
        verify_id_token(console.provider, tampered, nonce=nonce)


# --- the provider's keys and metadata ------------------------------------------------------


def test_a_rotated_signing_key_is_fetched_when_a_token_names_it(console: Console) -> None:
    with console.browser() as browser:
        assert console.sign_in(browser, "u-1001").status_code == 200
    console.idp.rotate_signing_key()
    with console.browser() as browser:
        answer = console.sign_in(browser, "u-1001")
    assert answer.status_code == 200, answer.text


def test_unknown_key_ids_do_not_make_the_console_fetch_keys_on_every_token(
    oidc_provider: OidcProviderMock, tmp_path: Path, accounts: Accounts
) -> None:
    oidc_provider.add_user("u-1001", email=EMAIL, email_verified=True)
    for console in make_console(oidc_provider, tmp_path, accounts, jwks_refetch_seconds=3600):
        with console.browser() as browser:
            assert console.sign_in(browser, "u-1001").status_code == 200
        console.idp.rotate_signing_key()
        with console.browser() as browser:
            answer = console.sign_in(browser, "u-1001")
    # The mock names no kid (OIDC Core §10.1 allows that with one key): its new key is one
    # the console has not read, so the signature does not verify against the key it holds.
    assert answer.status_code == 403
    assert answer.text == "the ID token's signature does not verify"


class CountingSession(requests.Session):
    def __init__(self) -> None:
        super().__init__()
        self.fetched: list[str] = []

    def get(self, url: str | bytes, **kwargs: object) -> requests.Response:  # type: ignore[override]
        self.fetched.append(urlsplit(str(url)).path)
        return super().get(url, **kwargs)  # type: ignore[arg-type]


def test_metadata_is_cached_for_its_ttl_and_read_again_after(console: Console) -> None:
    http = CountingSession()
    clock = [1000.0]
    provider = OidcProvider(console.settings, http=http, monotonic=lambda: clock[0])
    for _ in range(3):
        provider.metadata()
    assert http.fetched == ["/.well-known/openid-configuration"]
    assert http.verify is True  # TLS verification is never turned off
    clock[0] += console.settings.metadata_ttl_seconds
    provider.metadata()
    assert http.fetched == ["/.well-known/openid-configuration"] * 2


def test_a_provider_that_cannot_be_reached_is_one_line(tmp_path: Path) -> None:
    sock = bind("127.0.0.1", 0)
    issuer = f"http://127.0.0.1:{sock.getsockname()[1]}"
    sock.close()  # nothing listens there now
    settings = ConsoleOidcSettings(
        issuer=issuer,
        client_id="console",
        redirect_uri="https://adapter.example/console/oidc/callback",
    )
    with pytest.raises(ProviderUnavailable) as refused:
        begin(OidcProvider(settings), MemoryLoginStore(), binding="b")
    assert str(refused.value) == (
        "the identity provider's metadata could not be fetched (ConnectionError); check "
        "console.oidc.issuer and the network"
    )


# --- logout ------------------------------------------------------------------------------


def test_logout_ends_the_providers_session_and_comes_back_to_the_console(console: Console) -> None:
    identity, _ = identity_of(console, "u-1001")
    url = end_session_url(console.provider, identity.id_token)
    assert url is not None
    query = parse_qs(urlsplit(url).query)
    assert query["id_token_hint"] == [identity.id_token]
    assert query["client_id"] == [console.settings.client_id]
    with httpx.Client(timeout=10) as browser:
        page = browser.get(url)  # the provider asks the person to confirm
        assert page.status_code == 200
        confirm_url = f"{console.idp.issuer}/oauth2/end_session/confirm"
        back = browser.post(
            confirm_url, data={"redirect_uri": query["post_logout_redirect_uri"][0]}
        )
    assert back.headers["location"] == console.settings.post_logout_redirect_uri


def test_state_errors_are_one_clear_line_and_name_nobody(console: Console) -> None:
    for params in ({}, {"state": "nope", "code": "x"}):
        with pytest.raises(LoginStateInvalid) as refused:
            finish(console.provider, console.store, params, binding="b")
        assert "\n" not in str(refused.value)
    with pytest.raises(IdentityRefused):
        match_account(console.settings, VerifiedIdentity("https://idp", "s"), Accounts())
