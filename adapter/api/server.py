"""Running the inbound API under uvicorn: loopback by default, TLS and mutual TLS when set.

uvicorn does not fill the ASGI TLS extension, so a verified client certificate would be
invisible to the app. :class:`ClientCertH11Protocol` is uvicorn's own h11 protocol that, once
the TLS handshake has verified the chain against ``api.tls_client_ca_file``, puts the
certificate's subject into ``scope["extensions"]["tls"]["client_cert_name"]`` (RFC 4514) for
every request on that connection. No header is ever trusted for it.

No access log (uvicorn's would print raw paths); the app logs its own line with the route
template. Binding a non-loopback address without TLS is refused: API keys would cross the
network in clear text.
"""

from __future__ import annotations

import asyncio
import signal
import ssl
import threading
from collections.abc import Callable
from typing import Any

import uvicorn
from cryptography import x509
from uvicorn.protocols.http.h11_impl import H11Protocol

from adapter.config.api import ApiSettings
from adapter.errors import ConfigError
from adapter.serving import ServedApp, bind, serve_workers

# Headers beyond this are refused by h11 before the app runs (the body has its own limit).
_MAX_HEADER_BYTES = 16 * 1024


class ClientCertH11Protocol(H11Protocol):
    """uvicorn's h11 protocol plus the ASGI TLS extension's ``client_cert_name``."""

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        subject = peer_subject(transport)
        if subject is not None:
            self.app = _with_client_cert(self.app, subject)


def peer_subject(transport: asyncio.BaseTransport) -> str | None:
    """The RFC 4514 subject of the verified client certificate on this connection, if any."""
    ssl_object = transport.get_extra_info("ssl_object")
    if ssl_object is None:
        return None
    der = ssl_object.getpeercert(binary_form=True)
    if not der:
        return None
    return x509.load_der_x509_certificate(der).subject.rfc4514_string()


def _with_client_cert(app: Any, subject: str) -> Any:
    async def with_tls(scope: Any, receive: Any, send: Any) -> None:
        if scope.get("type") == "http":
            extensions = scope.setdefault("extensions", {})
            extensions["tls"] = {
                "client_cert_name": subject,
                "client_cert_chain": [],
                "client_cert_error": None,
                "server_cert": None,
                "tls_version": None,
                "cipher_suite": None,
            }
        await app(scope, receive, send)

    return with_tls


def check_exposure(api: ApiSettings, host: str) -> None:
    """Refuse to serve API keys in clear text off this host."""
    if not api.is_loopback(host) and not api.tls:
        raise ConfigError(
            f"api.host {host} is not a loopback address and TLS is off: departments' API keys "
            "and children's data would cross the network unencrypted. Set api.tls_certfile and "
            "api.tls_keyfile (and api.tls_client_ca_file for mutual TLS), or serve on 127.0.0.1 "
            "behind a TLS-terminating proxy."
        )


def uvicorn_config(app: Any, api: ApiSettings) -> uvicorn.Config:
    """The uvicorn configuration for ``app`` under ``api`` (host and port come with the
    socket)."""
    tls: dict[str, Any] = {}
    if api.tls:
        tls = {"ssl_certfile": str(api.tls_certfile), "ssl_keyfile": str(api.tls_keyfile)}
    if api.mutual_tls:
        tls |= {"ssl_ca_certs": str(api.tls_client_ca_file), "ssl_cert_reqs": ssl.CERT_REQUIRED}
    return uvicorn.Config(
        app,
        http=ClientCertH11Protocol,
        ws="none",
        lifespan="on",
        access_log=False,
        log_config=None,  # the adapter's logging (with its redacting filter) stays in charge
        server_header=False,
        proxy_headers=False,  # never take the client address from a header
        h11_max_incomplete_event_size=_MAX_HEADER_BYTES,
        timeout_keep_alive=5,
        **tls,
    )


def base_url(api: ApiSettings, host: str, port: int) -> str:
    name = f"[{host}]" if ":" in host else host
    return f"{'https' if api.tls else 'http'}://{name}:{port}"


def serve_api(
    make_app: Callable[[], Any],
    api: ApiSettings,
    *,
    host: str,
    port: int,
    workers: int = 1,
    on_ready: Callable[[str], None] | None = None,
) -> None:
    """Serve in the foreground until SIGINT or SIGTERM; ``on_ready(base_url)`` once bound.

    ``workers`` processes accept on the one socket (:func:`adapter.serving.serve_workers`);
    each calls ``make_app`` after it is forked, so each has its own store connections."""
    check_exposure(api, host)
    sock = bind(host, port)
    url = base_url(api, host, sock.getsockname()[1])
    if on_ready is not None:
        on_ready(url)
    # uvicorn re-raises the stopping signal once shut down; no-op handlers make the command
    # end quietly with status 0 instead of dying from SIGTERM.
    previous = {}
    if threading.current_thread() is threading.main_thread():
        previous = {
            sig: signal.signal(sig, lambda *_: None) for sig in (signal.SIGINT, signal.SIGTERM)
        }
    try:
        serve_workers(lambda: uvicorn_config(make_app(), api), sock, workers, name="inbound API")
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        sock.close()


class ApiServer(ServedApp):
    """The API on a real socket in a background thread (tests, embedding)::

    with ApiServer(app, ApiSettings()) as server:
        httpx.get(server.url + "/v1/health")
    """

    def __init__(self, app: Any, api: ApiSettings, *, host: str = "127.0.0.1", port: int = 0):
        check_exposure(api, host)
        self.app = app
        self.api = api
        self.host = host
        self.port = port
        self.server_name = "inbound API"

    @property
    def url(self) -> str:
        return base_url(self.api, self.host, self.port)

    def uvicorn_config(self) -> uvicorn.Config:
        return uvicorn_config(self.app, self.api)
