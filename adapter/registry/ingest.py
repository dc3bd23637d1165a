"""Getting entries into the registry: court conviction orders and signed CSV imports.

**Signed import** (issue 6 item 1). A registry officer exports an extract (e.g. of the national
register under a DPISP), signs it and hands over two files:

* the CSV, UTF-8 (a BOM is allowed), with exactly the header :data:`CSV_COLUMNS` in any order;
  ``cnic``, ``father_name`` and the two Urdu names may be empty, the rest are required; dates
  are ``YYYY-MM-DD``; ``offence_code`` must be one of ``registry.offences``;
* the detached signature: Ed25519 over the 32-byte SHA-256 digest of the CSV file, as base64
  text (or the raw 64 bytes), made with the officer's private key. The public key is
  ``registry.officer_keys.<officer>``. ``cpims-adapter registry sign`` makes one.

The signature is checked before anything is parsed; any invalid row refuses the whole file.
Either way nothing is written (one transaction). A file imported once is refused the second time
(by digest); a row whose ``(source, source_ref)`` is already registered is left unchanged.
"""

from __future__ import annotations

import base64
import binascii
import csv
import hashlib
import re
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from sqlalchemy.engine import Connection

from adapter.privacy.errors import IdentifierError
from adapter.privacy.events import record_security_event
from adapter.privacy.normalise import normalise_cnic
from adapter.registry import _audit, monitoring
from adapter.registry._context import Context, new_ref
from adapter.registry._crypto import seal
from adapter.registry._tables import (
    inserted_id,
    registry_blocks,
    registry_entries,
    registry_imports,
)
from adapter.registry.errors import ImportRefused, SignatureInvalid
from adapter.registry.index import EntryIndex, block_rows, index_entry
from adapter.registry.models import (
    ConvictionOrder,
    EntryDraft,
    EntryStatus,
    Identity,
    ImportResult,
    IngestResult,
    RegistryEventKind,
    check_name,
)
from adapter.registry.review import remove_entry

CSV_COLUMNS = (
    "source_ref",
    "cnic",
    "full_name",
    "father_name",
    "full_name_urdu",
    "father_name_urdu",
    "date_of_birth",
    "offence_code",
    "conviction_date",
    "court",
)
_REQUIRED = ("source_ref", "full_name", "date_of_birth", "offence_code", "conviction_date")
_SOURCE_REF = re.compile(r"^[\w./:-]{1,100}$")
_SOURCE = re.compile(r"^[a-z0-9][a-z0-9_-]{1,39}$")
_MAX_PROBLEMS = 50
_BATCH = 2000


# --- signatures ------------------------------------------------------------------------------


def file_sha256(path: Path) -> bytes:
    """The SHA-256 digest of a file, read in 1 MiB chunks."""
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.digest()


def sign_file(path: Path, private_key: Ed25519PrivateKey) -> bytes:
    """The detached signature of ``path`` as base64 text (what an officer hands over)."""
    return base64.b64encode(private_key.sign(file_sha256(path))) + b"\n"


def read_signature(path: Path) -> bytes:
    raw = path.read_bytes()
    if len(raw) == 64:
        return raw
    try:
        decoded = base64.b64decode(raw.strip(), validate=True)
    except (binascii.Error, ValueError):
        decoded = b""
    if len(decoded) != 64:
        raise SignatureInvalid(
            f"{path.name}: not an Ed25519 signature (64 raw bytes or their base64)."
        )
    return decoded


def verify_signature(digest: bytes, signature: bytes, public_key_b64: str) -> None:
    """Raise SignatureInvalid unless ``signature`` is the key's Ed25519 signature of ``digest``."""
    key = Ed25519PublicKey.from_public_bytes(base64.b64decode(public_key_b64))
    try:
        key.verify(signature, digest)
    except InvalidSignature:
        raise SignatureInvalid(
            "the signature does not match this file and officer: the file was changed after "
            "signing, or signed by someone else. Nothing was imported."
        ) from None


# --- CSV rows --------------------------------------------------------------------------------


def _parse_date(text: str) -> date:
    if not re.match(r"^\d{4}-\d{2}-\d{2}$", text):
        raise ValueError("must be YYYY-MM-DD")
    return date.fromisoformat(text)


def parse_row(row: dict[str, str], *, source: str, offences: frozenset[str]) -> EntryDraft:
    """One CSV row as an entry draft; ValueError names the column, never the value."""
    for column in _REQUIRED:
        if not (row.get(column) or "").strip():
            raise ValueError(f"{column} is empty")
    values = {k: (v or "").strip() for k, v in row.items()}
    if not _SOURCE_REF.match(values["source_ref"]):
        raise ValueError("source_ref may hold letters, digits and . / : - _ (≤ 100)")
    try:
        cnic = normalise_cnic(values["cnic"]) if values["cnic"] else None
    except IdentifierError as exc:
        raise ValueError(f"cnic: {exc}") from None
    names: dict[str, str | None] = {}
    for column in ("full_name", "father_name", "full_name_urdu", "father_name_urdu"):
        text = values[column]
        if len(text) > 200:
            raise ValueError(f"{column} is longer than 200 characters")
        try:
            names[column] = check_name(text) if text else None
        except ValueError as exc:
            raise ValueError(f"{column} {exc}") from None
    try:
        dob = _parse_date(values["date_of_birth"])
        convicted = _parse_date(values["conviction_date"])
    except ValueError:
        raise ValueError("date_of_birth and conviction_date must be YYYY-MM-DD") from None
    if values["offence_code"] not in offences:
        raise ValueError("offence_code is not one of registry.offences")
    full_name = names["full_name"]
    assert full_name is not None
    identity = Identity(
        cnic,
        full_name,
        names["father_name"],
        names["full_name_urdu"],
        names["father_name_urdu"],
        dob,
    )
    return EntryDraft(
        source=source,
        source_ref=values["source_ref"],
        identity=identity,
        offence_code=values["offence_code"],
        conviction_date=convicted,
        court=values["court"][:80],
    )


def _read_rows(path: Path) -> Iterator[tuple[int, dict[str, str]]]:
    reader: csv.DictReader[str] | None = None
    try:
        with path.open(encoding="utf-8-sig", newline="") as handle:
            reader = csv.DictReader(handle, strict=True)
            header = tuple(reader.fieldnames or ())
            if sorted(header) != sorted(CSV_COLUMNS):
                missing = sorted(set(CSV_COLUMNS) - set(header))
                extra = sorted(set(header) - set(CSV_COLUMNS))
                raise ImportRefused(
                    f"{path.name}: the header must be exactly {', '.join(CSV_COLUMNS)} "
                    f"(missing: {', '.join(missing) or 'none'}; "
                    f"unknown: {', '.join(extra) or 'none'})."
                )
            for row in reader:
                if None in row:
                    raise ImportRefused(
                        f"{path.name} line {reader.line_num}: more fields than columns."
                    )
                yield reader.line_num, row
    # A file saved in another encoding, a stray quote or a field over csv's limit used to
    # escape as a bare UnicodeDecodeError or csv.Error: a traceback at the CLI
    # (tests/fuzz/test_registry_import.py).
    except UnicodeDecodeError:
        raise ImportRefused(
            f"{path.name}: not UTF-8 text; export it as CSV UTF-8 and sign it again. "
            "Nothing was imported."
        ) from None
    except csv.Error as exc:
        # csv's messages name the rule broken ("',' expected after '\"'"), never a value.
        where = f" after line {reader.line_num}" if reader is not None else ""
        raise ImportRefused(
            f"{path.name}{where}: not valid CSV ({exc}). Nothing was imported."
        ) from None


# --- writing entries -------------------------------------------------------------------------


@dataclass(frozen=True)
class _Prepared:
    row: dict[str, Any]
    index: EntryIndex
    identity: Identity
    status: EntryStatus


def _prepare(ctx: Context, draft: EntryDraft, now: datetime, import_id: int | None) -> _Prepared:
    entry_ref = new_ref("RE")
    index = index_entry(draft.identity, ctx.keys)
    sealed, wrapped = seal(
        ctx.keyring,
        {
            "identity": draft.identity.to_json(),
            "offence_code": draft.offence_code,
            "conviction_date": draft.conviction_date.isoformat(),
            "court": draft.court,
        },
        b"entry|" + entry_ref.encode(),
    )
    review_due = now + timedelta(days=round(365.25 * ctx.settings.entry_review_years))
    row = {
        "entry_ref": entry_ref,
        "source": draft.source,
        "source_ref": draft.source_ref,
        "import_id": import_id,
        "cnic_mac": index.cnic_mac,
        "status": str(draft.status),
        "sealed": sealed,
        "wrapped_dek": wrapped,
        "block_keys": " ".join(index.block_keys),
        "created_at": now,
        "updated_at": now,
        "review_due": review_due,
    }
    return _Prepared(row, index, draft.identity, draft.status)


def _insert(conn: Connection, prepared: Sequence[_Prepared]) -> list[monitoring.NewEntry]:
    if not prepared:
        return []
    # A plain executemany, then the ids by reference: SQLAlchemy cannot batch an ordered
    # RETURNING on SQLite and would send one INSERT per row (10x slower).
    conn.execute(registry_entries.insert(), [p.row for p in prepared])
    by_ref: dict[str, int] = {}
    refs = [p.row["entry_ref"] for p in prepared]
    for start in range(0, len(refs), 500):
        chunk = refs[start : start + 500]
        rows = conn.execute(
            sa.select(registry_entries.c.entry_ref, registry_entries.c.id).where(
                registry_entries.c.entry_ref.in_(chunk)
            )
        )
        by_ref.update((str(ref), int(entry_id)) for ref, entry_id in rows)
    ids = [by_ref[ref] for ref in refs]
    blocks = [
        block
        for entry_id, p in zip(ids, prepared, strict=True)
        for block in block_rows(p.index, entry_id)
    ]
    if blocks:
        conn.execute(registry_blocks.insert(), blocks)
    return [
        monitoring.NewEntry(entry_id, p.row["entry_ref"], p.row["cnic_mac"], p.identity, p.status)
        for entry_id, p in zip(ids, prepared, strict=True)
    ]


def import_signed_csv(
    ctx: Context,
    path: Path,
    signature_path: Path,
    officer: str,
    *,
    source: str = "national_register",
    now: datetime,
    on_progress: Callable[[int, int | None], None] | None = None,
) -> tuple[ImportResult, list[int]]:
    """Verify, validate and register every row of ``path`` in one transaction.

    Returns the result and the ids of notifications to dispatch after commit.
    """
    started = time.perf_counter()
    digest = _verified_digest(ctx, path, signature_path, officer, source, now)
    full_source = f"import:{source}"
    batch_ref = new_ref("RB")
    with ctx.store.transaction() as conn:
        import_id = _open_import(conn, path, digest, batch_ref, full_source, officer, now)
        batch = _Batch(ctx, conn, full_source, import_id, now)
        rows = _register_rows(batch, path, on_progress)
        conn.execute(
            registry_imports.update()
            .where(registry_imports.c.id == import_id)
            .values(rows=rows, created=batch.created, unchanged=batch.unchanged)
        )
        _audit.record(
            conn,
            ctx.keyring,
            "registry_import",
            now=now,
            ref=batch_ref,
            count=batch.created,
            officer=officer,
            source=full_source,
            sha256=digest.hex()[:16],
            unchanged=str(batch.unchanged),
        )
    elapsed = time.perf_counter() - started
    result = ImportResult(batch_ref, rows, batch.created, batch.unchanged, elapsed)
    return result, batch.notify


def _verified_digest(
    ctx: Context, path: Path, signature_path: Path, officer: str, source: str, now: datetime
) -> bytes:
    """The file's SHA-256, once the officer's signature over it checks out. A signature that
    does not is recorded as a security event before it is refused."""
    public_key = ctx.settings.officer_keys.get(officer)
    if public_key is None:
        raise SignatureInvalid(
            f"officer '{officer}' has no public key in registry.officer_keys: only a configured "
            "registry officer may sign an import."
        )
    if not _SOURCE.match(source):
        raise ImportRefused("source must be 2-40 lowercase letters, digits, '_' or '-'.")
    digest = file_sha256(path)
    try:
        verify_signature(digest, read_signature(signature_path), public_key)
    except SignatureInvalid:
        with ctx.store.transaction() as conn:
            record_security_event(
                conn,
                RegistryEventKind.IMPORT_SIGNATURE,
                department=None,
                detail=f"an import signed as officer '{officer[:60]}' failed verification",
                now=now,
            )
        raise
    return digest


def _open_import(
    conn: Connection,
    path: Path,
    digest: bytes,
    batch_ref: str,
    full_source: str,
    officer: str,
    now: datetime,
) -> int:
    """The import's row (counts filled in at the end); a file imported before is refused."""
    if conn.execute(
        sa.select(registry_imports.c.id).where(registry_imports.c.file_sha256 == digest.hex())
    ).first():
        raise ImportRefused(f"{path.name} was imported before (same SHA-256); nothing to do.")
    return inserted_id(
        conn.execute(
            registry_imports.insert().values(
                batch_ref=batch_ref,
                source=full_source,
                officer=officer,
                file_sha256=digest.hex(),
                rows=0,
                created=0,
                unchanged=0,
                imported_at=now,
            )
        )
    )


class _Batch:
    """Valid rows waiting to be written, and the running counts of an import."""

    def __init__(
        self, ctx: Context, conn: Connection, full_source: str, import_id: int, now: datetime
    ) -> None:
        self.ctx, self.conn, self.full_source = ctx, conn, full_source
        self.import_id, self.now = import_id, now
        self.pending: list[tuple[int, EntryDraft]] = []
        self.created = self.unchanged = 0
        self.notify: list[int] = []

    def flush(self) -> None:
        """Write the pending rows whose source_ref the registry does not hold yet."""
        refs = [d.source_ref for _, d in self.pending]
        existing = set(
            self.conn.execute(
                sa.select(registry_entries.c.source_ref).where(
                    registry_entries.c.source == self.full_source,
                    registry_entries.c.source_ref.in_(refs),
                )
            ).scalars()
        )
        fresh = [
            _prepare(self.ctx, d, self.now, self.import_id)
            for _, d in self.pending
            if d.source_ref not in existing
        ]
        self.unchanged += len(self.pending) - len(fresh)
        self.created += len(fresh)
        new = _insert(self.conn, fresh)
        self.notify.extend(monitoring.on_new_entries(self.ctx, self.conn, new, now=self.now))
        self.pending.clear()


def _register_rows(
    batch: _Batch, path: Path, on_progress: Callable[[int, int | None], None] | None
) -> int:
    """Validate every row and write the valid ones in batches; the number of rows. Any invalid
    row refuses the whole file (the caller's transaction writes nothing)."""
    offences = frozenset(batch.ctx.settings.offences)
    problems: list[str] = []
    rows = 0
    seen: dict[str, int] = {}
    for line, row in _read_rows(path):
        rows += 1
        try:
            draft = parse_row(row, source=batch.full_source, offences=offences)
        except ValueError as exc:
            problems.append(f"line {line}: {exc}")
        else:
            if draft.source_ref in seen:
                problems.append(f"line {line}: source_ref repeats line {seen[draft.source_ref]}")
            seen[draft.source_ref] = line
            if not problems:
                batch.pending.append((line, draft))
        if len(problems) >= _MAX_PROBLEMS:
            break
        if len(batch.pending) >= _BATCH:
            batch.flush()
            if on_progress is not None:
                on_progress(rows, None)
    if problems:
        raise ImportRefused(
            f"{path.name}: {len(problems)} invalid row(s); nothing was imported. Fix and "
            "sign the file again.",
            problems=tuple(problems),
        )
    if rows == 0:
        raise ImportRefused(f"{path.name} has a header but no rows; nothing to import.")
    batch.flush()
    if on_progress is not None:
        on_progress(rows, rows)
    return rows


# --- court orders ----------------------------------------------------------------------------


def ingest_conviction(
    ctx: Context, order: ConvictionOrder, *, now: datetime
) -> tuple[IngestResult, list[int]]:
    """Register (or update) the entry of one conviction order; idempotent per order.

    The court connector calls this for every order it receives, as often as it receives it.
    """
    if order.offence_code not in ctx.settings.offences:
        return IngestResult("not_registrable", None), []
    source = f"court:{order.court}"
    target = {
        "none": EntryStatus.ACTIVE,
        "under_appeal": EntryStatus.UNDER_APPEAL,
        "overturned": EntryStatus.REMOVED,
    }[order.appeal_state]
    with ctx.store.transaction() as conn:
        row = conn.execute(
            sa.select(
                registry_entries.c.id, registry_entries.c.entry_ref, registry_entries.c.status
            ).where(
                registry_entries.c.source == source,
                registry_entries.c.source_ref == order.order_ref,
            )
        ).first()
        if row is None:
            if target is EntryStatus.REMOVED:
                return IngestResult("unchanged", None), []
            return _add_entry(ctx, conn, order, source, target, now)
        current = EntryStatus(row.status)
        if current is EntryStatus.REMOVED or current is target:
            # A removed entry stays removed: re-delivering the original order must not bring
            # back what an officer or an appeal court took off the register.
            return IngestResult("unchanged", row.entry_ref), []
        return _change_status(ctx, conn, row, order, source, target, now)


def _add_entry(
    ctx: Context,
    conn: Connection,
    order: ConvictionOrder,
    source: str,
    target: EntryStatus,
    now: datetime,
) -> tuple[IngestResult, list[int]]:
    """The order's entry, new on the register (and compared with monitored workers)."""
    draft = EntryDraft(
        source=source,
        source_ref=order.order_ref,
        identity=Identity(
            order.cnic,
            order.full_name,
            order.father_name,
            order.full_name_urdu,
            order.father_name_urdu,
            order.date_of_birth,
        ),
        offence_code=order.offence_code,
        conviction_date=order.order_date,
        court=order.court,
        status=target,
    )
    new = _insert(conn, [_prepare(ctx, draft, now, None)])
    _audit.record(
        conn,
        ctx.keyring,
        "registry_entry_added",
        now=now,
        subject=new[0].cnic_mac,
        ref=new[0].entry_ref,
        count=1,
        source=source,
        status=str(target),
    )
    notify = monitoring.on_new_entries(ctx, conn, new, now=now)
    return IngestResult("created", new[0].entry_ref), notify


def _change_status(
    ctx: Context,
    conn: Connection,
    row: Any,
    order: ConvictionOrder,
    source: str,
    target: EntryStatus,
    now: datetime,
) -> tuple[IngestResult, list[int]]:
    """An existing entry moved to ``target``: removed when the conviction is overturned, else
    its status changed (an entry active again is compared with monitored workers again)."""
    if target is EntryStatus.REMOVED:
        remove_entry(
            ctx,
            conn,
            int(row.id),
            "conviction overturned on appeal",
            f"court:{order.court}",
            now,
        )
        return IngestResult("removed", row.entry_ref), []
    conn.execute(
        registry_entries.update()
        .where(registry_entries.c.id == row.id)
        .values(status=str(target), updated_at=now)
    )
    _audit.record(
        conn,
        ctx.keyring,
        "registry_entry_status",
        now=now,
        ref=row.entry_ref,
        source=source,
        status=str(target),
    )
    notify = []
    if target is EntryStatus.ACTIVE:
        notify = monitoring.recheck_entry(ctx, conn, int(row.id), now=now)
    return IngestResult("status_changed", row.entry_ref), notify
