"""The generic REST/JSON connector: any department whose mapping file says where things go.

Provincial IT boards build bespoke JSON APIs behind an API key or OAuth2 (departments.md §6),
and no Pakistani police, NADRA or court system publishes one (§3–§5, §7), so the endpoints,
bodies and status vocabulary live in the department's mapping file (``adapter.mappings.mapped``)
and this connector only moves them:

- ``deliver``: the document's JSON to the endpoint of its kind and route, with the outbox's
  idempotency key in the header the mapping names (``Idempotency-Key`` by default) on every
  write, so a re-send after a crash is a replay, never a second record;
- ``status_updates``: polls the mapping's changes endpoint from a watermark and maps each item
  to a ``StatusUpdate`` (FIR links, court orders, registration results …);
- authentication: none, bearer, basic, API key (header), or OAuth2 client credentials with the
  token cached until it expires and fetched again once on a 401.

Failures follow ``adapter.departments._http``: no answer and 5xx → ``Retryable``; 429, and 503
with Retry-After → ``RateLimited``; other 4xx → ``Rejected`` (``Fatal``). Messages name the
method, the path *template* and the status; never a body, a query or a referral key.
"""

from __future__ import annotations

import base64
import json
import logging
import threading
import time
from collections.abc import Iterator, Mapping
from typing import Any, Protocol
from urllib.parse import quote

import requests

from adapter.clock import utcnow
from adapter.config import DepartmentSettings
from adapter.connection import environment_verify, long_lived_session
from adapter.departments._http import json_or_none, raise_for_status, send
from adapter.departments.base import Delivery
from adapter.errors import ConfigError, Fatal, Retryable
from adapter.mappings.mapped import MappedMapping
from adapter.mappings.mapped_spec import DEFAULT_ROUTE
from adapter.mappings.mapped_template import dig
from adapter.mappings.vocabulary import StatusUpdate

log = logging.getLogger("adapter.departments.rest")

JSON = "application/json"
# A token is renewed this long before the expiry the server announced, so a request never
# leaves with a token that dies on the way.
TOKEN_MARGIN_SECONDS = 30.0
DEFAULT_TOKEN_LIFETIME = 300.0


class RestAuth(Protocol):
    """Credentials for one department API."""

    def headers(self) -> dict[str, str]:
        """The headers that authenticate a request (may fetch a token)."""
        ...

    def renew(self) -> bool:
        """Forget a cached credential after a 401; True when trying again may help."""
        ...


class NoAuth:
    """No credentials (a department behind a VPN or OpenHIM channel that authenticates)."""

    def headers(self) -> dict[str, str]:
        return {}

    def renew(self) -> bool:
        return False


class HeaderAuth:
    """A fixed header: ``Authorization: Bearer <token>``, ``Basic …`` or an API key header."""

    def __init__(self, name: str, value: str) -> None:
        self._header = {name: value}

    def __repr__(self) -> str:  # never show the secret, even in a traceback
        return f"HeaderAuth({next(iter(self._header))}=***)"

    @classmethod
    def basic(cls, username: str, password: str) -> HeaderAuth:
        return cls("Authorization", _basic(username, password))

    def headers(self) -> dict[str, str]:
        return dict(self._header)

    def renew(self) -> bool:
        return False


class OAuth2ClientCredentials:
    """OAuth 2.0 client credentials (RFC 6749 §4.4): a token from ``token_url``, cached until
    shortly before it expires, renewed once when the API answers 401 (it may have been revoked
    early). The client authenticates with HTTP Basic, as §2.3.1 asks servers to support."""

    def __init__(
        self,
        token_url: str,
        client_id: str,
        client_secret: str,
        *,
        scope: str | None = None,
        session: requests.Session,
        timeout: float | tuple[float, float] = (10.0, 30.0),
        verify: bool | str = True,
        clock: Any = time.monotonic,
    ) -> None:
        self.token_url = token_url
        self.client_id = client_id
        self._secret = client_secret
        self.scope = scope
        self.session = session
        self.timeout = timeout
        self.verify = verify
        self.clock = clock
        self._token: str | None = None
        self._expires = 0.0
        self._lock = threading.Lock()
        self.fetches = 0  # tokens fetched so far (tests and metrics)

    def __repr__(self) -> str:
        return f"OAuth2ClientCredentials(client_id={self.client_id!r}, secret=***)"

    def headers(self) -> dict[str, str]:
        with self._lock:
            if self._token is None or self.clock() >= self._expires:
                self._fetch()
            assert self._token is not None
            return {"Authorization": f"Bearer {self._token}"}

    def renew(self) -> bool:
        with self._lock:
            self._token = None
        return True

    def _fetch(self) -> None:
        form = {"grant_type": "client_credentials"}
        if self.scope:
            form["scope"] = self.scope
        basic = _basic(self.client_id, self._secret)
        response = send(
            self.session,
            "POST",
            self.token_url,
            resource="token endpoint",
            timeout=self.timeout,
            headers={
                "Authorization": basic,
                "Content-Type": "application/x-www-form-urlencoded",
                "Accept": JSON,
            },
            data="&".join(f"{k}={quote(v, safe='')}" for k, v in form.items()).encode(),
            verify=self.verify,
        )
        raise_for_status(response, method="POST", resource="token endpoint")
        answer = json_or_none(response)
        token = answer.get("access_token") if isinstance(answer, dict) else None
        if not isinstance(token, str) or not token:
            raise Fatal("POST token endpoint answered without an access_token: check token_url")
        lifetime = answer.get("expires_in") if isinstance(answer, dict) else None
        seconds = float(lifetime) if isinstance(lifetime, int | float) else DEFAULT_TOKEN_LIFETIME
        self._token = token
        self._expires = self.clock() + max(0.0, seconds - TOKEN_MARGIN_SECONDS)
        self.fetches += 1


class RestConnector:
    """A department's REST/JSON API, driven by its mapping file."""

    def __init__(
        self,
        department: str,
        base_url: str,
        mapping: MappedMapping,
        *,
        auth: RestAuth | None = None,
        timeout: float | tuple[float, float] = (10.0, 30.0),
        verify: bool | str = True,
        session: requests.Session | None = None,
    ) -> None:
        self._department = department
        self.base_url = base_url.rstrip("/")
        self.mapping = mapping
        self.session = session or long_lived_session(self.base_url)
        self.auth: RestAuth = auth or NoAuth()
        self.timeout = timeout
        self.verify = environment_verify(verify)

    @classmethod
    def from_settings(
        cls, department: str, settings: DepartmentSettings, mapping: MappedMapping
    ) -> RestConnector:
        """A connector from ``[departments.<department>]``; ConfigError names a missing key."""
        if settings.base_url is None:
            raise ConfigError(f"departments.{department}: the rest connector needs base_url.")
        # The API and, with OAuth 2.0, its token endpoint: the two origins this session calls.
        session = long_lived_session(
            *(url for url in (settings.base_url, settings.token_url) if url),
            pool_size=settings.concurrency + 1,
        )
        timeout = (min(10.0, settings.timeout_seconds), settings.timeout_seconds)
        secret = settings.secret(department)
        where = f"departments.{department}"
        auth: RestAuth
        if settings.auth == "none":
            auth = NoAuth()
        elif secret is None:
            what = {"basic": "password", "api_key": "api_key", "oauth2": "client_secret"}
            key = what.get(settings.auth, "token")
            raise ConfigError(
                f"{where}.auth = '{settings.auth}' needs {where}.{key} (or {key}_file)."
            )
        elif settings.auth == "bearer":
            auth = HeaderAuth("Authorization", f"Bearer {secret}")
        elif settings.auth == "basic":
            if not settings.username:
                raise ConfigError(f"{where}.auth = 'basic' needs {where}.username.")
            auth = HeaderAuth.basic(settings.username, secret)
        elif settings.auth == "api_key":
            auth = HeaderAuth(settings.api_key_header, secret)
        else:
            assert settings.token_url is not None and settings.client_id is not None
            auth = OAuth2ClientCredentials(
                settings.token_url,
                settings.client_id,
                secret,
                scope=settings.scope,
                session=session,
                timeout=timeout,
                verify=environment_verify(settings.verify_tls),
            )
        return cls(
            department,
            settings.base_url,
            mapping,
            auth=auth,
            timeout=timeout,
            verify=settings.verify_tls,
            session=session,
        )

    @property
    def department(self) -> str:
        return self._department

    def deliver(self, kind: str, document: Mapping[str, Any], *, idempotency_key: str) -> Delivery:
        """Send one mapped document (``{"referral_key", "route", "json"}``) to its endpoint."""
        if not idempotency_key:
            # Without it a re-send after a crash could become a second record (§6: idempotent).
            raise Fatal(f"{self.department}: a {kind} needs an idempotency key; none was given")
        endpoint = self.mapping.endpoint(kind, str(document.get("route") or DEFAULT_ROUTE))
        key = str(document["referral_key"])
        path = endpoint.path.replace("{referral_key}", quote(key, safe=""))
        headers = {
            **self.mapping.spec.http.headers,
            "Content-Type": JSON,
            "Accept": JSON,
            self.mapping.spec.http.idempotency_header: idempotency_key,
        }
        body = json.dumps(document.get("json") or {}, separators=(",", ":")).encode()
        response = self._call(
            endpoint.method, path, resource=endpoint.path, headers=headers, data=body
        )
        answer = json_or_none(response)
        reference = endpoint.reference.render(answer) if endpoint.reference and answer else None
        return Delivery(reference)

    def check(self) -> str:
        """Reach the department's API with an authenticated, harmless GET: the mapping's
        ``[http] health_path`` if it names one, else one item of the status feed from now on
        (an OAuth2 token is fetched on the way)."""
        http = self.mapping.spec.http
        if http.health_path:
            path, params = http.health_path, None
        elif self.mapping.status is not None:
            spec = self.mapping.status
            path = spec.path
            params = {spec.since_param: utcnow().isoformat()}
            if spec.page_size_param:
                params[spec.page_size_param] = "1"
        else:
            raise ConfigError(
                f"departments.{self.department}: the mapping has neither [http] health_path nor "
                "[status]: nothing harmless to ask; add health_path"
            )
        response = self._call("GET", path, resource=path, headers={"Accept": JSON}, params=params)
        return f"GET {self.base_url}{path} answered {response.status_code} (authenticated)"

    def status_updates(self, since: str | None) -> Iterator[tuple[StatusUpdate, str]]:
        """The department's changes after ``since``, page by page, each with its watermark.

        The changes endpoint answers items with a watermark at or after ``since`` (re-reading
        the boundary is harmless: the engine skips what it already applied)."""
        spec = self.mapping.status
        if spec is None:
            return
        cursor = since
        while True:
            params: dict[str, str] = {}
            if cursor:
                params[spec.since_param] = cursor
            if spec.page_size_param:
                params[spec.page_size_param] = str(spec.page_size)
            response = self._call(
                "GET", spec.path, resource=spec.path, headers={"Accept": JSON}, params=params
            )
            answer = json_or_none(response)
            if answer is None:
                # Cut or garbled in transit (tests/faults): not a mapping problem.
                raise Retryable(f"GET {spec.path}: the answer is not valid JSON; will retry")
            items = dig(answer, spec.items) if spec.items else answer
            if not isinstance(items, list):
                raise Retryable(
                    f"GET {spec.path}: the answer has no list at '{spec.items or '(top)'}'; "
                    "check [status] items in the mapping file"
                )
            last = cursor
            skipped = 0
            for item in items:
                if not isinstance(item, Mapping):
                    skipped += 1
                    continue
                update, watermark = self.mapping.status_update(item)
                last = watermark or last
                if update is None:
                    skipped += 1
                    continue
                yield update, last or ""
            if skipped:
                log.info("%s: %s status items were not ours or unmapped", self.department, skipped)
            full_page = spec.page_size_param is not None and len(items) >= spec.page_size
            if not full_page or last == cursor:
                return
            cursor = last

    def close(self) -> None:
        self.session.close()

    def _call(
        self,
        method: str,
        path: str,
        *,
        resource: str,
        headers: Mapping[str, str],
        params: Mapping[str, str] | None = None,
        data: bytes | None = None,
    ) -> requests.Response:
        url = self.base_url + path
        renewed = False
        while True:
            response = send(
                self.session,
                method,
                url,
                resource=resource,
                timeout=self.timeout,
                headers={**headers, **self.auth.headers()},
                params=params,
                data=data,
                verify=self.verify,
            )
            # One renewal only: a second 401 means the credentials themselves are wrong.
            if response.status_code == 401 and not renewed and self.auth.renew():
                renewed = True
                continue
            raise_for_status(response, method=method, resource=resource)
            return response


def _basic(username: str, password: str) -> str:
    """An HTTP Basic ``Authorization`` value (RFC 7617; UTF-8)."""
    return "Basic " + base64.b64encode(f"{username}:{password}".encode()).decode("ascii")
