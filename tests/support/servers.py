"""Real servers on 127.0.0.1 for tests: each picks a free port and is stopped by PID."""

from __future__ import annotations

import glob
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_for_port(port: int, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with socket.socket() as sock:
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.05)
    raise TimeoutError(f"nothing listens on 127.0.0.1:{port} after {timeout}s")


def postgres_bindir() -> Path | None:
    """Debian installs PostgreSQL under /usr/lib/postgresql/<major>/bin; take the newest."""
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=_major, reverse=True)
    if found:
        return Path(found[0]).parent
    initdb = shutil.which("initdb")
    return Path(initdb).parent if initdb else None


def _major(path: str) -> int:
    try:
        return int(Path(path).parts[-3])
    except ValueError:
        return 0


@dataclass
class PostgresServer:
    """A throwaway PostgreSQL cluster in a temp dir, listening on 127.0.0.1:port."""

    bindir: Path
    datadir: Path
    port: int
    process: subprocess.Popen[bytes]
    superuser: str
    # How the postmaster was started: ``start_again`` after ``shut_down`` repeats it.
    command: tuple[str, ...] = ()

    def url(self, database: str = "postgres") -> str:
        return f"postgresql+psycopg://{self.superuser}@127.0.0.1:{self.port}/{database}"

    def create_database(self, name: str) -> str:
        import psycopg

        with psycopg.connect(
            f"host=127.0.0.1 port={self.port} user={self.superuser} dbname=postgres",
            autocommit=True,
        ) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        return self.url(name)

    def shut_down(self) -> None:
        """Stop the server ("fast": sessions end) and keep its data: an outage."""
        self._signal_stop()

    def start_again(self) -> None:
        """Start the server ``shut_down`` stopped, on the same port, and wait until it
        accepts connections."""
        assert self.command, "only a server started by start_postgres can start again"
        self.process = subprocess.Popen(
            list(self.command), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        wait_for_port(self.port)
        _wait_accepting(self)

    def stop(self) -> None:
        self._signal_stop()
        shutil.rmtree(self.datadir.parent, ignore_errors=True)

    def _signal_stop(self) -> None:
        # Signal the postmaster itself (under runuser, self.process is runuser's PID).
        pid = self._postmaster_pid() or self.process.pid
        try:
            os.kill(pid, signal.SIGINT)  # "fast" shutdown: ends sessions, then exits
        except ProcessLookupError:
            pass
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.kill(pid, signal.SIGKILL)
            self.process.kill()
            self.process.wait()

    def _postmaster_pid(self) -> int | None:
        try:
            return int((self.datadir / "postmaster.pid").read_text().split()[0])
        except (OSError, ValueError, IndexError):
            return None


def start_postgres() -> PostgresServer:
    """initdb + postgres on a free loopback port. As root, runs as the `postgres` user
    (PostgreSQL refuses to run as root)."""
    bindir = postgres_bindir()
    if bindir is None:
        raise RuntimeError(
            "PostgreSQL server binaries not found. Install them (apt-get install postgresql) "
            "or set CPIMS_ADAPTER_SKIP_POSTGRES=1 to run the SQLite half only."
        )
    base = Path(tempfile.mkdtemp(prefix="cpims-pg-"))
    datadir = base / "data"
    prefix: list[str] = []
    superuser = os.environ.get("USER") or "postgres"
    if os.geteuid() == 0:
        import pwd

        pw = pwd.getpwnam("postgres")
        os.chown(base, pw.pw_uid, pw.pw_gid)
        prefix = ["runuser", "-u", "postgres", "--"]
        superuser = "postgres"
    else:
        import getpass

        superuser = getpass.getuser()
    subprocess.run(
        [
            *prefix,
            str(bindir / "initdb"),
            "-D",
            str(datadir),
            "-A",
            "trust",
            "-U",
            superuser,
            "-E",
            "UTF8",
            "--no-sync",
        ],
        check=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    port = free_port()
    command = (
        *prefix,
        str(bindir / "postgres"),
        "-D",
        str(datadir),
        "-p",
        str(port),
        "-c",
        "listen_addresses=127.0.0.1",
        "-c",
        f"unix_socket_directories={base}",
        "-c",
        "fsync=off",
        "-c",
        "synchronous_commit=off",
        "-c",
        "full_page_writes=off",
        "-c",
        "max_connections=200",
    )
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    server = PostgresServer(bindir, datadir, port, process, superuser, command)
    try:
        wait_for_port(port)
        _wait_accepting(server)
    except Exception:
        server.stop()
        raise
    return server


def _wait_accepting(server: PostgresServer, timeout: float = 30.0) -> None:
    import psycopg

    deadline = time.monotonic() + timeout
    while True:
        try:
            psycopg.connect(
                f"host=127.0.0.1 port={server.port} user={server.superuser} dbname=postgres"
            ).close()
            return
        except psycopg.OperationalError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)
