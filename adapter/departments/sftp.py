"""A department's SFTP drop, through paramiko: key login, known host keys, atomic uploads.

Security (departments.md §6–§7): the adapter logs in with its key only (no password, no agent,
no keys picked up from ``~/.ssh``), and the server's host key must already be in
``known_hosts_file``: an unknown or changed key is ``Fatal`` before a byte is sent, never
trusted on first use, because a child's referral must not go to whoever answers on the port.

Uploads use the ``.part`` → rename handshake: the file is written under ``<name>.part`` and then
renamed to ``<name>`` with OpenSSH's ``posix-rename``, which replaces an existing file
atomically, so a reader listing the directory sees either no file or the whole file, and a
re-send of the same name replaces it instead of failing.

Failures are classified for the outbox: an unreachable or dropped server is ``Retryable``; a
refused key, an unknown host key, or a missing or forbidden directory is ``Fatal`` (an operator
must act). Messages name the setting and never the content.
"""

from __future__ import annotations

import io
import logging
import stat
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import paramiko

from adapter.config import SftpSettings
from adapter.errors import Fatal, Retryable

logger = logging.getLogger("adapter.departments")

PART = ".part"


@dataclass(frozen=True)
class RemoteFile:
    """One entry of a remote directory listing (regular files only)."""

    name: str
    size: int


class _RejectUnknownHost(paramiko.MissingHostKeyPolicy):
    """Never trust on first use: an unknown host key stops the connection."""

    def missing_host_key(
        self, client: paramiko.SSHClient, hostname: str, key: paramiko.PKey
    ) -> None:
        raise Fatal(
            f"sftp: the host key of {hostname} is not in known_hosts_file; get the department's "
            "host key fingerprint out of band and add it (no trust on first use)."
        )


class SftpDrop:
    """One SFTP session to a department's drop, opened on first use and reopened after a
    failure. Thread-safe: the sync engine delivers with several workers, and one paramiko
    SFTP channel must not interleave requests from them, so calls take a lock."""

    def __init__(self, settings: SftpSettings, *, timeout: float = 30.0) -> None:
        self.settings = settings
        self.timeout = timeout
        self._lock = threading.RLock()
        self._ssh: paramiko.SSHClient | None = None
        self._sftp: paramiko.SFTPClient | None = None

    @property
    def where(self) -> str:
        return f"{self.settings.host}:{self.settings.port}"

    # -- operations ---------------------------------------------------------------------------

    def put_atomic(self, directory: str, name: str, data: bytes) -> None:
        """Upload ``data`` as ``directory/name`` through ``name.part`` and an atomic rename."""
        self.put_part(directory, name, data)
        self.publish(directory, name)

    def put_part(self, directory: str, name: str, data: bytes) -> None:
        """Upload ``data`` as ``directory/name.part`` only (publish it later with ``publish``)."""
        with self._session("upload a file to", directory) as sftp:
            self._upload(sftp, _join(directory, name + PART), data)

    def publish(self, directory: str, name: str) -> None:
        """Rename ``name.part`` to ``name`` atomically, replacing an older ``name``."""
        with self._session("rename a file in", directory) as sftp:
            self._replace(sftp, _join(directory, name + PART), _join(directory, name))

    def list_files(self, directory: str) -> list[RemoteFile]:
        """Regular files in ``directory``, sorted by name."""
        with self._session("list", directory) as sftp:
            entries = sftp.listdir_attr(directory)
        files = [
            RemoteFile(e.filename, e.st_size or 0)
            for e in entries
            if e.st_mode is not None and stat.S_ISREG(e.st_mode)
        ]
        return sorted(files, key=lambda f: f.name)

    def read(self, directory: str, name: str) -> bytes:
        with self._session("read a file in", directory) as sftp:
            buffer = io.BytesIO()
            sftp.getfo(_join(directory, name), buffer)
            return buffer.getvalue()

    def move(self, directory: str, name: str, to_directory: str, to_name: str) -> None:
        """Move a file within the drop (atomic, replacing the target)."""
        with self._session("move a file out of", directory) as sftp:
            self._replace(sftp, _join(directory, name), _join(to_directory, to_name))

    def ensure_directory(self, directory: str) -> None:
        with self._session("create", directory) as sftp:
            try:
                sftp.stat(directory)
            except FileNotFoundError:
                sftp.mkdir(directory)

    def close(self) -> None:
        with self._lock:
            self._disconnect()

    # -- internals ----------------------------------------------------------------------------

    @contextmanager
    def _session(self, action: str, directory: str) -> Iterator[paramiko.SFTPClient]:
        """The open session, with every failure turned into ``Retryable`` or ``Fatal``."""
        with self._lock:
            try:
                yield self._connect()
            except Fatal:
                self._disconnect()
                raise
            except PermissionError:
                raise Fatal(
                    f"sftp {self.where}: not allowed to {action} '{directory}'; ask the "
                    "department to grant the adapter's account access, or fix the *_dir setting."
                ) from None
            except FileNotFoundError:
                raise Fatal(
                    f"sftp {self.where}: cannot {action} '{directory}' (no such file or "
                    "directory); check the *_dir settings against the department's drop."
                ) from None
            except (OSError, EOFError, paramiko.SSHException) as exc:
                # Unreachable (refused; a socket timeout is an OSError too), or the connection
                # dropped mid-operation: start afresh next time.
                self._disconnect()
                raise Retryable(
                    f"sftp {self.where}: could not {action} '{directory}' "
                    f"({type(exc).__name__}); will retry."
                ) from None

    def _connect(self) -> paramiko.SFTPClient:
        if self._sftp is not None:
            return self._sftp
        settings = self.settings
        try:
            key = paramiko.PKey.from_path(settings.private_key_file)
        except (OSError, paramiko.SSHException, ValueError):
            raise Fatal(
                "sftp: cannot read private_key_file (missing, unreadable or not an OpenSSH/PEM "
                "private key without a passphrase)."
            ) from None
        ssh = paramiko.SSHClient()
        try:
            ssh.load_host_keys(str(settings.known_hosts_file))
        except OSError:
            raise Fatal("sftp: cannot read known_hosts_file; it must list the host key.") from None
        ssh.set_missing_host_key_policy(_RejectUnknownHost())
        try:
            ssh.connect(
                settings.host,
                port=settings.port,
                username=settings.username,
                pkey=key,
                # Only the configured key: nothing from an agent or ~/.ssh (departments.md §7).
                look_for_keys=False,
                allow_agent=False,
                timeout=self.timeout,
                banner_timeout=self.timeout,
                auth_timeout=self.timeout,
            )
            sftp = ssh.open_sftp()
            channel = sftp.get_channel()
            if channel is not None:
                channel.settimeout(self.timeout)
        except paramiko.BadHostKeyException:
            ssh.close()
            raise Fatal(
                f"sftp {self.where}: the server's host key does not match known_hosts_file; "
                "nothing was sent. If the department changed its key, verify the new "
                "fingerprint out of band before updating known_hosts_file."
            ) from None
        except paramiko.AuthenticationException:
            ssh.close()
            raise Fatal(
                f"sftp {self.where}: the server refused the key for user '{settings.username}'; "
                "ask the department to install the adapter's public key."
            ) from None
        except BaseException:
            ssh.close()
            raise
        self._ssh, self._sftp = ssh, sftp
        logger.debug("sftp session opened", extra={"sftp_host": self.where})
        return sftp

    def _disconnect(self) -> None:
        if self._ssh is not None:
            self._ssh.close()
        self._ssh = self._sftp = None

    def _upload(self, sftp: paramiko.SFTPClient, path: str, data: bytes) -> None:
        # confirm=True stats the file afterwards: a short write is an error, not a silent loss.
        sftp.putfo(io.BytesIO(data), path, file_size=len(data), confirm=True)

    def _replace(self, sftp: paramiko.SFTPClient, source: str, target: str) -> None:
        try:
            sftp.posix_rename(source, target)
        except (PermissionError, FileNotFoundError):
            raise
        except OSError:
            # A server without OpenSSH's posix-rename extension: plain SFTP rename refuses to
            # overwrite, so remove the old file first (a short window without the file; a reader
            # then sees nothing, never a partial file).
            try:
                sftp.remove(target)
            except FileNotFoundError:
                pass
            sftp.rename(source, target)


def _join(directory: str, name: str) -> str:
    return f"{directory.rstrip('/')}/{name}" if directory else name
