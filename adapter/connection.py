"""HTTP connections for the Primero client and the department connectors alike.

:func:`long_lived_session` is the session a client holds for a whole run. What a failed
connection tells an operator: the address tried (never credentials, path or query) and whether
the failure was outright (nothing listens, the name does not resolve) rather than transient.

Why sessions read the environment once: with ``trust_env`` on, ``requests`` looks for
``~/.netrc`` and reads the proxy and CA variables again on every request
(``Session.merge_environment_settings``, ``get_netrc_auth``): 11.7% of a health sync's CPU
samples (issue 15). The clients talk to origins known when they are built (Primero's URL, a
department's base URL and token URL), so the environment's answer for each is taken then:
``HTTPS_PROXY`` / ``HTTP_PROXY`` / ``ALL_PROXY`` / ``NO_PROXY`` through
:func:`environment_proxies` and ``REQUESTS_CA_BUNDLE`` / ``CURL_CA_BUNDLE`` through
:func:`environment_verify`. A change to them needs a restart, as any setting does. ``~/.netrc``
is not read: every client is given its credentials by the configuration.
"""

from __future__ import annotations

import errno
import os
import socket
from urllib.parse import urlsplit

import requests
from requests.adapters import HTTPAdapter
from requests.utils import get_environ_proxies, select_proxy
from urllib3.exceptions import NameResolutionError

#: Connections a session keeps open per origin. The most threads sharing one client: a
#: department's delivery concurrency (config: at most 64) plus the sync's 4 fetch threads on the
#: Primero client. urllib3's default of 10 would close and reopen connections above that
#: ("Connection pool is full, discarding connection"); unused slots cost nothing.
POOL_SIZE = 68


def long_lived_session(*urls: str, pool_size: int = POOL_SIZE) -> requests.Session:
    """A session for a client that lives for a run and talks to ``urls``' origins.

    ``trust_env`` is off, so nothing is looked up per request; the environment's proxies for
    ``urls`` are resolved now and kept in ``session.proxies`` (an origin not given here is
    reached directly). TLS verification is the caller's ``verify`` on each request: pass it
    through :func:`environment_verify` once, when the client is built.
    """
    session = requests.Session()
    session.trust_env = False
    session.proxies.update(environment_proxies(*urls))
    adapter = HTTPAdapter(pool_maxsize=pool_size)
    session.mount("https://", adapter)
    session.mount("http://", adapter)
    return session


def environment_proxies(*urls: str) -> dict[str, str]:
    """``scheme://host`` → proxy URL for each of ``urls`` the environment sends through a
    proxy (``HTTPS_PROXY``, ``HTTP_PROXY``, ``ALL_PROXY``, minus ``NO_PROXY``): the keys
    ``requests`` matches first (``select_proxy``), so one session can hold several origins'
    answers. Resolved by requests' own functions, so the rules are the ones it applied per
    request before."""
    found: dict[str, str] = {}
    for url in urls:
        parts = urlsplit(url)
        proxy = select_proxy(url, get_environ_proxies(url))
        if proxy and parts.hostname:
            found[f"{parts.scheme}://{parts.hostname}"] = proxy
    return found


def environment_verify(verify: bool | str) -> bool | str:
    """What to verify TLS with: a configured CA bundle (a path) or ``False`` as given;
    ``True`` becomes ``REQUESTS_CA_BUNDLE`` or ``CURL_CA_BUNDLE`` when the environment sets one
    (what ``requests`` did per request with ``trust_env``), else stays ``True``. Never turns
    verification off."""
    if verify is True:
        return os.environ.get("REQUESTS_CA_BUNDLE") or os.environ.get("CURL_CA_BUNDLE") or True
    return verify


def origin_of(url: str) -> str:
    """``scheme://host[:port]`` of a URL, without credentials, path or query: safe to print."""
    parts = urlsplit(url)
    host = parts.hostname or "?"
    if ":" in host:  # an IPv6 literal
        host = f"[{host}]"
    return f"{parts.scheme}://{host}" + (f":{parts.port}" if parts.port else "")


def outright_failure(exc: BaseException) -> str | None:
    """Why a connection could not even be opened, when no retry within seconds will help
    (nothing listens on the port, the host name does not resolve); None for the transient
    failures (timeouts, resets, answers broken off) that retries are for."""
    for item in exception_chain(exc):
        if isinstance(item, ConnectionRefusedError) or (
            isinstance(item, OSError) and item.errno == errno.ECONNREFUSED
        ):
            return "connection refused (nothing listens on that port)"
        if isinstance(item, NameResolutionError | socket.gaierror):
            return "the host name does not resolve"
    return None


def exception_chain(exc: BaseException) -> list[object]:
    """``exc`` and everything it wraps: requests and urllib3 nest the socket error in args,
    ``reason``, ``__cause__`` and ``__context__``."""
    seen: set[int] = set()
    found: list[object] = []
    stack: list[object] = [exc]
    while stack:
        item = stack.pop()
        if item is None or id(item) in seen:
            continue
        seen.add(id(item))
        found.append(item)
        if isinstance(item, BaseException):
            stack.extend(item.args)
            stack.extend((getattr(item, "reason", None), item.__cause__, item.__context__))
    return found
