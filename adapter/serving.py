"""Serving an ASGI app with uvicorn on a socket we bind ourselves.

Binding first (port 0 → a free port) lets the caller know the URL before the server runs; the
background form is what the simulators, the tests and an embedding application use.
:func:`serve_workers` serves one socket from several forked processes (one GIL each).
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import signal
import socket
import threading
import time
from collections.abc import Callable
from multiprocessing.process import BaseProcess
from types import TracebackType
from typing import Self

import uvicorn

from adapter.errors import AdapterError

log = logging.getLogger("adapter.serving")


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


# A worker that stops this soon after it started cannot serve (a bad setting, a store that
# refuses it): starting it again would only loop, so the whole server stops instead.
_STARTUP_SECONDS = 5.0


class WorkerFailed(AdapterError):
    """A worker process stopped within seconds of starting."""


def serve_workers(
    make_config: Callable[[], uvicorn.Config],
    sock: socket.socket,
    workers: int,
    *,
    name: str = "server",
) -> None:
    """Serve ``sock`` from ``workers`` processes until SIGINT or SIGTERM.

    One worker: uvicorn in this process. More: each is forked from this one and calls
    ``make_config`` itself, so it builds its own app with its own database connections (the
    caller must hold none open across the fork); all of them accept on the one listening
    socket, and the kernel hands each connection to one of them. A worker that dies later is
    started again; one that dies at start stops the server (:class:`WorkerFailed`). SIGTERM
    or SIGINT here stops every worker gracefully (uvicorn finishes the requests in flight).
    """
    if workers <= 1:
        uvicorn.Server(make_config()).run(sockets=[sock])
        return
    context = multiprocessing.get_context("fork")
    stopping = threading.Event()
    previous = {
        sig: signal.signal(sig, lambda *_: stopping.set())
        for sig in (signal.SIGINT, signal.SIGTERM)
    }
    running: dict[int, tuple[BaseProcess, float]] = {}

    def start(slot: int) -> None:
        process = context.Process(
            target=_worker, args=(make_config, sock), name=f"{name} worker {slot}", daemon=False
        )
        process.start()
        running[slot] = (process, time.monotonic())

    try:
        for slot in range(workers):
            start(slot)
        while not stopping.wait(0.2):
            for slot, (process, started) in list(running.items()):
                if process.is_alive() or stopping.is_set():
                    continue
                if time.monotonic() - started < _STARTUP_SECONDS:
                    raise WorkerFailed(
                        f"{name} worker {slot} stopped at start (exit status "
                        f"{process.exitcode}); see the log above."
                    )
                log.warning(
                    "%s worker %d stopped (exit status %s); starting it again",
                    name,
                    slot,
                    process.exitcode,
                )
                start(slot)
    finally:
        _stop_all([process for process, _ in running.values()])
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def _worker(make_config: Callable[[], uvicorn.Config], sock: socket.socket) -> None:
    # uvicorn installs its own SIGINT/SIGTERM handlers in Server.run; until then the
    # defaults (not the parent's) apply.
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    uvicorn.Server(make_config()).run(sockets=[sock])


def _stop_all(processes: list[BaseProcess]) -> None:
    for process in processes:
        if process.is_alive() and process.pid is not None:
            os.kill(process.pid, signal.SIGTERM)
    deadline = time.monotonic() + 30
    for process in processes:
        process.join(timeout=max(0.0, deadline - time.monotonic()))
        if process.is_alive():
            process.kill()
            process.join()
