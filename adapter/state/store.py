"""StateStore: the adapter's durable memory, on SQLite or PostgreSQL through one code path."""

from __future__ import annotations

import logging
import os
import socket
import threading
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import SQLAlchemyError

from adapter.clock import utcnow
from adapter.errors import StateError, StateStoreUnavailable
from adapter.state import schema
from adapter.state.migrations import MIGRATIONS, Migration

log = logging.getLogger("adapter.state")


@dataclass(frozen=True)
class Lease:
    """Proof that this process may run ``name`` until ``expires_at``."""

    name: str
    owner: str
    token: int
    expires_at: datetime


@dataclass(frozen=True)
class RunRecord:
    id: int
    job: str
    owner: str
    started_at: datetime
    finished_at: datetime | None
    status: str
    stats: dict[str, Any]
    error_class: str | None
    error_message: str | None


class _Unwritten:
    """What runs of this process could not write because the store went away: how each run
    ended, and the leases they could not release. Kept per store URL for the process's life
    and written by :meth:`StateStore.settle_unwritten` once the store answers again, so an
    outage's runs read ``interrupted`` (their process lived) instead of being found later as
    a dead holder's ``abandoned / ProcessDied``. Lost if the process dies meanwhile: then
    the takeover's ``ProcessDied`` is what happened."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._runs: dict[tuple[str, int], dict[str, Any]] = {}
        self._leases: dict[tuple[str, str, int], Lease] = {}

    def add_run(self, url: str, run_id: int, values: dict[str, Any]) -> None:
        with self._lock:
            self._runs[(url, run_id)] = values

    def add_lease(self, url: str, lease: Lease) -> None:
        with self._lock:
            self._leases[(url, lease.name, lease.token)] = lease

    def pending(self, url: str) -> bool:
        with self._lock:
            return any(key[0] == url for key in (*self._runs, *self._leases))

    def take(self, url: str) -> tuple[dict[int, dict[str, Any]], list[Lease]]:
        with self._lock:
            runs = {k[1]: self._runs.pop(k) for k in [k for k in self._runs if k[0] == url]}
            leases = [self._leases.pop(k) for k in [k for k in self._leases if k[0] == url]]
        return runs, leases

    def put_back(self, url: str, runs: dict[int, dict[str, Any]], leases: list[Lease]) -> None:
        for run_id, values in runs.items():
            self.add_run(url, run_id, values)
        for lease in leases:
            self.add_lease(url, lease)


_unwritten = _Unwritten()


def process_owner() -> str:
    """A name for this process, unique across hosts and restarts:
    ``host:pid:start-time:nonce``. The start time tells a restarted process that got the
    same PID (PID 1 in a container) from the one that died."""
    pid = os.getpid()
    return f"{socket.gethostname()}:{pid}:{_start_time(pid) or 0}:{uuid.uuid4().hex[:8]}"


def _is_dead_local(owner: str) -> bool:
    """True if ``owner`` names a process of this host that no longer runs."""
    parts = owner.split(":")
    if len(parts) < 3 or parts[0] != socket.gethostname() or not parts[1].isdigit():
        return False
    pid = int(parts[1])
    recorded_start = parts[2] if len(parts) >= 4 else None
    if pid == os.getpid() and recorded_start is None:
        return False
    current = _stat(pid)
    if current is None:
        return _gone(pid)
    state, start = current
    if state == "Z":
        return True  # killed and not yet reaped: it holds nothing any more
    # Same PID, another incarnation: the holder died and its PID was reused.
    return recorded_start is not None and recorded_start != "0" and recorded_start != start


def _gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False  # alive, someone else's
    return False


def _stat(pid: int) -> tuple[str, str] | None:
    """(state, start time in clock ticks since boot) from /proc, or None off Linux."""
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii") as stat:
            fields = stat.read().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None
    # After the ")" field 3 (state) is index 0 and field 22 (starttime) is index 19.
    return fields[0], fields[19]


def _start_time(pid: int) -> str | None:
    found = _stat(pid)
    return found[1] if found else None


def normalise_url(url: str) -> str:
    """Accept the URLs an IT officer would write: ``postgresql://`` means psycopg 3."""
    if url.startswith(("postgres://", "postgresql://")):
        return "postgresql+psycopg://" + url.split("://", 1)[1]
    return url


def describe_store(url: str) -> str:
    """The store as messages and log lines name it: its backend and database, never the user,
    password, host or port (a log line travels further than the configuration does)."""
    try:
        parsed = sa.engine.make_url(url)
    except sa.exc.ArgumentError:
        return "the state store (state.url)"
    if parsed.get_backend_name() == "sqlite":
        return f"the SQLite state store {parsed.database or ':memory:'}"
    return f"the {parsed.get_backend_name()} state store (database {parsed.database}, state.url)"


# SQLSTATEs that mean "the server is not there", not "the statement failed": class 08
# (connection exception), 57P01-03 (administrator shutdown, crash shutdown, cannot connect
# now: starting up or shutting down). PostgreSQL docs, Appendix A.
_OUTAGE_SQLSTATES = ("08", "57P01", "57P02", "57P03")
# SQLite's equivalents: the file cannot be opened (a lost mount) or read/written (disk).
_OUTAGE_SQLITE = ("SQLITE_CANTOPEN", "SQLITE_IOERR")
# Built once (SQLAlchemy memoises a statement's cache key on the object): the status poll sets a
# cursor per Task it reads. The SET columns are the parameters' keys.
_CURSOR_UPDATE = schema.cursors.update().where(
    schema.cursors.c.job == sa.bindparam("_job"), schema.cursors.c.stream == sa.bindparam("_stream")
)
_CURSOR_INSERT = schema.cursors.insert()


def is_outage(exc: BaseException) -> bool:
    """True if ``exc`` says the state store cannot be reached (down, restarting, cut off),
    rather than that a statement failed."""
    if not isinstance(exc, sa.exc.DBAPIError):
        return False
    if exc.connection_invalidated:
        return True
    if not isinstance(exc, sa.exc.OperationalError | sa.exc.InterfaceError):
        return False
    sqlstate = getattr(exc.orig, "sqlstate", None)
    if sqlstate:
        return str(sqlstate).startswith(_OUTAGE_SQLSTATES)
    sqlite_error = getattr(exc.orig, "sqlite_errorname", None)
    if sqlite_error is not None:
        return str(sqlite_error).startswith(_OUTAGE_SQLITE)
    # psycopg gives no SQLSTATE to a connection attempt that failed or one that dropped.
    return True


def create_state_engine(url: str) -> Engine:
    """An Engine for ``url``; SQLite gets WAL, a busy timeout and explicit transactions."""
    url = normalise_url(url)
    try:
        parsed = sa.engine.make_url(url)
    except sa.exc.ArgumentError:
        raise StateError(
            "state.url is not a database URL. Use sqlite:///path/to/state.sqlite3 or "
            "postgresql://user@host/dbname."
        ) from None
    if parsed.get_backend_name() == "sqlite":
        database = parsed.database or ""
        if database and database != ":memory:" and not database.startswith("file:"):
            create_private_file(Path(database).expanduser())
        # hide_parameters: bound values (case ids, override reasons) never reach a log line
        # or the text of a chained exception.
        engine = sa.create_engine(url, connect_args={"timeout": 30}, hide_parameters=True)
        _configure_sqlite(engine)
        return engine
    if parsed.get_backend_name() == "postgresql":
        # TCP keepalives: a connection to a vanished server (or across a dead link) fails
        # within about a minute instead of hanging a run, and the advisory lock it held is
        # then free for another instance.
        # connect_timeout: a store behind a cut network is an outage within seconds, not a
        # connection attempt that hangs a run (or the heartbeat) for the TCP timeout.
        return sa.create_engine(
            url,
            pool_pre_ping=True,
            hide_parameters=True,
            connect_args={
                "connect_timeout": 10,
                "keepalives": 1,
                "keepalives_idle": 30,
                "keepalives_interval": 10,
                "keepalives_count": 3,
            },
        )
    raise StateError(
        f"state.url uses '{parsed.get_backend_name()}'; only sqlite and postgresql are supported."
    )


def create_private_file(path: Path) -> None:
    """Create ``path`` empty with mode 0600 (and its missing folders 0700) unless it exists.

    The store holds case codes, wrapped keys and the audit log: readable by the service's user
    only, whatever the umask of whoever ran the first command. SQLite gives its -wal and -shm
    files the database file's mode, so they are 0600 too. An empty file is an empty database.
    """
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return
    except OSError as exc:
        raise StateError(
            f"state.url: cannot create the SQLite file {path} ({exc.strerror}). Point state.url "
            "at a folder the service's user may write (e.g. /var/lib/cpims-adapter)."
        ) from None
    os.close(fd)


def _configure_sqlite(engine: Engine) -> None:
    @sa.event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: Any, _record: Any) -> None:
        # Let SQLAlchemy, not pysqlite, decide when transactions begin (SQLAlchemy's
        # documented recipe), so DDL and DML commit together in a migration.
        dbapi_conn.isolation_level = None
        cur = dbapi_conn.cursor()
        # WAL lets readers (status, CLI) run beside the sync; NORMAL may lose the last commit
        # on power loss, which at-least-once delivery turns into a harmless re-send.
        cur.execute("PRAGMA journal_mode=WAL")
        cur.execute("PRAGMA synchronous=NORMAL")
        cur.execute("PRAGMA busy_timeout=30000")
        cur.execute("PRAGMA foreign_keys=ON")
        cur.close()

    @sa.event.listens_for(engine, "begin")
    def _on_begin(conn: Connection) -> None:
        # IMMEDIATE takes the write lock up front, so two processes never deadlock upgrading
        # a read lock; writes here are short. A read-only transaction (StateStore.read) takes
        # no write lock: under WAL it reads a snapshot beside the writers.
        if conn.get_execution_options().get(_READ_ONLY):
            conn.exec_driver_sql("BEGIN")
        else:
            conn.exec_driver_sql("BEGIN IMMEDIATE")


_READ_ONLY = "adapter_read_only"


class StateStore:
    """Cursors, runs and leases; later issues add their tables through migrations.

    ``StateStore(url)`` opens the database and applies pending migrations on first use.
    """

    def __init__(self, url: str, *, migrate: bool = True) -> None:
        self.url = normalise_url(url)
        self.engine = create_state_engine(self.url)
        self._migrated = False
        # PostgreSQL advisory locks guarding leases: lease name -> the connection holding it.
        self._advisory: dict[str, tuple[Connection, int | None]] = {}
        self._lock_guard = threading.Lock()
        if migrate:
            self.upgrade()

    # -- lifecycle ------------------------------------------------------------------------

    @property
    def backend(self) -> str:
        return self.engine.dialect.name

    def close(self) -> None:
        for name in list(self._advisory):
            self._drop_advisory(name)
        self.engine.dispose()

    def __enter__(self) -> StateStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @contextmanager
    def transaction(self) -> Iterator[Connection]:
        """One transaction: everything inside commits together or not at all.

        Raises ``StateStoreUnavailable`` when the store cannot be reached, ``StateError`` for
        any other database failure; their messages name the backend and database only."""
        with self._translated():
            with self.engine.begin() as conn:
                yield conn

    @contextmanager
    def read(self) -> Iterator[Connection]:
        """A transaction that only reads: one consistent snapshot. On SQLite it takes no
        write lock (a plain BEGIN under WAL), so it runs beside writers in other threads and
        processes; writing in it is a programming error (SQLite then fails on the lock
        upgrade only under contention, so do not)."""
        with self._translated():
            with self.engine.connect() as conn:
                conn = conn.execution_options(**{_READ_ONLY: True})
                with conn.begin():
                    yield conn

    @contextmanager
    def _translated(self) -> Iterator[None]:
        try:
            yield
        except SQLAlchemyError as exc:
            if is_outage(exc):
                raise StateStoreUnavailable(
                    f"{describe_store(self.url)} cannot be reached ({type(exc).__name__}): is "
                    "the database running and the network to it up? Work waits and is retried."
                ) from exc
            raise StateError(
                f"{describe_store(self.url)} failed: {type(exc).__name__}. "
                "Check that the database is reachable and writable."
            ) from exc

    # -- migrations -----------------------------------------------------------------------

    def schema_version(self) -> int:
        """The highest applied migration, 0 for an empty database."""
        with self.transaction() as conn:
            if not sa.inspect(conn).has_table("schema_migrations"):
                return 0
            value = conn.execute(sa.select(sa.func.max(schema.schema_migrations.c.version)))
            return int(value.scalar() or 0)

    def pending_migrations(self) -> list[Migration]:
        current = self.schema_version()
        return [m for m in MIGRATIONS if m.version > current]

    def upgrade(self) -> list[Migration]:
        """Apply every pending migration, each in its own transaction. Safe to run twice and
        from two processes at once (the second waits for the lock, then finds nothing to do)."""
        applied: list[Migration] = []
        with self.transaction() as conn:
            self._serialise_upgraders(conn)
            schema.schema_migrations.create(conn, checkfirst=True)
        for migration in MIGRATIONS:
            with self.transaction() as conn:
                self._serialise_upgraders(conn)
                done = conn.execute(
                    sa.select(schema.schema_migrations.c.version).where(
                        schema.schema_migrations.c.version == migration.version
                    )
                ).first()
                if done:
                    continue
                migration.apply(conn)
                conn.execute(
                    schema.schema_migrations.insert().values(
                        version=migration.version, name=migration.name, applied_at=utcnow()
                    )
                )
                applied.append(migration)
                log.info("applied state migration %d (%s)", migration.version, migration.name)
        self._migrated = True
        return applied

    def _serialise_upgraders(self, conn: Connection) -> None:
        # SQLite's BEGIN IMMEDIATE already serialises writers; PostgreSQL needs a lock that
        # is released at commit, or two upgraders race on CREATE TABLE.
        if self.backend == "postgresql":
            conn.execute(sa.text("SELECT pg_advisory_xact_lock(7143001)"))

    # -- cursors --------------------------------------------------------------------------

    def get_cursor(self, job: str, stream: str, conn: Connection | None = None) -> str | None:
        query = sa.select(schema.cursors.c.value).where(
            schema.cursors.c.job == job, schema.cursors.c.stream == stream
        )
        if conn is not None:
            return conn.execute(query).scalar()
        with self.transaction() as own:
            return own.execute(query).scalar()

    def set_cursor(self, job: str, stream: str, value: str, conn: Connection | None = None) -> None:
        """Record how far ``job`` has read ``stream``. Pass ``conn`` to commit the cursor in the
        same transaction as the work it covers (the transactional-outbox rule)."""
        if conn is None:
            with self.transaction() as own:
                self.set_cursor(job, stream, value, own)
            return
        now = utcnow()
        updated = conn.execute(
            _CURSOR_UPDATE, {"_job": job, "_stream": stream, "value": value, "updated_at": now}
        )
        if updated.rowcount == 0:
            conn.execute(
                _CURSOR_INSERT, {"job": job, "stream": stream, "value": value, "updated_at": now}
            )

    def delete_cursor(self, job: str, stream: str) -> None:
        with self.transaction() as conn:
            conn.execute(
                schema.cursors.delete().where(
                    schema.cursors.c.job == job, schema.cursors.c.stream == stream
                )
            )

    def cursors(self) -> list[dict[str, Any]]:
        with self.transaction() as conn:
            rows = conn.execute(sa.select(schema.cursors).order_by("job", "stream"))
            return [dict(row._mapping) for row in rows]

    # -- leases ---------------------------------------------------------------------------

    def acquire_lease(self, name: str, owner: str, ttl_seconds: float) -> Lease | None:
        """Take the lease ``name`` if it is free, expired, or already ours. None if held.

        One conditional UPDATE decides, which is atomic on SQLite and PostgreSQL alike.

        On PostgreSQL the lease is also guarded by a session-level advisory lock held on a
        dedicated connection until :meth:`release_lease`. Every instance takes that lock
        first, so whoever gets it knows any other holder of the lease row is gone: a process
        killed on another host loses its connection and with it the lock, and its lease is
        taken over at once instead of after the TTL (issue 7, high availability).

        What an outage kept this process from writing is written first, so the lease a run
        of ours could not release is never mistaken for a dead holder's.
        """
        self.settle_unwritten()
        if self.backend == "postgresql":
            return self._acquire_guarded_lease(name, owner, ttl_seconds)
        return self._acquire_lease_row(name, owner, ttl_seconds, holder_gone=False)

    def _acquire_guarded_lease(self, name: str, owner: str, ttl_seconds: float) -> Lease | None:
        with self._lock_guard:
            if name in self._advisory:
                return None  # another thread of this process runs it
            with self._translated():
                conn = self.engine.connect()
            try:
                with self._translated():
                    got = conn.execute(
                        sa.text("SELECT pg_try_advisory_lock(hashtextextended(:key, 0))"),
                        {"key": f"cpims-adapter:{name}"},
                    ).scalar()
                    conn.commit()
            except BaseException:
                conn.close()
                raise
            if not got:
                conn.close()
                return None
            self._advisory[name] = (conn, None)
        try:
            lease = self._acquire_lease_row(name, owner, ttl_seconds, holder_gone=True)
        except BaseException:
            self._drop_advisory(name)
            raise
        if lease is None:
            self._drop_advisory(name)
            return None
        with self._lock_guard:
            self._advisory[name] = (conn, lease.token)
        return lease

    def _advisory_alive(self, name: str) -> bool:
        """False once the connection holding ``name``'s advisory lock has died (a network
        blip): the server freed the lock and another instance may take the job, so this one
        must stop. True on SQLite and for leases taken without a lock. Raises
        ``StateStoreUnavailable`` (after letting the lock go) when the server cannot be
        reached at all: the run stops because of the outage, not because it lost a race."""
        with self._lock_guard:
            held = self._advisory.get(name)
        if held is None:
            return True
        try:
            # The dedicated connection holds this one advisory lock; a connection SQLAlchemy
            # re-opened after a drop holds none (and must not count as holding it).
            count = (
                held[0]
                .execute(
                    sa.text(
                        "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' "
                        "AND pid = pg_backend_pid() AND granted"
                    )
                )
                .scalar()
            )
            held[0].commit()
        except sa.exc.DBAPIError as exc:
            if is_outage(exc):
                self._drop_advisory(name)
                with self._translated():
                    raise
            count = 0
        if not count:
            self._drop_advisory(name)
            return False
        return True

    def _drop_advisory(self, name: str, token: int | None = None) -> None:
        """Unlock ``name``'s advisory lock (only if it guards lease ``token``, when given)."""
        with self._lock_guard:
            held = self._advisory.get(name)
            if held is None or (token is not None and held[1] != token):
                return
            conn = self._advisory.pop(name)[0]
        try:
            conn.execute(
                sa.text("SELECT pg_advisory_unlock(hashtextextended(:key, 0))"),
                {"key": f"cpims-adapter:{name}"},
            )
            conn.commit()
        except sa.exc.DBAPIError:
            pass  # the connection is gone, and the server released the lock with it
        finally:
            conn.close()

    def _acquire_lease_row(
        self, name: str, owner: str, ttl_seconds: float, *, holder_gone: bool
    ) -> Lease | None:
        table = schema.leases
        now = utcnow()
        expires = now + timedelta(seconds=ttl_seconds)
        with self.transaction() as conn:
            exists = conn.execute(sa.select(table.c.name).where(table.c.name == name)).first()
            if not exists:
                try:
                    with conn.begin_nested():
                        conn.execute(table.insert().values(name=name, owner=None, token=0))
                except sa.exc.IntegrityError:
                    pass  # another process created it first; the UPDATE below decides
            holder = conn.execute(sa.select(table.c.owner).where(table.c.name == name)).scalar()
            # A holder on this host whose process is gone (SIGKILL, OOM, power cut of a
            # container) will never release: take over now rather than after the TTL.
            # ``holder_gone``: we hold the advisory lock, so the holder (on any host) is gone.
            gone = holder_gone or (holder is not None and _is_dead_local(holder))
            dead = holder if holder and holder != owner and gone else None
            taken = conn.execute(
                table.update()
                .where(
                    table.c.name == name,
                    sa.or_(
                        table.c.owner.is_(None),
                        table.c.owner == owner,
                        table.c.expires_at < now,
                        table.c.owner == dead,
                    ),
                )
                .values(owner=owner, acquired_at=now, expires_at=expires, token=table.c.token + 1)
            )
            if taken.rowcount != 1:
                return None
            if dead is not None:
                # The dead holder's runs never finished: say so, for status and metrics.
                conn.execute(
                    schema.runs.update()
                    .where(schema.runs.c.owner == dead, schema.runs.c.status == "running")
                    .values(status="abandoned", finished_at=now, error_class="ProcessDied")
                )
            token = conn.execute(sa.select(table.c.token).where(table.c.name == name)).scalar()
        return Lease(name=name, owner=owner, token=int(token or 0), expires_at=expires)

    def renew_lease(
        self, lease: Lease, ttl_seconds: float, conn: Connection | None = None
    ) -> Lease | None:
        """Extend a lease we still hold; None if it was lost (expired and taken).

        Given the caller's ``conn``, the renewal is also a fence: it row-locks the lease in
        the caller's transaction, so work committed with it cannot interleave with a
        takeover, and a caller that sees None rolls its work back.
        """
        if not self._advisory_alive(lease.name):
            return None
        if conn is None:
            with self.transaction() as own:
                return self.renew_lease(lease, ttl_seconds, own)
        table = schema.leases
        expires = utcnow() + timedelta(seconds=ttl_seconds)
        renewed = conn.execute(
            table.update()
            .where(
                table.c.name == lease.name,
                table.c.owner == lease.owner,
                table.c.token == lease.token,
            )
            .values(expires_at=expires)
        )
        if renewed.rowcount != 1:
            return None
        return Lease(lease.name, lease.owner, lease.token, expires)

    def release_lease(self, lease: Lease) -> None:
        """Free ``lease``. If the store cannot be reached, the release is remembered and done
        by :meth:`settle_unwritten` when it can (then raises ``StateStoreUnavailable``)."""
        try:
            with self._remembered_if_unreachable(lambda: _unwritten.add_lease(self.url, lease)):
                self._release_lease_row(lease)
        finally:
            self._drop_advisory(lease.name, lease.token)

    def _release_lease_row(self, lease: Lease, conn: Connection | None = None) -> None:
        table = schema.leases
        if conn is None:
            with self.transaction() as own:
                self._release_lease_row(lease, own)
            return
        conn.execute(
            table.update()
            .where(
                table.c.name == lease.name,
                table.c.owner == lease.owner,
                table.c.token == lease.token,
            )
            .values(owner=None, expires_at=None)
        )

    @contextmanager
    def _remembered_if_unreachable(self, remember: Callable[[], None]) -> Iterator[None]:
        try:
            yield
        except StateStoreUnavailable:
            remember()
            raise

    # -- runs -----------------------------------------------------------------------------

    def start_run(self, job: str, owner: str) -> int:
        with self.transaction() as conn:
            result = conn.execute(
                schema.runs.insert().values(
                    job=job, owner=owner, started_at=utcnow(), status="running", stats={}
                )
            )
            key = result.inserted_primary_key
            assert key is not None
            return int(key[0])

    def finish_run(
        self,
        run_id: int,
        status: str,
        stats: dict[str, Any],
        error_class: str | None = None,
        error_message: str | None = None,
    ) -> None:
        """Record how run ``run_id`` ended.

        A run the state store's outage cut off (``error_class`` StateStoreUnavailable) is
        recorded as ``interrupted``, whatever the caller called it: its process lived, what it
        committed stands, and the next run resumes from there. If the store cannot be reached
        now, the record is kept and written by :meth:`settle_unwritten` when it can."""
        if error_class == StateStoreUnavailable.__name__:
            status = "interrupted"
        values = {
            "status": status,
            "stats": stats,
            "finished_at": utcnow(),
            "error_class": error_class,
            "error_message": error_message,
        }
        with (
            self._remembered_if_unreachable(lambda: _unwritten.add_run(self.url, run_id, values)),
            self.transaction() as conn,
        ):
            conn.execute(schema.runs.update().where(schema.runs.c.id == run_id).values(**values))

    def settle_unwritten(self) -> int:
        """Write what an outage kept this process from writing to this store: how its cut-off
        runs ended (as ``interrupted`` by ``StateStoreUnavailable``, at the time they were cut
        off) and the release of their leases. A run another instance meanwhile marked
        ``abandoned / ProcessDied`` is corrected: this process lived. Returns how many runs
        were recorded; raises ``StateStoreUnavailable`` (keeping everything) if the store
        still cannot be reached."""
        if not _unwritten.pending(self.url):
            return 0
        runs, leases = _unwritten.take(self.url)
        table = schema.runs
        try:
            with self.transaction() as conn:
                for run_id, values in runs.items():
                    conn.execute(
                        table.update()
                        .where(
                            table.c.id == run_id,
                            sa.or_(
                                table.c.status == "running",
                                sa.and_(
                                    table.c.status == "abandoned",
                                    table.c.error_class == "ProcessDied",
                                ),
                            ),
                        )
                        .values(**values)
                    )
                for lease in leases:
                    self._release_lease_row(lease, conn)
        except BaseException:
            _unwritten.put_back(self.url, runs, leases)
            raise
        if runs:
            log.info(
                "recorded %d runs the state store's outage interrupted (runs %s)",
                len(runs),
                ", ".join(str(run_id) for run_id in sorted(runs)),
            )
        return len(runs)

    def recent_runs(self, job: str | None = None, limit: int = 20) -> list[RunRecord]:
        query = sa.select(schema.runs).order_by(schema.runs.c.id.desc()).limit(limit)
        if job:
            query = query.where(schema.runs.c.job == job)
        with self.transaction() as conn:
            return [RunRecord(**row._mapping) for row in conn.execute(query)]


def open_store(url: str) -> StateStore:
    """Open the store at ``url`` and bring its schema up to date."""
    return StateStore(url)
