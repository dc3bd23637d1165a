"""The plumbing every endpoint group shares: authenticate, send, map errors, unwrap `data`."""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping
from typing import Any
from urllib.parse import quote

import requests

from adapter.errors import PrimeroProtocolError
from adapter.primero._auth import Authenticator, SessionAuth
from adapter.primero._errors import error_from_response, malformed
from adapter.primero._transport import Replay, Transport, route_of

log = logging.getLogger("adapter.primero")

UUID = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")
CASES = "/api/v2/cases"


def record_id(value: object, what: str = "case_id") -> str:
    """A record or transition UUID, checked before it goes into a URL, a log line or an error.

    Primero's URLs take the record's `id` UUID only (primero-api.md §4). Refusing anything else
    keeps display ids, names or typos out of the logs.
    """
    if not isinstance(value, str) or not UUID.match(value):
        raise ValueError(
            f"{what} must be Primero's record UUID (the `id` field), not a display id, "
            "case_id or name"
        )
    return value.lower()


def segment(value: object, what: str) -> str:
    """Any other path segment (form, lookup, webhook, flag, module ids), URL-encoded."""
    if isinstance(value, bool) or not isinstance(value, str | int) or str(value) == "":
        raise ValueError(f"{what} must be a non-empty string or integer id")
    return quote(str(value), safe="")


class Requester:
    """Base of the endpoint groups: holds the transport and the authenticator."""

    _transport: Transport
    _auth: Authenticator

    def _call(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, Any] | None = None,
        json: Any = None,
        replay: Replay = Replay.SAFE,
        accept: frozenset[int] = frozenset(),
    ) -> requests.Response:
        """Send with authentication; return a 2xx (or an `accept`ed) response, else raise."""
        self._auth.ensure(self._transport, method, path)
        response = self._send(method, path, params, json, replay)
        if self._auth_rejected(response) and self._auth.recover(
            self._transport, response, method, path
        ):
            response.close()
            response = self._send(method, path, params, json, replay)
        status = response.status_code
        if status == 401:
            # Never retried twice: every refused attempt brings the account closer to the
            # six-failure lock-out (primero-api.md §2).
            raise self._auth.fail(response, method, path)
        if 200 <= status < 300 or status in accept:
            return response
        raise error_from_response(response, method, path)

    def _send(
        self,
        method: str,
        path: str,
        params: Mapping[str, Any] | None,
        json: Any,
        replay: Replay,
    ) -> requests.Response:
        return self._transport.send(
            method,
            path,
            params=params,
            json=json,
            headers=self._auth.headers(self._transport, method),
            replay=replay,
        )

    def _auth_rejected(self, response: requests.Response) -> bool:
        if response.status_code == 401:
            return True
        return isinstance(self._auth, SessionAuth) and self._auth.is_csrf_failure(response)

    def _json(self, method: str, path: str, response: requests.Response) -> Any:
        """The decoded body (None when empty); PrimeroProtocolError when it is not JSON."""
        if response.status_code == 204 or not response.content:
            return None
        try:
            return response.json()
        except ValueError:
            raise malformed(method, path, response.status_code, "is not valid JSON") from None

    def _data(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, Any] | None = None,
        json: Any = None,
        replay: Replay = Replay.SAFE,
    ) -> Any:
        """Call and unwrap Primero's `{"data": ...}` envelope."""
        if method == "GET":
            return self._get_envelope(path, params)[0]
        response = self._call(method, path, params=params, json=json, replay=replay)
        return self._envelope(method, path, response)[0]

    def _get_envelope(
        self, path: str, params: Mapping[str, Any] | None = None
    ) -> tuple[Any, dict[str, Any]]:
        """GET and unwrap; a JSON answer cut or garbled in transit is fetched once more
        (tests/faults: one truncated page must not cost a whole run). A body that is not
        JSON at all (a login page: a wrong primero.url) fails at once."""
        response = self._call("GET", path, params=params)
        try:
            return self._envelope("GET", path, response)
        except PrimeroProtocolError:
            media = response.headers.get("Content-Type", "").split(";")[0].strip().lower()
            if not media.endswith("json"):
                raise
        log.warning(
            "GET %s: Primero's JSON answer did not parse; asking once more",
            route_of(path),
        )
        return self._envelope("GET", path, self._call("GET", path, params=params))

    def _envelope(
        self, method: str, path: str, response: requests.Response
    ) -> tuple[Any, dict[str, Any]]:
        body = self._json(method, path, response)
        if not isinstance(body, dict) or "data" not in body:
            raise malformed(method, path, response.status_code, "has no `data` member")
        metadata = body.get("metadata")
        return body["data"], metadata if isinstance(metadata, dict) else {}

    def _dict(self, method: str, path: str, value: Any) -> dict[str, Any]:
        if not isinstance(value, dict):
            raise malformed(method, path, 200, "has a `data` that is not an object")
        return value

    def _list(self, method: str, path: str, value: Any) -> list[dict[str, Any]]:
        if not isinstance(value, list) or not all(isinstance(item, dict) for item in value):
            raise malformed(method, path, 200, "has a `data` that is not a list of objects")
        return value

    def _collect(
        self, path: str, params: Mapping[str, Any] | None = None, per: int = 1000
    ) -> list[dict[str, Any]]:
        """Every item of a small paged admin list (lookups, agencies, ...)."""
        items: list[dict[str, Any]] = []
        previous: list[dict[str, Any]] | None = None
        page = 1
        while True:
            data, metadata = self._get_envelope(path, {**(params or {}), "page": page, "per": per})
            batch = self._list("GET", path, data)
            items.extend(batch)
            total = metadata.get("total")
            applied = metadata.get("per", per)
            applied = applied if isinstance(applied, int) and applied > 0 else per
            complete = isinstance(total, int) and len(items) >= total
            if not batch or len(batch) < applied or complete:
                return items
            if batch == previous:  # a server ignoring `page` must not make us loop for ever
                raise malformed("GET", path, 200, "repeats the same page: `page` is ignored")
            previous = batch
            page += 1
