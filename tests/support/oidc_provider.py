"""A real OpenID Connect provider on 127.0.0.1 for the console's tests: ``oidc-provider-mock``
(PyPI, pinned in the test extras) served by werkzeug in a thread.

It speaks real OIDC over HTTP: discovery, an HTML authorisation form a person (or a test)
submits, a token endpoint that checks the registered client's secret and redirect URI and
issues RS256 ID tokens, a JWKS, userinfo and an end-session endpoint. Clients must register
(RFC 7591), so a wrong secret or redirect URI is refused as a province's IdP would.

The fixture ``oidc_provider`` (shared through tests/conftest.py) yields an
:class:`OidcProviderMock`: ``issuer``, ``register_client(redirect_uri)`` → client_id and
client_secret, ``add_user(sub, **claims)``, ``authorize(url, sub)`` (submits the authorisation
form as a person would and returns the callback URL), ``deny(url)`` and
``rotate_signing_key()``. A browser test drives the same form: fill the field whose placeholder
is ``sub`` and press "Authorize". ``MemoryLoginStore`` is the OIDC login store for tests.
"""

from __future__ import annotations

import threading
import time
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import httpx
import pytest
import werkzeug.serving


class MemoryLoginStore:
    """The login store of ``adapter.console.oidc`` in memory, for tests only (the console
    backs it by its session table)."""

    def __init__(self) -> None:
        self.entries: dict[str, tuple[str, float]] = {}

    def put(self, key: str, value: str, ttl: int) -> None:
        self.entries[key] = (value, time.monotonic() + ttl)

    def pop(self, key: str) -> str | None:
        value, expires = self.entries.pop(key, (None, 0.0))
        return value if value is not None and time.monotonic() < expires else None


@dataclass(frozen=True)
class RegisteredClient:
    client_id: str
    client_secret: str


class OidcProviderMock:
    """The running provider and what a test does with it."""

    def __init__(self, issuer: str) -> None:
        self.issuer = issuer

    def register_client(self, redirect_uri: str) -> RegisteredClient:
        """Register a confidential client (client_secret_basic) for ``redirect_uri``."""
        response = httpx.post(
            f"{self.issuer}/oauth2/clients",
            json={
                "redirect_uris": [redirect_uri],
                "token_endpoint_auth_method": "client_secret_basic",
            },
            timeout=10,
        )
        response.raise_for_status()
        body = response.json()
        return RegisteredClient(body["client_id"], body["client_secret"])

    def add_user(self, sub: str, **claims: object) -> None:
        """Give the provider a person: the claims it puts in their ID token."""
        response = httpx.put(f"{self.issuer}/users/{quote(sub, safe='')}", json=claims, timeout=10)
        assert response.status_code == 204, response.text

    def authorize(self, authorization_url: str, sub: str) -> str:
        """Open the authorisation page and submit its form as ``sub`` (what a person does);
        the provider's redirect back to the client, i.e. the callback URL with code and state."""
        with httpx.Client(timeout=10) as browser:
            page = browser.get(authorization_url)
            assert page.status_code == 200, page.text
            assert 'name="sub"' in page.text  # the form a person fills in
            answer = browser.post(authorization_url, data={"sub": sub})
        assert answer.status_code in (302, 303), answer.text
        return answer.headers["location"]

    def deny(self, authorization_url: str) -> str:
        """Press the form's "Deny" button; the callback URL carrying ``error=access_denied``."""
        with httpx.Client(timeout=10) as browser:
            answer = browser.post(authorization_url, data={"action": "deny"})
        assert answer.status_code in (302, 303), answer.text
        return answer.headers["location"]

    def rotate_signing_key(self) -> None:
        """The provider starts signing with a new key (new kid) and publishes only that one."""
        response = httpx.post(f"{self.issuer}/_test/rotate-signing-key", timeout=10)
        assert response.status_code == 204


def _provider_app() -> Any:
    """The mock's Flask app, plus a route that rotates its signing key. Imported here, not at
    the top: the root conftest loads this module, and flask + the mock take a second to import
    that most test runs do not need."""
    with warnings.catch_warnings():
        # oidc-provider-mock 0.3 imports authlib.jose, which authlib now marks deprecated (and
        # authlib's own module puts an "always" filter first on import: import it, then ignore).
        import authlib.deprecate  # noqa: F401

        warnings.simplefilter("ignore", DeprecationWarning)
        import flask
        import oidc_provider_mock
        from authlib.jose import RSAKey

    def rotate_signing_key() -> tuple[str, int]:
        # The mock keeps its one signing key on its storage object (flask.g, set before each
        # request); replacing it is what a provider's key rotation looks like from outside.
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            flask.g.oidc_provider_mock_storage.jwk = RSAKey.generate_key(is_private=True)
        return "", 204

    app = oidc_provider_mock.app(require_client_registration=True, require_nonce=True)
    app.add_url_rule("/_test/rotate-signing-key", view_func=rotate_signing_key, methods=["POST"])
    return app


@pytest.fixture
def oidc_provider() -> Iterator[OidcProviderMock]:
    """A fresh provider on 127.0.0.1 (its own users, clients and keys), stopped afterwards."""
    server = werkzeug.serving.make_server("127.0.0.1", 0, _provider_app(), threaded=True)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05})
    thread.start()
    try:
        yield OidcProviderMock(f"http://127.0.0.1:{server.server_port}")
    finally:
        server.shutdown()
        thread.join(10)
        server.server_close()
