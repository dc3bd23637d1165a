"""Backup and restore of the state store, and the re-shred a restore owes the retention policy.

* SQLite: Python's ``sqlite3`` online backup API, a consistent copy while the service runs.
* PostgreSQL: ``pg_dump -Fc`` / ``pg_restore`` from the Debian ``postgresql`` packages (found
  under ``/usr/lib/postgresql/<major>/bin``, newest first, else on ``PATH``).

A restore refuses a target that holds any data unless forced, refuses a backup made by a newer
adapter (a higher schema version), applies the migrations an older backup lacks, and then, before
anything else uses the store, destroys every archive whose ``destroy_after`` has passed: a backup
taken before a crypto-shred still holds that case's wrapped key, and restoring it must not bring
the case back (privacy.md §7 item 22).

The limit, stated plainly: the backup *file* itself still holds those keys, wrapped under the
KEK. Whoever has both the file and the KEK can open a case the live store has shredded. Keep
backups for a short time (days, not years), encrypt them at rest, and never keep the KEK beside
them.
"""

from __future__ import annotations

import glob
import os
import shutil
import sqlite3
import subprocess
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import sqlalchemy as sa

from adapter.clock import utcnow
from adapter.privacy.keys import KeyRing
from adapter.retention._tables import case_archives
from adapter.retention.errors import BackupError
from adapter.retention.run import RetentionReport, destroy_due
from adapter.state import StateStore
from adapter.state.migrations import MIGRATIONS
from adapter.state.store import create_private_file, create_state_engine, normalise_url

_TIMEOUT = 3600


@dataclass(frozen=True)
class BackupInfo:
    """What a backup wrote."""

    backend: str
    schema_version: int
    path: Path
    size_bytes: int


@dataclass(frozen=True)
class RestoreInfo:
    """What a restore did: the backup's schema version, the migrations applied on top, and
    the archives destroyed straight afterwards."""

    backend: str
    backup_schema_version: int
    migrations_applied: int
    destroyed: int


def pg_tool(name: str) -> Path:
    """The newest Debian PostgreSQL client binary ``name``, else one on PATH."""
    found = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"), key=_major, reverse=True)
    if found:
        return Path(found[0])
    on_path = shutil.which(name)
    if on_path:
        return Path(on_path)
    raise BackupError(
        f"{name} not found (looked in /usr/lib/postgresql/*/bin and PATH): install the "
        "PostgreSQL client programs, e.g. `apt-get install postgresql-client`."
    )


def _major(path: str) -> int:
    try:
        return int(Path(path).parts[-3])
    except (ValueError, IndexError):
        return 0


def _libpq(url: str) -> tuple[str, dict[str, str]]:
    """A libpq URL without the password, and an environment carrying it (never in argv)."""
    parsed = sa.engine.make_url(normalise_url(url))
    env = dict(os.environ)
    if parsed.password:
        env["PGPASSWORD"] = str(parsed.password)
    plain = parsed.set(drivername="postgresql", password=None)
    return plain.render_as_string(hide_password=False), env


def _sqlite_path(url: str) -> Path:
    database = sa.engine.make_url(normalise_url(url)).database
    if not database or database == ":memory:":
        raise BackupError("state.url names an in-memory SQLite database: nothing to back up.")
    return Path(database).expanduser()


def _run(argv: list[str], env: dict[str, str] | None = None) -> str:
    try:
        done = subprocess.run(
            argv, capture_output=True, text=True, timeout=_TIMEOUT, env=env, check=False
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise BackupError(f"{Path(argv[0]).name} failed to run: {type(exc).__name__}.") from None
    if done.returncode != 0:
        # pg_dump's stderr names objects and connection problems, not row values.
        detail = done.stderr.strip().splitlines()[-1] if done.stderr.strip() else ""
        raise BackupError(f"{Path(argv[0]).name} exited with {done.returncode}: {detail}")
    return done.stdout


def backup_store(store: StateStore, path: Path) -> BackupInfo:
    """Write a consistent copy of ``store`` to ``path`` (mode 0600; never overwrites)."""
    if path.exists():
        raise BackupError(f"{path} exists; choose a new file for the backup.")
    version = store.schema_version()
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    # Created 0600 before anything is written: a backup holds everything the store holds.
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    os.close(fd)
    try:
        if store.backend == "sqlite":
            source = sqlite3.connect(_sqlite_path(store.url))
            target = sqlite3.connect(path)
            try:
                source.backup(target)
            finally:
                target.close()
                source.close()
        else:
            url, env = _libpq(store.url)
            _run(
                [
                    str(pg_tool("pg_dump")),
                    "-Fc",
                    "--no-owner",
                    "--no-privileges",
                    "-f",
                    str(path),
                    "--dbname",
                    url,
                ],
                env,
            )
    except BaseException:
        path.unlink(missing_ok=True)
        raise
    return BackupInfo(store.backend, version, path, path.stat().st_size)


def backup_schema_version(path: Path, backend: str) -> int:
    """The schema version recorded inside a backup file of ``backend``."""
    if not path.is_file():
        raise BackupError(f"{path}: no such backup file.")
    if backend == "sqlite":
        try:
            with sqlite3.connect(f"file:{path}?mode=ro", uri=True) as conn:
                value = conn.execute("SELECT max(version) FROM schema_migrations").fetchone()
        except sqlite3.DatabaseError:
            raise BackupError(
                f"{path} is not a SQLite backup of a state store (no schema_migrations)."
            ) from None
        return int(value[0] or 0)
    text = _run(
        [
            str(pg_tool("pg_restore")),
            "--data-only",
            "--table",
            "schema_migrations",
            "-f",
            "-",
            str(path),
        ]
    )
    versions: list[int] = []
    inside = False
    for line in text.splitlines():
        if line.startswith("COPY ") and "schema_migrations" in line:
            inside = True
        elif inside and line == "\\.":
            break
        elif inside and line:
            versions.append(int(line.split("\t", 1)[0]))
    if not versions:
        raise BackupError(f"{path} is not a pg_dump backup of a state store.")
    return max(versions)


def _holds_data(url: str) -> bool:
    engine = create_state_engine(url)
    try:
        with engine.connect() as conn:
            for table in sa.inspect(conn).get_table_names():
                if table == "schema_migrations":
                    continue
                if conn.execute(
                    sa.select(sa.literal(1)).select_from(sa.table(table)).limit(1)
                ).first():
                    return True
        return False
    finally:
        engine.dispose()


def _drop_all(url: str) -> None:
    engine = create_state_engine(url)
    try:
        with engine.begin() as conn:
            for table in sa.inspect(conn).get_table_names():
                conn.execute(sa.text(f'DROP TABLE IF EXISTS "{table}" CASCADE'))
    finally:
        engine.dispose()


def restore_store(
    url: str,
    path: Path,
    kek: bytes,
    *,
    force: bool = False,
    now: datetime | None = None,
) -> RestoreInfo:
    """Replace the store at ``url`` with the backup at ``path``, then destroy what is due.

    Refuses a store that holds data unless ``force``; refuses a backup with a schema newer
    than this adapter's. ``kek`` opens the restored key ring for the re-shred.
    """
    url = normalise_url(url)
    backend = sa.engine.make_url(url).get_backend_name()
    version = backup_schema_version(path, backend)
    newest = MIGRATIONS[-1].version
    if version > newest:
        raise BackupError(
            f"{path} has schema version {version}, newer than this adapter's {newest}: restore "
            "it with the adapter version that made it."
        )
    if not force and _holds_data(url):
        raise BackupError(
            "the state store is not empty: restoring would overwrite it. Pass --force to "
            "replace it, or point state.url at an empty database."
        )
    if backend == "sqlite":
        source = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
        create_private_file(_sqlite_path(url))  # a restore into a new file: 0600 too
        target = sqlite3.connect(_sqlite_path(url))
        try:
            source.backup(target)
        finally:
            target.close()
            source.close()
    else:
        _drop_all(url)
        libpq, env = _libpq(url)
        _run(
            [
                str(pg_tool("pg_restore")),
                "--no-owner",
                "--no-privileges",
                "--exit-on-error",
                "--dbname",
                libpq,
                str(path),
            ],
            env,
        )
    with StateStore(url, migrate=False) as store:
        applied = store.upgrade()
        report = reshred(store, kek, now=now or utcnow())
    return RestoreInfo(backend, version, len(applied), report.destroyed)


def reshred(store: StateStore, kek: bytes, *, now: datetime) -> RetentionReport:
    """Destroy every archive whose time has come (what a restored backup may have brought
    back). Needs the key ring only if something is due."""
    with store.transaction() as conn:
        due = conn.execute(
            sa.select(sa.func.count())
            .select_from(case_archives)
            .where(case_archives.c.destroyed_at.is_(None), case_archives.c.destroy_after <= now)
        ).scalar()
    if not due:
        return RetentionReport(dry_run=False)
    return destroy_due(store, KeyRing.open(store, kek), now=now)
