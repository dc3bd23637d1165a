"""A real OpenSSH SFTP server on 127.0.0.1 for the file connector's tests (departments.md §7).

``start_sftp_server()`` runs Debian's ``sshd`` as root with a generated host key, a throwaway
user that can only log in with a generated client key, and ``internal-sftp`` chrooted into a
root-owned directory under ``/srv``. Why each choice (all VERIFIED in departments.md §7):

- the chroot and every parent must be root-owned and not writable by others, which ``/tmp``
  (world-writable) can never be: so ``/srv/cpims-sftp-test-<random>``;
- the user is made with ``-p '*'``: a locked ``!`` password makes sshd refuse key logins too;
- password and keyboard-interactive logins are off, ``StrictModes`` stays on, and the server
  listens on loopback only.

The server is stopped by its PID, then the user and the directory are removed.

The fixtures ``sftp_server`` (one sshd per test module; skipped where sshd cannot run) and
``sftp`` (that server with its drop directories emptied) are defined here once and made
visible to every test through ``tests/conftest.py``.
"""

from __future__ import annotations

import hashlib
import os
import secrets
import shutil
import signal
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from adapter.config import SftpSettings
from tests.support.servers import free_port

SSHD = Path("/usr/sbin/sshd")
# The directories a department's drop has, as the connector's settings name them.
DIRECTORIES = ("to_department", "from_department", "rejects")


class SftpUnavailable(RuntimeError):
    """sshd cannot be started here (not root, or openssh-server cannot be installed)."""


@dataclass
class SftpServer:
    """A running sshd; ``root`` is the chroot, i.e. what the test user sees as ``/``."""

    port: int
    base: Path
    user: str
    process: subprocess.Popen[bytes]
    client_key: Path
    known_hosts: Path
    host_public_key: str

    @property
    def root(self) -> Path:
        return self.base / "chroot"

    def settings(self, **changes: object) -> SftpSettings:
        """Connector settings that reach this server (override any field with ``changes``)."""
        values: dict[str, object] = {
            "host": "127.0.0.1",
            "port": self.port,
            "username": self.user,
            "private_key_file": self.client_key,
            "known_hosts_file": self.known_hosts,
        }
        values.update(changes)
        return SftpSettings.model_validate(values)

    def write_known_hosts(self, path: Path, public_key: str | None = None) -> Path:
        """A known_hosts file for this server: its real host key, or ``public_key`` instead."""
        path.write_text(f"[127.0.0.1]:{self.port} {public_key or self.host_public_key}\n")
        return path

    def drop_inbound(self, name: str, data: bytes) -> None:
        """A department's clerk uploads a file and its ``sha256sum`` sidecar into the inbound
        directory, owned by the drop's user."""
        inbound = self.root / "from_department"
        owner = inbound.stat()
        sidecar = f"{hashlib.sha256(data).hexdigest()}  {name}\n".encode()
        for path, content in ((inbound / name, data), (inbound / f"{name}.sha256", sidecar)):
            path.write_bytes(content)
            os.chown(path, owner.st_uid, owner.st_gid)

    def names(self, directory: str) -> list[str]:
        """The files (not directories) in one of the drop's ``DIRECTORIES``."""
        return sorted(p.name for p in (self.root / directory).iterdir() if p.is_file())

    def stop(self) -> None:
        try:
            os.kill(self.process.pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.kill(self.process.pid, signal.SIGKILL)
            self.process.wait()
        # `userdel` refuses while a session process of the user lives; they end with their
        # client, so give them a moment.
        for _ in range(50):
            done = subprocess.run(
                ["userdel", self.user], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
            )
            if done.returncode in (0, 6):  # 6: no such user
                break
            time.sleep(0.1)
        shutil.rmtree(self.base, ignore_errors=True)


def ensure_sshd() -> None:
    """Install openssh-server when missing (as root only), or explain why tests must skip."""
    if os.geteuid() != 0:
        raise SftpUnavailable("the SFTP tests start sshd with a chroot, which needs root")
    if SSHD.exists():
        return
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    for command in (
        ["apt-get", "update", "-qq"],
        ["apt-get", "install", "-y", "-qq", "openssh-server"],
    ):
        done = subprocess.run(command, env=env, capture_output=True, timeout=600)
        if done.returncode != 0:
            raise SftpUnavailable("apt-get install openssh-server failed")


def start_sftp_server() -> SftpServer:
    """sshd with internal-sftp on a free loopback port; ready when this returns."""
    ensure_sshd()
    # sshd's privilege separation needs this directory (Debian creates it only at boot).
    Path("/run/sshd").mkdir(mode=0o755, exist_ok=True)
    base = Path(f"/srv/cpims-sftp-test-{secrets.token_hex(4)}")
    user = f"cpimssftp{secrets.token_hex(4)}"
    base.mkdir(mode=0o755)
    try:
        return _start(base, user)
    except BaseException:
        subprocess.run(["userdel", user], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        shutil.rmtree(base, ignore_errors=True)
        raise


def _start(base: Path, user: str) -> SftpServer:
    subprocess.run(
        ["useradd", "-M", "-d", "/", "-s", "/usr/sbin/nologin", "-p", "*", user],
        check=True,
        capture_output=True,
    )
    import pwd

    account = pwd.getpwnam(user)
    # The chroot is root's; only the drop directories inside belong to the user.
    chroot = base / "chroot"
    chroot.mkdir(mode=0o755)
    for name in DIRECTORIES:
        (chroot / name).mkdir(mode=0o755)
        os.chown(chroot / name, account.pw_uid, account.pw_gid)

    etc = base / "etc"
    etc.mkdir(mode=0o700)
    host_key = Ed25519PrivateKey.generate()
    _write_private_key(etc / "host_ed25519", host_key)
    host_public = _public_line(host_key)
    client_key = Ed25519PrivateKey.generate()
    client_key_file = base / "client_ed25519"
    _write_private_key(client_key_file, client_key)
    keys = base / "authorized_keys"
    keys.mkdir(mode=0o755)
    (keys / user).write_text(_public_line(client_key) + "\n")
    (keys / user).chmod(0o644)

    port = free_port()
    config = etc / "sshd_config"
    config.write_text(
        "\n".join(
            [
                f"ListenAddress 127.0.0.1:{port}",
                f"HostKey {etc / 'host_ed25519'}",
                f"PidFile {base / 'sshd.pid'}",
                f"AuthorizedKeysFile {keys}/%u",
                "StrictModes yes",
                "PubkeyAuthentication yes",
                "PasswordAuthentication no",
                "KbdInteractiveAuthentication no",
                "PermitRootLogin no",
                "UsePAM no",
                f"AllowUsers {user}",
                "Subsystem sftp internal-sftp",
                "ForceCommand internal-sftp",
                f"ChrootDirectory {chroot}",
                "AllowTcpForwarding no",
                "X11Forwarding no",
                "PermitTTY no",
                "LogLevel ERROR",
                "",
            ]
        )
    )
    process = subprocess.Popen(
        [str(SSHD), "-D", "-e", "-f", str(config)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    known_hosts = base / "known_hosts"
    server = SftpServer(port, base, user, process, client_key_file, known_hosts, host_public)
    server.write_known_hosts(known_hosts)
    try:
        _wait_for_banner(port, process)
    except BaseException:
        server.stop()
        raise
    return server


def _wait_for_banner(port: int, process: subprocess.Popen[bytes], timeout: float = 10.0) -> None:
    """sshd is ready when it greets with its SSH banner."""
    import socket

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"sshd exited with status {process.returncode} at start")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1) as sock:
                if sock.recv(4).startswith(b"SSH-"):
                    return
        except OSError:
            time.sleep(0.05)
    raise TimeoutError(f"sshd did not answer on 127.0.0.1:{port} after {timeout}s")


def _write_private_key(path: Path, key: Ed25519PrivateKey) -> None:
    pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.OpenSSH,
        serialization.NoEncryption(),
    )
    path.write_bytes(pem)
    path.chmod(0o600)


def _public_line(key: Ed25519PrivateKey) -> str:
    return (
        key.public_key()
        .public_bytes(serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH)
        .decode()
    )


def new_client_key(path: Path) -> Path:
    """A client key no server here has authorised: for the refused-key test."""
    _write_private_key(path, Ed25519PrivateKey.generate())
    return path


def other_host_key() -> str:
    """A host key no server here uses: for the wrong-host-key test."""
    return _public_line(Ed25519PrivateKey.generate())


@pytest.fixture(scope="module")
def sftp_server() -> Iterator[SftpServer]:
    """A running sshd for the test module, stopped by PID afterwards; skips where it cannot
    run (not root, no openssh-server)."""
    try:
        server = start_sftp_server()
    except SftpUnavailable as exc:
        pytest.skip(str(exc))
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def sftp(sftp_server: SftpServer) -> SftpServer:
    """The module's server with its drop directories emptied."""
    for name in DIRECTORIES:
        for entry in (sftp_server.root / name).iterdir():
            if entry.is_dir():
                shutil.rmtree(entry)
            else:
                entry.unlink()
    return sftp_server
