"""The file connector: CSV over SFTP, e-mail as the last resort (departments.md §6–§7).

For departments that exchange files (courts, NADRA/union councils, police stations).

**Outbound, one file per message** (no batching: the outbox already delivers one message at a
time, and one file per message keeps "delivered" exact). The file is named from the outbox's
idempotency key, ``<department>-<kind>-<idempotency_key>.csv``, so re-sending a message rewrites
the same name and never makes a second file. Over SFTP:

1. the data is uploaded as ``<name>.part`` (a reader ignores ``.part`` files);
2. the checksum sidecar ``<name>.sha256`` is uploaded (``.part`` → rename as well);
3. ``<name>.part`` is renamed to ``<name>`` (atomic on the server).

So a reader that sees ``<name>`` can verify it against a sidecar already there.

The document's body becomes one CSV row under a header (format: ``csv_import``): nested objects
are flattened into dotted column names (``child.sex``), so a clerk's spreadsheet has one column
per fact; lists are JSON text (their length varies, columns cannot); ``None`` is an empty cell,
booleans are ``true``/``false``, dates ISO 8601.

**E-mail** (``email.py``) is used when no ``[sftp]`` is configured, or when SFTP is unreachable
(``Retryable``) and the department's mapping allows e-mail for the document's kind. Never after
a ``Fatal`` SFTP error: a wrong host key must stop the data, not reroute it. The message carries
the same file name and checksum, so a duplicate e-mail can be dropped by name.

**Inbound**: ``status_updates`` imports the department's files (``csv_import.CsvImporter``).
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
from collections.abc import Collection, Iterator, Mapping
from datetime import date, datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from adapter.config import DepartmentSettings, EmailSettings, SftpSettings
from adapter.departments.base import Delivery
from adapter.departments.csv_import import (
    CsvImporter,
    InboundFormat,
    ResolveCaseCode,
    sha256_sidecar,
    write_csv,
)
from adapter.departments.email import EmailDrop
from adapter.errors import ConfigError, Fatal, MappingError, Retryable
from adapter.mappings.vocabulary import StatusUpdate

if TYPE_CHECKING:  # paramiko is imported only by a department that uses SFTP
    from adapter.departments.sftp import SftpDrop

logger = logging.getLogger("adapter.departments")

_SAFE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,200}$")


def file_name(department: str, kind: str, idempotency_key: str) -> str:
    """The file a message travels in: the same message always makes the same name."""
    name = f"{department}-{kind}-{idempotency_key}.csv"
    if not _SAFE_NAME.match(name) or ".." in name:
        # A name with '/' or '..' could escape the drop directory on the server.
        raise Fatal(
            "file connector: department, kind and idempotency key must use only letters, "
            "digits, '.', '_' and '-' to make a file name."
        )
    return name


def flatten_document(body: Mapping[str, Any]) -> dict[str, str]:
    """A document's body as one CSV row (column → text); see the module docstring."""
    row: dict[str, str] = {}
    _flatten(body, "", row)
    return row


def document_csv(body: Mapping[str, Any]) -> bytes:
    """The CSV file of one document: a header and one row."""
    try:
        return write_csv([flatten_document(body)])
    except UnicodeEncodeError:
        # A lone surrogate (broken text from upstream) has no UTF-8 form.
        raise MappingError(
            "file connector: a field holds text that is not valid Unicode."
        ) from None


class FileConnector:
    """A department reached by CSV files over SFTP, with e-mail as the last resort."""

    def __init__(
        self,
        department: str,
        *,
        sftp: SftpSettings | None = None,
        email: EmailSettings | None = None,
        inbound: InboundFormat | None = None,
        email_kinds: Collection[str] = (),
        resolve_case_code: ResolveCaseCode | None = None,
        timeout: float = 30.0,
    ) -> None:
        """``email_kinds``: the kinds the department's mapping allows by e-mail when SFTP is
        down (with no ``sftp``, e-mail carries every kind). ``inbound``: the record type of the
        department's files; without it nothing is imported."""
        if sftp is None and email is None:
            raise ConfigError(
                f"departments.{department}: the file connector needs [sftp] or [email]."
            )
        if not _SAFE_NAME.match(department):
            raise ConfigError(f"departments.{department}: the name cannot be part of a file name.")
        self._department = department
        self.email = EmailDrop(email, department=department, timeout=timeout) if email else None
        self.email_kinds = frozenset(email_kinds)
        self.sftp: SftpDrop | None = None
        self.importer: CsvImporter | None = None
        self.outbound_dir = self.inbound_dir = ""
        if sftp is not None:
            from adapter.departments.sftp import SftpDrop

            self.sftp = SftpDrop(sftp, timeout=timeout)
            self.outbound_dir, self.inbound_dir = sftp.outbound_dir, sftp.inbound_dir
            if inbound is not None:
                self.importer = CsvImporter(
                    self.sftp, sftp, inbound, resolve_case_code=resolve_case_code
                )

    @classmethod
    def from_settings(
        cls,
        department: str,
        settings: DepartmentSettings,
        *,
        inbound: InboundFormat | None = None,
        email_kinds: Collection[str] = (),
        resolve_case_code: ResolveCaseCode | None = None,
    ) -> FileConnector:
        """The connector of ``[departments.<department>]`` with ``connector = "sftp"``; the
        mapping file supplies ``inbound`` and ``email_kinds``."""
        return cls(
            department,
            sftp=settings.sftp,
            email=settings.email,
            inbound=inbound,
            email_kinds=email_kinds,
            resolve_case_code=resolve_case_code,
            timeout=settings.timeout_seconds,
        )

    @property
    def department(self) -> str:
        return self._department

    def check(self) -> str:
        """Sign in to the SFTP drop and list its folders (nothing is written), and reach the
        mail server of the e-mail fallback when there is one."""
        done: list[str] = []
        if self.sftp is not None:
            for directory in (self.outbound_dir, self.inbound_dir):
                found = self.sftp.list_files(directory)
                done.append(f"listed {directory}/ ({len(found)} files)")
            done[0] = f"SFTP {self.sftp.where}: signed in, " + done[0]
        if self.email is not None:
            done.append(self.email.server().check(timeout=min(10.0, self.email.timeout)))
        return "; ".join(done)

    def deliver(self, kind: str, document: Mapping[str, Any], *, idempotency_key: str) -> Delivery:
        """Write the document as ``<department>-<kind>-<idempotency_key>.csv``; raises
        ``Retryable``, ``Fatal`` or ``MappingError``. The department gives no reference back."""
        name = file_name(self.department, kind, idempotency_key)
        data = document_csv(_row_of(document))
        sidecar = sha256_sidecar(name, data)
        digest = hashlib.sha256(data).hexdigest()
        if self.sftp is None:
            assert self.email is not None  # the constructor demands one of them
            self.email.send_file(name, data, digest)
            return Delivery()
        try:
            self.sftp.put_part(self.outbound_dir, name, data)
            self.sftp.put_atomic(self.outbound_dir, name + ".sha256", sidecar)
            self.sftp.publish(self.outbound_dir, name)
        except Retryable:
            if self.email is None or kind not in self.email_kinds:
                raise
            # departments.md §6: e-mail only as the last resort, and only where allowed.
            logger.warning(
                "sftp unreachable: sending the file by e-mail instead",
                extra={"department": self.department, "file": name},
            )
            self.email.send_file(name, data, digest)
            return Delivery()
        logger.info("file delivered by sftp", extra={"department": self.department, "file": name})
        return Delivery()

    def status_updates(self, since: str | None) -> Iterator[tuple[StatusUpdate, str]]:
        """The department's rows as status updates, each with its file's name as the
        watermark. ``since`` is not used to skip files: a file leaves the inbound directory once
        imported (``csv_import.CsvImporter``), which is exact where names need not sort."""
        if self.importer is None:
            return iter(())
        return self.importer.status_updates()

    def close(self) -> None:
        if self.sftp is not None:
            self.sftp.close()


def _flatten(value: Mapping[str, Any], prefix: str, row: dict[str, str]) -> None:
    for key, item in value.items():
        if not isinstance(key, str):
            raise MappingError(f"file connector: a field name under '{prefix}' is not text.")
        column = f"{prefix}{key}"
        if isinstance(item, Mapping):
            _flatten(item, column + ".", row)
            continue
        if column in row:
            raise MappingError(
                f"file connector: column '{column}' is produced twice (a dotted field name "
                "clashes with a nested one); rename one in the mapping."
            )
        row[column] = _cell(item, column)


def _cell(value: Any, column: str) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return value
    if isinstance(value, int | float | Decimal):
        return str(value)
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, list | tuple):
        try:
            return json.dumps(value, ensure_ascii=False, sort_keys=True, separators=(",", ":"))
        except (TypeError, ValueError):
            pass
    raise MappingError(
        f"file connector: field '{column}' holds a {type(value).__name__}, which has no CSV "
        "form; map it to text, a number, a date, a list or an object."
    )


def _row_of(document: Mapping[str, Any]) -> Mapping[str, Any]:
    """A mapping-file document is ``{referral_key, route, json}``: the file carries the
    department's record (``json``) with the referral key beside it, not the envelope."""
    record = document.get("json")
    if isinstance(record, Mapping):
        return {"referral_key": document.get("referral_key"), **record}
    return document
