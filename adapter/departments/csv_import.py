"""CSV files exchanged with departments: the format, checksums, and the import of their files.

Courts, NADRA/union councils and police stations exchange CSV files (departments.md §6–§7).

**Format, both directions.** UTF-8 with a byte-order mark (Excel, which clerks open these files
with, only reads Urdu correctly from UTF-8 when the mark is there; reading accepts it with or
without), comma-separated, CRLF line ends, RFC 4180 quoting (a value with a comma, quote or line
break is quoted, quotes doubled), one header row. Values are written losslessly: a value that
starts with ``=`` is *not* defused with a quote, because the receiving system must read back
exactly what was sent; receivers should import columns as text.

**Checksums.** A file ``<name>`` may have a sidecar ``<name>.sha256`` in ``sha256sum`` format
(``<hex>  <name>``), so ``sha256sum -c`` verifies it on the receiver's side too.

**Import.** ``CsvImporter`` reads the complete ``*.csv`` files of the inbound directory (a
``.part`` file is still being written and is skipped), verifies a sidecar when there is one,
maps the department's column names onto a record type's fields (``InboundFormat``), validates
each row with pydantic, and turns good rows into ``StatusUpdate``s. A row that fails goes to
``<rejects_dir>/<file>.rejects.csv`` with its row number (as a spreadsheet numbers it: the
header is row 1), the field and the reason — never the value, which may be personal data. A
file that cannot be read at all (checksum mismatch, not UTF-8, a required column missing) is
rejected whole: moved to the rejects directory with a one-line report. A file is moved to
``<inbound_dir>/processed/`` only after every good row was taken by the consumer, so a crash
mid-file re-imports the whole file, and the consumer is idempotent by (referral key, content:
``StatusUpdate.version``). Columns not in the record type are never read: that is where a
department's export would carry names or CNICs the adapter must not hold.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import logging
import re
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta, timezone
from typing import TYPE_CHECKING, Annotated, Any, ClassVar, Literal, TypeVar

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    create_model,
    field_validator,
)

from adapter.config import SftpSettings
from adapter.errors import ConfigError
from adapter.mappings.vocabulary import COMPLETED, IN_PROGRESS, STATUSES, StatusUpdate
from adapter.vocabulary import CourtOrderStatus, CourtOrderType

if TYPE_CHECKING:  # paramiko is imported only by a department that uses SFTP
    from adapter.departments.sftp import SftpDrop

logger = logging.getLogger("adapter.departments")

BOM = "\ufeff"
PROCESSED = "processed"
# Department exports are in Pakistan Standard Time (UTC+5, no daylight saving) unless they say
# otherwise: naive times and dates are read in it.
PKT = timezone(timedelta(hours=5), "PKT")
MAX_FILE_BYTES = 64 * 1024 * 1024

# --- the format ------------------------------------------------------------------------------


class CsvFormatError(ValueError):
    """A file is not a CSV table the adapter can read (the message says why, without data)."""


def write_csv(rows: Sequence[Mapping[str, str]]) -> bytes:
    """Rows as a CSV file: the header is every column in first-seen order; a missing cell is
    empty."""
    columns: dict[str, None] = {}
    for row in rows:
        columns.update(dict.fromkeys(row))
    buffer = io.StringIO(newline="")
    writer = csv.DictWriter(buffer, fieldnames=list(columns), restval="", lineterminator="\r\n")
    writer.writeheader()
    writer.writerows(rows)
    return (BOM + buffer.getvalue()).encode("utf-8")


def read_table(data: bytes) -> tuple[list[str], list[list[str]]]:
    """The header and the data rows of a CSV file, exactly as written (nothing stripped).
    Raises ``CsvFormatError``."""
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise CsvFormatError(
            "the file is not UTF-8; save it as 'CSV UTF-8 (comma delimited)'"
        ) from None
    try:
        records = list(csv.reader(io.StringIO(text, newline=""), strict=True))
    except csv.Error as exc:
        raise CsvFormatError(f"the file is not valid CSV ({exc})") from None
    if not records or not any(records[0]):
        raise CsvFormatError("the file has no header row")
    return records[0], records[1:]


def read_csv(data: bytes) -> list[dict[str, str]]:
    """The rows of a CSV file written by ``write_csv`` (the inverse of it)."""
    header, rows = read_table(data)
    if len(set(header)) != len(header):
        raise CsvFormatError("the header names a column twice")
    return [dict(zip(header, row, strict=True)) for row in rows]


def sha256_sidecar(name: str, data: bytes) -> bytes:
    """The ``<name>.sha256`` sidecar of a file, in ``sha256sum`` format."""
    return f"{hashlib.sha256(data).hexdigest()}  {name}\n".encode()


def verify_sidecar(data: bytes, sidecar: bytes) -> tuple[bool, str]:
    """Whether ``data`` matches its sidecar, and why not (``(ok, reason)``)."""
    match = re.match(rb"\s*([0-9a-fA-F]{64})\b", sidecar)
    if match is None:
        return False, "the .sha256 file does not start with a SHA-256 hex digest"
    if match.group(1).decode().lower() != hashlib.sha256(data).hexdigest():
        return False, (
            "checksum mismatch: the file's SHA-256 differs from its .sha256 file "
            "(incomplete or altered upload); upload it again"
        )
    return True, "checksum verified"


# --- record types ----------------------------------------------------------------------------


def _local_date(value: object) -> object:
    # Excel in Pakistan writes dates day-first (en-PK/en-GB); ISO dates pass through.
    if isinstance(value, str):
        found = re.fullmatch(r"(\d{1,2})[/.-](\d{1,2})[/.-](\d{4})", value)
        if found:
            day, month, year = (int(g) for g in found.groups())
            try:
                return date(year, month, day)
            except ValueError:
                raise ValueError("not a valid day-first date (DD/MM/YYYY)") from None
    return value


_When = TypeVar("_When", date, datetime)


def _plausible(value: _When) -> _When:
    # Year 1 or 9999 is a typing error, and such a time cannot even be converted to UTC where
    # the engine stores it (OverflowError: tests/fuzz/test_department_files.py).
    if not 1900 <= value.year <= 2199:
        raise ValueError("must be in a year from 1900 to 2199")
    return value


Day = Annotated[date, BeforeValidator(_local_date), AfterValidator(_plausible)]
Moment = Annotated[datetime, AfterValidator(_plausible)]
Reference = Annotated[str, Field(min_length=1, max_length=100, pattern=r"^[\w./ -]+$")]


class InboundRow(BaseModel):
    """A row of a department's file, after its columns were renamed to these fields; the
    methods say what it means in the adapter's status vocabulary (``adapter.departments.base``).
    """

    model_config = ConfigDict(extra="ignore", str_strip_whitespace=True, frozen=True)

    record_type: ClassVar[str] = "referral"
    referral_key: str | None = Field(None, max_length=200, pattern=r"^[\w.:-]+$")
    case_code: str | None = Field(None, max_length=200, pattern=r"^[\w.:-]+$")
    updated_at: Moment | None = None

    def cross_check(self) -> list[tuple[str, str]]:
        """Problems between fields, as ``(field, reason)``."""
        return []

    def adapter_status(self) -> str:
        raise NotImplementedError

    def reference(self) -> str | None:
        """The department's reference for its record (``StatusUpdate.external_ref``)."""
        return None

    def facts(self) -> dict[str, str]:
        """Short facts shown to the CPO in the linked record (``StatusUpdate.details``)."""
        return {}

    def changed_at(self) -> datetime | None:
        return _aware(self.updated_at)

    def provider_note(self) -> str | None:
        return None

    def coded_reason(self) -> str | None:
        return None


def _known_status(value: str) -> str:
    if value not in STATUSES:
        raise ValueError(f"must be one of {', '.join(STATUSES)}")
    return value


class ReferralStatusRow(InboundRow):
    """A department's answer to a referral, in the adapter's own status words."""

    record_type: ClassVar[str] = "referral"
    status: Annotated[str, AfterValidator(_known_status)]
    external_ref: Reference | None = None
    reason: str | None = Field(None, pattern=r"^[a-z0-9_.-]{1,64}$")
    # The provider's short note is shown to the CPO (never logged, never in a reject file).
    note: str | None = Field(None, max_length=500)

    def adapter_status(self) -> str:
        return self.status

    def reference(self) -> str | None:
        return self.external_ref

    def provider_note(self) -> str | None:
        return self.note

    def coded_reason(self) -> str | None:
        return self.reason


# An order in force means the referral is being acted on; a discharged order closes it.
_ORDER_STATUS: dict[CourtOrderStatus, str] = {
    "active": IN_PROGRESS,
    "varied": IN_PROGRESS,
    "appealed": IN_PROGRESS,
    "discharged": COMPLETED,
}


class CourtOrderRow(InboundRow):
    """A court order about the child (departments.md §5, "court-order record (minimum)")."""

    record_type: ClassVar[str] = "court_order"
    court: str = Field(min_length=1, max_length=200)
    case_number: Reference
    order_number: Reference | None = None
    order_type: CourtOrderType
    order_date: Day
    effective_from: Day | None = None
    effective_to: Day | None = None
    review_date: Day | None = None
    next_hearing_date: Day | None = None
    status: CourtOrderStatus = "active"

    def cross_check(self) -> list[tuple[str, str]]:
        if self.effective_from and self.effective_to and self.effective_to < self.effective_from:
            return [("effective_to", "is before effective_from")]
        return []

    def adapter_status(self) -> str:
        return _ORDER_STATUS[self.status]

    def reference(self) -> str | None:
        return self.case_number

    def facts(self) -> dict[str, str]:
        return _texts(
            court=self.court,
            case_number=self.case_number,
            order_number=self.order_number,
            order_type=self.order_type,
            order_date=self.order_date,
            effective_from=self.effective_from,
            effective_to=self.effective_to,
            review_date=self.review_date,
            next_hearing_date=self.next_hearing_date,
            order_status=self.status,
        )

    def changed_at(self) -> datetime | None:
        return _aware(self.updated_at) or _aware(self.order_date)


# NADRA / union-council reconciliation (departments.md §3, "minimal verification response"):
# only the match flag and registration numbers come back (data minimisation).
_MATCH_STATUS = {
    "match": COMPLETED,
    "no_match": COMPLETED,  # answered: the child is not registered (the CPO acts on it)
    "multiple": IN_PROGRESS,  # the union council must resolve it
    "partial": IN_PROGRESS,
}
RegistrationNumber = Annotated[str, Field(min_length=1, max_length=40, pattern=r"^[0-9A-Za-z/-]+$")]


class BirthRegistrationRow(InboundRow):
    """A reconciliation answer from NADRA or a union council."""

    record_type: ClassVar[str] = "birth_registration"
    match_status: Literal["match", "no_match", "multiple", "partial"]
    registration_number: RegistrationNumber | None = None
    registration_date: Day | None = None
    crc_number: RegistrationNumber | None = None
    checked_at: Moment | None = None

    def cross_check(self) -> list[tuple[str, str]]:
        if self.match_status == "match" and not self.registration_number:
            return [("registration_number", "is required when match_status is 'match'")]
        return []

    def adapter_status(self) -> str:
        return _MATCH_STATUS[self.match_status]

    def reference(self) -> str | None:
        return self.registration_number

    def facts(self) -> dict[str, str]:
        return _texts(
            match_status=self.match_status,
            registration_number=self.registration_number,
            registration_date=self.registration_date,
            crc_number=self.crc_number,
        )

    def changed_at(self) -> datetime | None:
        return _aware(self.updated_at) or _aware(self.checked_at)


ROW_TYPES: dict[str, type[InboundRow]] = {
    row.record_type: row for row in (ReferralStatusRow, CourtOrderRow, BirthRegistrationRow)
}


class DeclaredRow(InboundRow):
    """A row of a record type a mapping file declares (``[record_types.<name>]``, e.g. a labour
    inspection): its status in the department's words, its reference, a note and the declared
    facts. ``declared_row`` makes one class per record type."""

    statuses: ClassVar[Mapping[str, str]] = {}
    fact_names: ClassVar[tuple[str, ...]] = ()
    status: str = Field(min_length=1, max_length=64)
    external_ref: Reference | None = None
    reason: str | None = Field(None, pattern=r"^[a-z0-9_.-]{1,64}$")
    # The department's short note is shown to the CPO (never logged, never in a reject file).
    note: str | None = Field(None, max_length=500)

    @field_validator("status")
    @classmethod
    def _declared_status(cls, value: str) -> str:
        if value not in cls.statuses:
            raise ValueError(f"must be one of {', '.join(cls.statuses)}")
        return value

    def adapter_status(self) -> str:
        return self.statuses[self.status]

    def reference(self) -> str | None:
        return self.external_ref

    def facts(self) -> dict[str, str]:
        return _texts(status=self.status, **{n: getattr(self, n) for n in self.fact_names})

    def provider_note(self) -> str | None:
        return self.note

    def coded_reason(self) -> str | None:
        return self.reason


Fact = Annotated[str, Field(min_length=1, max_length=200)]


def declared_row(
    record_type: str, statuses: Mapping[str, str], details: Sequence[str] = ()
) -> type[InboundRow]:
    """The row class of a declared record type: ``statuses`` maps the department's status
    words onto the adapter's; ``details`` are the facts a row may carry (short text)."""
    taken = sorted(set(details) & set(DeclaredRow.model_fields))
    if taken:
        raise ConfigError(
            f"record type {record_type}: details {', '.join(taken)} are fields every row has; "
            "choose other names."
        )
    fields: dict[str, Any] = {name: (Fact | None, None) for name in details}
    row: type[DeclaredRow] = create_model(
        f"DeclaredRow_{record_type}", __base__=DeclaredRow, **fields
    )
    row.record_type = record_type
    row.statuses = dict(statuses)
    row.fact_names = tuple(details)
    return row


@dataclass(frozen=True)
class InboundFormat:
    """What a department's files hold: a record type and how its column names map onto the
    record's fields (``{"Case No.": "case_number"}``). Headers are compared case-insensitively
    with spaces and hyphens read as underscores, so ``Order Date`` needs no entry.

    The record type is one of ``ROW_TYPES`` or, given its ``statuses`` (the mapping file's
    ``[record_types.<name>]``), a declared one (``declared_row``)."""

    record_type: str
    columns: Mapping[str, str] = field(default_factory=dict)
    statuses: Mapping[str, str] = field(default_factory=dict)
    details: Sequence[str] = ()

    def __post_init__(self) -> None:
        if self.record_type in ROW_TYPES:
            row_type = ROW_TYPES[self.record_type]
        elif self.statuses:
            row_type = declared_row(self.record_type, self.statuses, self.details)
        else:
            raise ConfigError(
                f"inbound record_type '{self.record_type}' is unknown; use one of "
                f"{', '.join(sorted(ROW_TYPES))} or declare it with its statuses in the mapping "
                f"file ([record_types.{self.record_type}])."
            )
        object.__setattr__(self, "_row_type", row_type)
        fields = _field_names(row_type)
        unknown = sorted(set(self.columns.values()) - fields)
        if unknown:
            raise ConfigError(
                f"inbound columns map onto unknown field(s) {', '.join(unknown)} of "
                f"{self.record_type}; known: {', '.join(sorted(fields))}."
            )

    @property
    def row_type(self) -> type[InboundRow]:
        row_type: type[InboundRow] = getattr(self, "_row_type")  # noqa: B009 - set in __post_init__
        return row_type

    def field_of(self, header: str) -> str | None:
        names = {_normal(k): v for k, v in self.columns.items()}
        key = _normal(header)
        if key in names:
            return names[key]
        return key if key in _field_names(self.row_type) else None


# --- parsing one file ------------------------------------------------------------------------


@dataclass(frozen=True)
class Reject:
    """Why one row was not imported: row 0 is the whole file."""

    row: int
    field: str
    reason: str


@dataclass(frozen=True)
class ParsedFile:
    """The outcome of one file: its good rows as updates, and what was rejected."""

    updates: list[StatusUpdate]
    rejects: list[Reject]
    refused: str | None = None  # why the whole file was rejected, if it was

    def rejects_csv(self) -> bytes:
        return write_csv(
            [{"row": str(r.row), "field": r.field, "reason": r.reason} for r in self.rejects]
        )


ResolveCaseCode = Callable[[str], str | None]


def parse_file(
    data: bytes,
    fmt: InboundFormat,
    *,
    sidecar: bytes | None = None,
    resolve_case_code: ResolveCaseCode | None = None,
) -> ParsedFile:
    """Validate a department's file row by row (pure: no I/O)."""
    if sidecar is not None:
        ok, reason = verify_sidecar(data, sidecar)
        if not ok:
            return _refused(reason)
    try:
        header, rows = read_table(data)
    except CsvFormatError as exc:
        return _refused(str(exc))
    fields = [fmt.field_of(h) for h in header]
    mapped = [f for f in fields if f]
    if len(set(mapped)) != len(mapped):
        twice = sorted({f for f in mapped if mapped.count(f) > 1})
        return _refused(f"more than one column maps onto {', '.join(twice)}")
    if "referral_key" not in mapped and "case_code" not in mapped:
        return _refused("the header has neither a referral_key nor a case_code column")
    missing = sorted(_required(fmt.row_type) - set(mapped))
    if missing:
        return _refused(f"the header lacks the required column(s) {', '.join(missing)}")

    updates: list[StatusUpdate] = []
    rejects: list[Reject] = []
    for number, cells in enumerate(rows, start=2):
        if not any(c.strip() for c in cells):
            continue  # a blank line (Excel leaves some at the end)
        if len(cells) > len(header):
            rejects.append(
                Reject(number, "", f"has {len(cells)} cells; the header has {len(header)}")
            )
            continue
        values = {f: c for f, c in zip(fields, cells, strict=False) if f and c.strip()}
        outcome = _parse_row(values, fmt.row_type, resolve_case_code)
        if isinstance(outcome, StatusUpdate):
            updates.append(outcome)
        else:
            rejects.extend(Reject(number, name, reason) for name, reason in outcome)
    return ParsedFile(updates, rejects)


def _parse_row(
    values: dict[str, str], row_type: type[InboundRow], resolve: ResolveCaseCode | None
) -> StatusUpdate | list[tuple[str, str]]:
    try:
        row = row_type.model_validate(values)
    except ValidationError as exc:
        # pydantic's messages describe the rule, never the input; the input is left out.
        return [
            (str(e["loc"][0]) if e["loc"] else "", e["msg"])
            for e in exc.errors(include_input=False, include_url=False)
        ]
    problems = row.cross_check()
    referral_key = row.referral_key
    if referral_key is None and row.case_code is not None:
        if resolve is None:
            problems.append(
                ("referral_key", "is required (case_code alone cannot be matched here)")
            )
        else:
            referral_key = resolve(row.case_code)
            if referral_key is None:
                problems.append(("case_code", "matches no referral the adapter sent"))
    elif referral_key is None:
        problems.append(("referral_key", "is required (or case_code)"))
    if problems or referral_key is None:
        return problems
    content = row.model_dump(mode="json")
    version = hashlib.sha256(
        json.dumps([row.record_type, content], sort_keys=True).encode()
    ).hexdigest()[:16]
    return StatusUpdate(
        referral_key=referral_key,
        status=row.adapter_status(),
        external_ref=row.reference(),
        reason=row.coded_reason(),
        note=row.provider_note(),
        updated_at=row.changed_at(),
        version=version,
        record_type=row.record_type,
        details=row.facts(),
    )


def _refused(reason: str) -> ParsedFile:
    return ParsedFile([], [Reject(0, "", reason)], refused=reason)


# --- importing a drop ------------------------------------------------------------------------


class CsvImporter:
    """Imports the department's files from its SFTP drop (see the module docstring)."""

    def __init__(
        self,
        drop: SftpDrop,
        settings: SftpSettings,
        fmt: InboundFormat,
        *,
        resolve_case_code: ResolveCaseCode | None = None,
        max_bytes: int = MAX_FILE_BYTES,
    ) -> None:
        directories = {settings.outbound_dir, settings.inbound_dir, settings.rejects_dir}
        if len(directories) != 3:
            # Otherwise the adapter would import its own outbound files or reject reports.
            raise ConfigError("sftp: outbound_dir, inbound_dir and rejects_dir must differ.")
        self.drop = drop
        self.inbound = settings.inbound_dir
        self.rejects = settings.rejects_dir
        self.processed = f"{settings.inbound_dir.rstrip('/')}/{PROCESSED}"
        self.fmt = fmt
        self.resolve_case_code = resolve_case_code
        self.max_bytes = max_bytes

    def status_updates(self) -> Iterator[tuple[StatusUpdate, str]]:
        """Each good row of each complete file, with the file's name as the watermark.

        The processed/ directory, not the watermark, decides what is new: department file
        names need not sort by time (``orders-march.csv``), so a name watermark could skip a
        late file. A file moves there after its last row was taken."""
        files = self.drop.list_files(self.inbound)
        names = {f.name for f in files}
        for remote in files:
            # Only complete files: "x.csv.part" (still uploading) and "x.csv.sha256" do not match.
            if remote.name.lower().endswith(".csv"):
                yield from self._import(remote.name, remote.size, names)

    def _import(self, name: str, size: int, names: set[str]) -> Iterator[tuple[StatusUpdate, str]]:
        sidecar_name = name + ".sha256"
        has_sidecar = sidecar_name in names
        if size > self.max_bytes:
            parsed = _refused(f"the file is larger than {self.max_bytes} bytes; split it")
        else:
            data = self.drop.read(self.inbound, name)
            sidecar = self.drop.read(self.inbound, sidecar_name) if has_sidecar else None
            parsed = parse_file(
                data, self.fmt, sidecar=sidecar, resolve_case_code=self.resolve_case_code
            )
        if parsed.rejects:
            self.drop.put_atomic(self.rejects, f"{name}.rejects.csv", parsed.rejects_csv())
        if parsed.refused:
            self._move(name, has_sidecar, self.rejects, name)
            logger.warning(
                "a department file was rejected whole", extra={"department_dir": self.inbound}
            )
            return
        for update in parsed.updates:
            yield update, name
        # Only now, after the consumer took every row: a crash before this re-imports the file.
        self.drop.ensure_directory(self.processed)
        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
        self._move(name, has_sidecar, self.processed, f"{stamp}-{name}")
        logger.info(
            "imported a department file",
            extra={
                "rows": len(parsed.updates),
                "rejected_rows": len({r.row for r in parsed.rejects}),
            },
        )

    def _move(self, name: str, has_sidecar: bool, directory: str, to_name: str) -> None:
        # The sidecar first: after a crash in between, the file is re-imported unverified (it
        # was verified once); the other order would leave a stale sidecar that fails the
        # department's next file of the same name.
        if has_sidecar:
            self.drop.move(self.inbound, name + ".sha256", directory, to_name + ".sha256")
        self.drop.move(self.inbound, name, directory, to_name)


# --- small helpers ---------------------------------------------------------------------------


def _normal(header: str) -> str:
    return re.sub(r"[\s-]+", "_", header.strip().casefold())


def _field_names(row_type: type[InboundRow]) -> set[str]:
    return set(row_type.model_fields)


def _required(row_type: type[InboundRow]) -> set[str]:
    return {name for name, info in row_type.model_fields.items() if info.is_required()}


def _texts(**values: object) -> dict[str, str]:
    return {k: v.isoformat() if isinstance(v, date) else str(v) for k, v in values.items() if v}


def _aware(value: date | datetime | None) -> datetime | None:
    if value is None:
        return None
    if not isinstance(value, datetime):
        value = datetime(value.year, value.month, value.day)
    return value if value.tzinfo else value.replace(tzinfo=PKT)
