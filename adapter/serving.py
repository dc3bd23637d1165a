"""Serving an ASGI app with uvicorn on a socket we bind ourselves.

Binding first (port 0 → a free port) lets the caller know the URL before the server runs; the
background form is what the simulators, the tests and an embedding application use.
"""

from __future__ import annotations

import socket
import threading
import time
from types import TracebackType
from typing import Self

import uvicorn


def bind(host: str, port: int) -> socket.socket:
    """A listening socket (port 0: a free one)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    # IPPROTO_TCP, not 0: asyncio sets TCP_NODELAY only on sockets that say they are TCP,
    # and without it every keep-alive request waits ~40 ms for Nagle's algorithm.
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
        sock.listen(128)
    except OSError:
        sock.close()  # the port is taken: no socket left behind
        raise
    sock.set_inheritable(True)
    return sock


class BackgroundServer:
    """uvicorn in a daemon thread on an already bound socket; ``start`` returns once it
    accepts connections, ``stop`` shuts it down and closes the socket."""

    def __init__(self, config: uvicorn.Config, sock: socket.socket, name: str) -> None:
        self.server = uvicorn.Server(config)
        self.socket = sock
        self.name = name
        self.thread = threading.Thread(
            target=self.server.run, kwargs={"sockets": [sock]}, name=name, daemon=True
        )

    def start(self, timeout: float = 10.0) -> None:
        self.thread.start()
        deadline = time.monotonic() + timeout
        while not self.server.started:
            if not self.thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError(f"{self.name} did not start")
            time.sleep(0.01)

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)
        self.socket.close()


class ServedApp:
    """An ASGI app on a socket of its own, served by uvicorn in a background thread: the
    simulators, the fault proxy and the embedded inbound API share this life cycle.

    Subclasses set ``host``, ``port`` (0: a free one) and ``server_name`` and implement
    :meth:`uvicorn_config`; :meth:`on_bound` runs once the port is known, before serving.
    """

    host: str
    port: int
    server_name: str = "server"
    _serving: BackgroundServer | None = None

    def uvicorn_config(self) -> uvicorn.Config:
        raise NotImplementedError

    def on_bound(self) -> None:
        """Called after binding (``self.port`` is final) and before the server starts."""

    def start(self) -> Self:
        """Serve in a background thread; returns once the server accepts connections."""
        sock = bind(self.host, self.port)
        self.port = sock.getsockname()[1]
        self.on_bound()
        self._serving = BackgroundServer(self.uvicorn_config(), sock, self.server_name)
        self._serving.start()
        return self

    def stop(self) -> None:
        """Stop the server and close its socket."""
        if self._serving is not None:
            self._serving.stop()
        self._serving = None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
