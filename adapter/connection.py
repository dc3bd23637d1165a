"""What a failed HTTP connection tells an operator, for the Primero client and the department
connectors alike: the address tried (never credentials, path or query) and whether the failure
was outright (nothing listens, the name does not resolve) rather than transient."""

from __future__ import annotations

import errno
import socket
from urllib.parse import urlsplit

from urllib3.exceptions import NameResolutionError


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
