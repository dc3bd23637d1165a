"""What every registry module needs: the store, the keys, the settings, the notifier hook."""

from __future__ import annotations

import base64
import fcntl
import os
import secrets
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from adapter.config.registry import RegistrySettings
from adapter.privacy.keys import KeyRing
from adapter.registry._crypto import RegistryKeys
from adapter.registry.models import Notification
from adapter.state import StateStore

# Crockford base32 (no I, L, O, U): references are read aloud and typed from letters.
_CROCKFORD = bytes.maketrans(
    b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567", b"0123456789ABCDEFGHJKMNPQRSTVWXYZ"
)

Notifier = Callable[[Notification], None]
"""Called after commit for each new notification row (e-mail, a queue, a webhook). The rows
are the durable record; a failing hook leaves them undelivered for a later run."""


def new_ref(prefix: str) -> str:
    """A random reference such as ``RC-7K3QX9M2ABCD1234``: 80 bits, encodes nothing."""
    body = base64.b32encode(secrets.token_bytes(10)).translate(_CROCKFORD).decode("ascii")
    return f"{prefix}-{body}"


class WriteTurns:
    """Checks take turns at the store's write lock, in this process and across the processes
    serving one SQLite file.

    SQLite lets one writer in at a time and makes the others poll with growing sleeps
    (1, 2, 5 … 100 ms): under a steady stream of checks a waiting writer keeps missing the
    free lock, so throughput falls and the slowest checks wait seconds. Waiting here instead
    — a lock for the threads of one process, then ``flock`` on ``<database>.writers`` for the
    processes — wakes the next writer the moment the lock is free. On PostgreSQL the row
    locks already queue waiters, so only the threads of one process take turns (which also
    keeps them from holding every pooled connection while they wait).
    """

    def __init__(self, url: str) -> None:
        self._threads = threading.Lock()
        parsed = sa.engine.make_url(url)
        database = parsed.database or ""
        on_disk = database not in ("", ":memory:") and not database.startswith("file:")
        sqlite_file = parsed.get_backend_name() == "sqlite" and on_disk
        self._path = Path(database + ".writers") if sqlite_file else None
        self._fd: int | None = None
        self._pid = 0

    @contextmanager
    def __call__(self) -> Iterator[None]:
        with self._threads:
            if self._path is None:
                yield
                return
            fd = self._file()
            fcntl.flock(fd, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(fd, fcntl.LOCK_UN)

    def _file(self) -> int:
        # Opened per process: a forked worker must not share its parent's open file (flock
        # locks belong to the open file, which a fork shares).
        if self._fd is None or self._pid != os.getpid():
            assert self._path is not None
            self._fd = os.open(self._path, os.O_RDWR | os.O_CREAT, 0o600)
            self._pid = os.getpid()
        return self._fd


@dataclass
class Context:
    store: StateStore
    keyring: KeyRing
    keys: RegistryKeys
    settings: RegistrySettings
    low_keys: frozenset[str]
    notifier: Notifier | None = None
    # A sealed record opened on every check without a CNIC hit, so both paths do the same
    # decryption work (privacy.md §6.6 item 5: response time held roughly constant).
    dummy: tuple[bytes, bytes, bytes] = field(default=(b"", b"", b""))
    turns: WriteTurns = field(init=False)

    def __post_init__(self) -> None:
        self.turns = WriteTurns(self.store.url)

    @contextmanager
    def writing(self) -> Iterator[Connection]:
        """A write transaction, taken in turns with this registry's other writers (see
        :class:`WriteTurns`)."""
        with self.turns(), self.store.transaction() as conn:
            yield conn
