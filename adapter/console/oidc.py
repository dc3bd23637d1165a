"""Sign-in to the console with the province's identity provider (OpenID Connect Core 1.0).

The authorisation-code flow with PKCE (RFC 7636, S256), ``state`` and ``nonce`` kept on the
server, and the ID token verified here (joserfc, the JOSE library of authlib's authors: authlib's
own ``authlib.jose`` is deprecated in its favour) before anyone is believed::

    provider = OidcProvider(settings.console.oidc)             # metadata and keys, cached
    url = begin(provider, store, binding=b, return_to="/console/")     # → the provider
    identity = finish(provider, store, request.query_params, binding=b)  # ← the callback
    account = match_account(provider.settings, identity, accounts)      # or IdentityRefused

``oidc_routes`` mounts the two GETs (``/console/oidc/login`` and ``/console/oidc/callback``) and
binds each sign-in to the browser that started it with a short-lived cookie, so a callback URL
carried to someone else's browser signs nobody in (login CSRF, RFC 6749 §10.12). The foundation
ends the local session on sign-out and then sends the browser to :func:`end_session_url` when
the provider has an ``end_session_endpoint`` (RP-Initiated Logout 1.0).

Every refusal is an :class:`OidcError` whose message is one line with no personal data, and
whose ``problem`` is a short code for the audit log.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import secrets
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol, TypeVar
from urllib.parse import urlencode, urlsplit

import requests
from authlib.integrations.base_client import OAuthError
from authlib.integrations.requests_client import OAuth2Session
from fastapi import APIRouter, Request
from joserfc import jws, jwt
from joserfc.errors import BadSignatureError, ClaimError, ExpiredTokenError, JoseError
from joserfc.jwk import KeySet
from starlette.responses import PlainTextResponse, RedirectResponse, Response

from adapter.config.console_oidc import ConsoleOidcSettings
from adapter.console.web import safe_next
from adapter.errors import AdapterError

PREFIX = "/console/oidc"
BINDING_COOKIE = "cpims_oidc_login"
# Asymmetric algorithms only: `none` is never a signature, and an HS* token would be checked
# against a secret an attacker may know (or, in the classic confusion, the provider's public
# key used as an HMAC secret).
SIGNING_ALGORITHMS = frozenset(
    {"RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA"}
)
# The error codes of RFC 6749 §4.1.2.1 and OIDC Core §3.1.2.6; anything else is named `error`
# (a provider's error text is never repeated: it may reflect what someone typed).
_PROVIDER_ERRORS = frozenset(
    {
        "access_denied",
        "invalid_request",
        "unauthorized_client",
        "unsupported_response_type",
        "invalid_scope",
        "server_error",
        "temporarily_unavailable",
        "interaction_required",
        "login_required",
        "account_selection_required",
        "consent_required",
    }
)


class OidcError(AdapterError):
    """A sign-in through the identity provider was refused. ``problem`` is a short code for the
    audit log (state, replay, provider, token, nonce, audience, expired, email, unmapped)."""

    def __init__(self, message: str, *, problem: str) -> None:
        super().__init__(message)
        self.problem = problem


class LoginStateInvalid(OidcError):
    """The callback belongs to no sign-in this console started (unknown, used or expired
    state, or another browser's)."""


class ProviderUnavailable(OidcError):
    """The identity provider could not be reached, or answered what OIDC does not allow."""


class TokenRejected(OidcError):
    """The ID token failed a check: signature, issuer, audience, time, nonce."""


class IdentityRefused(OidcError):
    """The provider vouched for the person, but no console account is theirs."""


@dataclass(frozen=True)
class VerifiedIdentity:
    """Who the provider says signed in, after every check. ``email`` is set only when the
    provider marked it verified; ``roles`` only when ``roles_claim`` is configured."""

    issuer: str
    subject: str = field(repr=False)
    email: str | None = field(default=None, repr=False)
    name: str | None = field(default=None, repr=False)
    roles: frozenset[str] = frozenset()
    # Where the person was going when sign-in began: a path on this console.
    return_to: str = "/console/"
    # The raw ID token, kept for RP-initiated logout's id_token_hint; never logged.
    id_token: str = field(default="", repr=False)
    # The provider says it did multi-factor authentication (amr "mfa", or an acr listed in
    # mfa_acr_values): the console then does not ask for its own TOTP code.
    mfa: bool = False


class LoginStore(Protocol):
    """Server-side storage for sign-ins in flight (state → nonce, PKCE verifier, return path).
    ``pop`` removes as it reads, so each state is used at most once; expired entries are
    never returned. The console backs it by its session table."""

    def put(self, key: str, value: str, ttl: int) -> None: ...

    def pop(self, key: str) -> str | None: ...


Account = TypeVar("Account")
_Account_co = TypeVar("_Account_co", covariant=True)


class AccountDirectory(Protocol[_Account_co]):
    """The console's accounts as OIDC sign-in needs them (``provision`` is called only with
    ``auto_provision`` on). An account already linked to another subject of this issuer must
    not be returned by ``by_email``."""

    def by_identity(self, issuer: str, subject: str) -> _Account_co | None: ...

    def by_email(self, email: str) -> _Account_co | None: ...

    def link(self, account: Any, identity: VerifiedIdentity) -> None:
        """Record (issuer, subject) on an account found by email: later sign-ins find it by
        them, whatever the email becomes."""

    def provision(self, identity: VerifiedIdentity) -> _Account_co: ...


class OidcProvider:
    """The provider's metadata and signing keys, fetched over verified TLS and cached: the
    metadata for ``metadata_ttl_seconds``, the keys until a token names a key id they lack."""

    def __init__(
        self,
        settings: ConsoleOidcSettings,
        *,
        http: requests.Session | None = None,
        monotonic: Callable[[], float] = time.monotonic,
        now: Callable[[], int] = lambda: int(time.time()),
    ) -> None:
        self.settings = settings
        self._http = http or requests.Session()
        # TLS to the provider is always verified; only the CA bundle may change.
        self._http.verify = str(settings.ca_bundle) if settings.ca_bundle else True
        self._monotonic = monotonic
        self.now = now
        self._lock = threading.RLock()
        self._metadata: dict[str, Any] | None = None
        self._metadata_at = 0.0
        self._keys: KeySet | None = None
        self._keys_at: float | None = None

    def metadata(self) -> dict[str, Any]:
        """The discovery document, re-read once it is older than the TTL."""
        with self._lock:
            age = self._monotonic() - self._metadata_at
            if self._metadata is None or age >= self.settings.metadata_ttl_seconds:
                self._metadata = self._discover()
                self._metadata_at = self._monotonic()
            return self._metadata

    def signing_key(self, kid: str | None, kty: str, *, refresh: bool = False) -> Any:
        """The provider's key for ``kid`` (or its one key of type ``kty`` when the token names
        none). An unknown kid — or ``refresh``, after a signature failed — re-reads the key
        set (the provider rotated its keys), at most once per ``jwks_refetch_seconds``."""
        with self._lock:
            key = _pick(self._keys, kid, kty)
            if (key is None or refresh) and self._may_fetch_keys():
                self._keys = self._fetch_keys()
                self._keys_at = self._monotonic()
                key = _pick(self._keys, kid, kty)
        if key is None:
            raise TokenRejected(
                "the ID token is signed with a key the identity provider does not publish",
                problem="token",
            )
        return key

    def _may_fetch_keys(self) -> bool:
        # A stream of tokens naming made-up key ids must not become a stream of requests.
        if self._keys is None or self._keys_at is None:
            return True
        return self._monotonic() - self._keys_at >= self.settings.jwks_refetch_seconds

    def _discover(self) -> dict[str, Any]:
        issuer = self.settings.issuer
        document = self._get_json(f"{issuer}/.well-known/openid-configuration", "metadata")
        # OIDC Discovery §4.3: the issuer in the document must be exactly the one configured.
        if document.get("issuer") != issuer:
            raise ProviderUnavailable(
                "the identity provider's metadata names another issuer than console.oidc.issuer;"
                " set issuer exactly as the provider's tokens carry it",
                problem="provider",
            )
        for endpoint in ("authorization_endpoint", "token_endpoint", "jwks_uri"):
            url = document.get(endpoint)
            if not isinstance(url, str) or urlsplit(url).scheme != urlsplit(issuer).scheme:
                raise ProviderUnavailable(
                    f"the identity provider's metadata has no usable {endpoint}",
                    problem="provider",
                )
        return document

    def _fetch_keys(self) -> KeySet:
        document = self._get_json(self.metadata()["jwks_uri"], "signing keys")
        try:
            usable = [k for k in document.get("keys", []) if k.get("use", "sig") == "sig"]
            return KeySet.import_key_set({"keys": usable})
        except (JoseError, ValueError, TypeError, AttributeError):
            raise ProviderUnavailable(
                "the identity provider's signing keys (jwks_uri) could not be read",
                problem="provider",
            ) from None

    def _get_json(self, url: str, what: str) -> dict[str, Any]:
        try:
            response = self._http.get(url, timeout=self.settings.timeout_seconds)
        except requests.RequestException as exc:
            raise ProviderUnavailable(
                f"the identity provider's {what} could not be fetched "
                f"({type(exc).__name__}); check console.oidc.issuer and the network",
                problem="provider",
            ) from None
        if response.status_code != 200:
            raise ProviderUnavailable(
                f"the identity provider answered {response.status_code} for its {what}",
                problem="provider",
            )
        try:
            document = response.json()
        except ValueError:
            document = None
        if not isinstance(document, dict):
            raise ProviderUnavailable(
                f"the identity provider's {what} is not a JSON object", problem="provider"
            )
        return document

    def session(self) -> OAuth2Session:
        """An OAuth 2.0 client for one sign-in (authlib), TLS verified like the rest."""
        secret = self.settings.secret()
        client = OAuth2Session(
            client_id=self.settings.client_id,
            client_secret=secret,
            scope=" ".join(self.settings.scopes),
            redirect_uri=self.settings.redirect_uri,
            code_challenge_method="S256",
            token_endpoint_auth_method="client_secret_basic" if secret else "none",
        )
        client.verify = self._http.verify
        return client


def begin(
    provider: OidcProvider, store: LoginStore, *, binding: str, return_to: str = "/console/"
) -> str:
    """Start a sign-in: remember a fresh state, nonce and PKCE verifier on the server (for
    the browser holding ``binding``) and return the provider's authorisation URL."""
    settings = provider.settings
    state = secrets.token_urlsafe(32)
    nonce = secrets.token_urlsafe(32)
    verifier = secrets.token_urlsafe(64)  # 86 characters: RFC 7636 §4.1 wants 43-128
    authorize = provider.metadata()["authorization_endpoint"]
    with provider.session() as client:
        url, _ = client.create_authorization_url(
            authorize, state=state, nonce=nonce, code_verifier=verifier
        )
    entry = {
        "nonce": nonce,
        "verifier": verifier,
        "binding": _digest(binding),
        "return_to": safe_next(return_to),
    }
    store.put(_store_key(state), json.dumps(entry), settings.login_ttl_seconds)
    return str(url)


def finish(
    provider: OidcProvider, store: LoginStore, params: Mapping[str, str], *, binding: str
) -> VerifiedIdentity:
    """Complete a sign-in from the callback's query: check the state (once, this browser's),
    redeem the code with the PKCE verifier, verify the ID token. Raises an OidcError."""
    state = params.get("state") or ""
    raw = store.pop(_store_key(state)) if state else None
    if "error" in params:
        # Nobody is signed in by an error, so its (allow-listed) code is told even when the
        # provider left out the state (RFC 6749 §4.1.2.1 wants it; not every provider sends it).
        error = params["error"] if params["error"] in _PROVIDER_ERRORS else "error"
        raise IdentityRefused(
            f"the identity provider did not sign you in ({error})", problem="provider"
        )
    if raw is None:
        raise LoginStateInvalid(
            "this sign-in link is unknown, expired or already used; start the sign-in again",
            problem="state",
        )
    entry = json.loads(raw)
    if not hmac.compare_digest(entry["binding"], _digest(binding)):
        raise LoginStateInvalid(
            "this sign-in was started in another browser; start the sign-in again",
            problem="state",
        )
    code = params.get("code")
    if not code:
        raise LoginStateInvalid(
            "the identity provider's answer has no code; start the sign-in again",
            problem="state",
        )
    id_token = _redeem(provider, code, entry["verifier"])
    claims = verify_id_token(provider, id_token, nonce=entry["nonce"])
    return _identity(provider.settings, claims, id_token, entry["return_to"])


def _redeem(provider: OidcProvider, code: str, verifier: str) -> str:
    token_endpoint = provider.metadata()["token_endpoint"]
    try:
        with provider.session() as client:
            token = client.fetch_token(
                token_endpoint,
                code=code,
                code_verifier=verifier,
                timeout=provider.settings.timeout_seconds,
            )
    except OAuthError as exc:
        # e.g. invalid_grant: a code already used, expired, or issued for another client.
        problem = exc.error if exc.error in {"invalid_grant", "invalid_client"} else "error"
        raise TokenRejected(
            f"the identity provider refused the sign-in code ({problem}); start again",
            problem="replay" if problem == "invalid_grant" else "provider",
        ) from None
    except requests.RequestException as exc:
        raise ProviderUnavailable(
            f"the identity provider's token endpoint could not be reached ({type(exc).__name__})",
            problem="provider",
        ) from None
    id_token = token.get("id_token")
    if not isinstance(id_token, str):
        raise TokenRejected("the identity provider sent no ID token", problem="token")
    return id_token


def verify_id_token(provider: OidcProvider, id_token: str, *, nonce: str) -> dict[str, Any]:
    """The ID token's claims after OIDC Core §3.1.3.7: signature by a published asymmetric key,
    iss, aud (and azp), exp/iat/nbf within the allowed skew, and the nonce of this sign-in."""
    settings = provider.settings
    try:
        header = jws.extract_compact(id_token.encode("ascii")).protected
    except (JoseError, ValueError, UnicodeError):
        raise TokenRejected("the ID token is not a signed JWT", problem="token") from None
    algorithm = header.get("alg")
    if algorithm not in SIGNING_ALGORITHMS:
        raise TokenRejected(
            "the ID token is not signed with an asymmetric algorithm (none/HS* are refused)",
            problem="token",
        )
    kty = {"R": "RSA", "P": "RSA", "E": "EC"}.get(algorithm[0], "OKP")
    key = provider.signing_key(header.get("kid"), kty)
    try:
        claims = jwt.decode(id_token, key, algorithms=[algorithm]).claims
    except JoseError:
        # A provider that names no kid has rotated its one key: read the keys again, once.
        fresh = provider.signing_key(header.get("kid"), kty, refresh=True)
        try:
            if fresh is key:
                raise BadSignatureError()
            claims = jwt.decode(id_token, fresh, algorithms=[algorithm]).claims
        except JoseError:
            raise TokenRejected(
                "the ID token's signature does not verify", problem="token"
            ) from None
    registry = jwt.JWTClaimsRegistry(
        now=provider.now,
        leeway=settings.clock_skew_seconds,
        iss={"essential": True, "value": settings.issuer},
        sub={"essential": True},
        aud={"essential": True, "value": settings.client_id},
        exp={"essential": True},
        iat={"essential": True},
    )
    try:
        registry.validate(claims)
    except ExpiredTokenError:
        raise TokenRejected("the ID token has expired", problem="expired") from None
    except ClaimError as exc:
        problem = "audience" if exc.claim == "aud" else "token"
        raise TokenRejected(
            f"the ID token's '{exc.claim}' claim is not acceptable", problem=problem
        ) from None
    audiences = claims["aud"] if isinstance(claims["aud"], list) else [claims["aud"]]
    # OIDC Core §3.1.3.7 items 4-5: several audiences need azp, and azp must be this client.
    if (len(audiences) > 1 or "azp" in claims) and claims.get("azp") != settings.client_id:
        raise TokenRejected("the ID token was issued to another client (azp)", problem="audience")
    token_nonce = claims.get("nonce")
    if not isinstance(token_nonce, str) or not hmac.compare_digest(token_nonce, nonce):
        raise TokenRejected(
            "the ID token's nonce is not this sign-in's; start the sign-in again",
            problem="nonce",
        )
    return claims


def _identity(
    settings: ConsoleOidcSettings, claims: dict[str, Any], id_token: str, return_to: str
) -> VerifiedIdentity:
    # OIDC Core §5.7: an email the provider has not verified identifies nobody.
    email = claims.get("email") if claims.get("email_verified") is True else None
    name = claims.get("name")
    roles: frozenset[str] = frozenset()
    if settings.roles_claim:
        groups = claims.get(settings.roles_claim) or []
        groups = [groups] if isinstance(groups, str) else groups
        roles = frozenset(
            settings.group_roles[g]
            for g in groups
            if isinstance(g, str) and g in settings.group_roles
        )
    amr = claims.get("amr")
    acr = claims.get("acr")
    mfa = (isinstance(amr, list) and "mfa" in amr) or (
        isinstance(acr, str) and acr in settings.mfa_acr_values
    )
    return VerifiedIdentity(
        issuer=claims["iss"],
        subject=claims["sub"],
        email=email if isinstance(email, str) else None,
        name=name if isinstance(name, str) else None,
        roles=roles,
        return_to=return_to,
        id_token=id_token,
        mfa=mfa,
    )


def match_account(
    settings: ConsoleOidcSettings,
    identity: VerifiedIdentity,
    accounts: AccountDirectory[Account],
) -> Account:
    """The console account this identity signs in as: the one linked to (issuer, subject),
    else (``account_claim = "email"``) the one with its verified email, else — only with
    ``auto_provision`` and a role from the provider's groups — a new one. Otherwise
    IdentityRefused: the provider authenticates, it does not create accounts."""
    account = accounts.by_identity(identity.issuer, identity.subject)
    if account is not None:
        return account
    if settings.account_claim == "email":
        if identity.email is not None:
            account = accounts.by_email(identity.email)
            if account is not None:
                accounts.link(account, identity)
                return account
    if settings.auto_provision:
        if len(identity.roles) == 1 and "establishment_officer" not in identity.roles:
            return accounts.provision(identity)
        raise IdentityRefused(
            "your identity-provider account has no single console role from its groups; "
            "ask the data-protection officer for a console account",
            problem="unmapped",
        )
    raise IdentityRefused(
        "your identity-provider account has no console account; ask the data-protection "
        "officer to create one",
        problem="unmapped",
    )


def end_session_url(provider: OidcProvider, id_token_hint: str | None) -> str | None:
    """Where to send the browser after the local session has ended, so the provider's session
    ends too (RP-Initiated Logout 1.0 §2); None when the provider has no end_session_endpoint."""
    endpoint = provider.metadata().get("end_session_endpoint")
    if not isinstance(endpoint, str) or not endpoint:
        return None
    query = {"client_id": provider.settings.client_id}
    if id_token_hint:
        query["id_token_hint"] = id_token_hint
    if provider.settings.post_logout_redirect_uri:
        query["post_logout_redirect_uri"] = provider.settings.post_logout_redirect_uri
    separator = "&" if urlsplit(endpoint).query else "?"
    return f"{endpoint}{separator}{urlencode(query)}"


def oidc_routes(
    settings: ConsoleOidcSettings,
    on_identity: Callable[[Request, VerifiedIdentity], Response],
    store: LoginStore,
    *,
    provider: OidcProvider | None = None,
    on_error: Callable[[Request, OidcError], Response] | None = None,
    prefix: str = PREFIX,
) -> APIRouter:
    """``GET /console/oidc/login?next=/console/...`` (to the provider) and ``GET
    /console/oidc/callback`` (back: ``on_identity`` starts the console session, or
    ``on_error`` — by default a plain 403 with the error's one line — answers a refusal).
    Included in an app mounted at ``/console``, pass ``prefix="/oidc"``."""
    # An unreadable secret file stops `serve` at start (ConfigError), not a person's sign-in.
    settings.secret()
    provider = provider or OidcProvider(settings)
    refuse = on_error or _plain_refusal
    secure = settings.redirect_uri.startswith("https://")
    # The cookie's path as the browser sees it (behind a proxy's path prefix too).
    cookie_path = urlsplit(settings.redirect_uri).path.removesuffix("/callback")
    router = APIRouter(prefix=prefix)

    @router.get("/login")
    def login(request: Request) -> Response:
        binding = secrets.token_urlsafe(32)
        try:
            url = begin(
                provider, store, binding=binding, return_to=request.query_params.get("next", "")
            )
        except OidcError as exc:
            return refuse(request, exc)
        response = RedirectResponse(url, status_code=303)
        # Lax: the provider's redirect back is a top-level GET, which Lax cookies accompany.
        response.set_cookie(
            BINDING_COOKIE,
            binding,
            max_age=settings.login_ttl_seconds,
            path=cookie_path,
            secure=secure,
            httponly=True,
            samesite="lax",
        )
        response.headers["Cache-Control"] = "no-store"
        return response

    @router.get("/callback")
    def callback(request: Request) -> Response:
        binding = request.cookies.get(BINDING_COOKIE, "")
        try:
            identity = finish(provider, store, request.query_params, binding=binding)
            response = on_identity(request, identity)
        except OidcError as exc:
            response = refuse(request, exc)
        response.delete_cookie(BINDING_COOKIE, path=cookie_path, secure=secure, httponly=True)
        response.headers["Cache-Control"] = "no-store"
        return response

    return router


def _plain_refusal(request: Request, error: OidcError) -> Response:
    return PlainTextResponse(str(error), status_code=403)


def _pick(keys: KeySet | None, kid: str | None, kty: str) -> Any:
    if keys is None:
        return None
    candidates = [k for k in keys.keys if k.key_type == kty]
    if kid is not None:
        candidates = [k for k in candidates if k.kid == kid]
    # No kid: only a provider with exactly one key of the type can be unambiguous.
    return candidates[0] if len(candidates) == 1 else None


def _store_key(state: str) -> str:
    # The state travels in URLs and logs of proxies; the store keeps only its digest.
    return "oidc-login:" + _digest(state)


def _digest(value: str) -> str:
    return hashlib.sha256(value.encode("utf-8")).hexdigest()
