"""The disclosure audit log: append-only and hash-chained (privacy.md §6.6 item 6).

Every disclosure, refusal, override, deletion request and key event is one entry. Entries hold
department, purpose, *field names*, consent basis and the decision's reason, never a field value.

Chain: ``h_i = HMAC(K_audit, h_{i-1} ‖ canonical_json({seq, at, key_version, entry}))`` with
``h_0`` = 32 zero bytes. A separate head record keeps the last ``(seq, h)`` under its own MAC.

What :meth:`AuditLog.verify` detects, and what it cannot:

* an edited entry, a reordered pair, a deleted entry in the middle (a ``seq`` gap and a broken
  link), and a deleted tail (the head names a later ``seq`` than the last row);
* a forged head record (its MAC needs ``K_audit``);
* **not** a rollback of the whole database (log and head together) to an earlier copy: both are
  internally consistent. Keep an external anchor (``AuditLog.head()``, printed by ``audit
  verify``; e.g. mailed to the DPO daily) and pass it back as ``verify(anchor=...)``: a log that
  no longer contains the anchored entry fails;
* **not** an attacker holding ``K_audit`` (it lives under the KEK; see keys.py).
"""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from adapter.clock import utcnow
from adapter.errors import KeyringError, PolicyViolation
from adapter.privacy._tables import audit_head, audit_log
from adapter.privacy._tables import keys as keys_table
from adapter.privacy.events import SecurityEventKind, record_security_event
from adapter.state import StateStore

GENESIS = bytes(32)
_HEAD_ID = 1
_BATCH = 1000

# The only keys an entry may have: names and decisions, never values (issue 3 item 6).
ENTRY_KEYS = frozenset(
    {
        "event",
        "allowed",
        "department",
        "purpose",
        "stage",
        "case_ref",
        "case_code",
        "fields",
        "withheld",
        "sensitivity",
        "consent_basis",
        "reason",
        "override_id",
        "role",
        "key_version",
        "old_version",
        "new_version",
        "count",
        # Decisions by people (adapter/privacy/decisions.py): who, on which basis, under which
        # legal reference, and why a decision was refused. Never the reason's free text.
        "approved_by",
        "approval_bases",
        "legal_reference",
        "decision_refs",
        "recorded_by",
        "recorded_at",
        "expires_at",
        "problem",
    }
)


class AuditKeys(Protocol):
    """What the log needs from the key ring: the MAC key of a version (None = current)."""

    def audit_key(self, version: int | None = None) -> tuple[int, bytes]: ...


@dataclass(frozen=True)
class AuditAnchor:
    """A point in the chain worth remembering outside the database."""

    seq: int
    mac: str


@dataclass(frozen=True)
class AuditRecord:
    """One entry as stored, for review and subject-access requests."""

    seq: int
    recorded_at: datetime
    entry: dict[str, Any]


@dataclass(frozen=True)
class AuditReport:
    """The outcome of :meth:`AuditLog.verify`. ``problems`` name sequence numbers only."""

    ok: bool
    entries: int
    head_seq: int | None
    problems: tuple[str, ...]


def canonical_json(value: Any) -> bytes:
    """Sorted keys, no spaces, UTF-8: one byte string per logical value."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode(
        "utf-8"
    )


def check_entry(entry: Mapping[str, Any]) -> None:
    """Refuse an entry with an unknown key or a value that is not a name, number or flag."""
    for key, value in entry.items():
        if key not in ENTRY_KEYS:
            raise PolicyViolation(
                f"audit entry key '{key}' is not allowed: audit entries hold field names and "
                f"decisions only (allowed: {', '.join(sorted(ENTRY_KEYS))})."
            )
        ok = value is None or isinstance(value, bool | int | str)
        if isinstance(value, list | tuple):
            ok = all(isinstance(item, str) for item in value)
        if not ok:
            raise PolicyViolation(f"audit entry key '{key}' must be a string, number or list.")


def init_head(conn: Connection, keys: AuditKeys, *, now: datetime | None = None) -> None:
    """Create the head record (seq 0) if it does not exist yet. Called by ``KeyRing.init``."""
    exists = conn.execute(sa.select(audit_head.c.id).where(audit_head.c.id == _HEAD_ID)).first()
    if exists:
        return
    version, key = keys.audit_key()
    conn.execute(
        audit_head.insert().values(
            id=_HEAD_ID,
            seq=0,
            mac=GENESIS.hex(),
            key_version=version,
            head_mac=_head_mac(key, 0, GENESIS.hex()),
            updated_at=now or utcnow(),
        )
    )


def append_entry(
    conn: Connection, keys: AuditKeys, entry: Mapping[str, Any], *, now: datetime | None = None
) -> int:
    """Append ``entry`` in the caller's transaction and return its sequence number (the
    one-entry case of :func:`append_entries`)."""
    return append_entries(conn, keys, [entry], now=now)[0]


def append_entries(
    conn: Connection,
    keys: AuditKeys,
    entries: Sequence[Mapping[str, Any]],
    *,
    now: datetime | None = None,
) -> list[int]:
    """Append ``entries`` in order in the caller's transaction; their sequence numbers.

    The head row is read once ``FOR UPDATE`` (PostgreSQL) or under SQLite's write lock (the
    state store begins IMMEDIATE), so concurrent writers take turns and never fork the chain.
    The chain is computed in memory from that head, then one ``executemany`` inserts the
    entries and one UPDATE moves the head: the same rows, byte for byte, as appending them one
    by one under the same lock, for three statements per call instead of three per entry
    (BENCHMARKS.md, the sync's page transaction). All entries are recorded at ``now`` (one
    instant per call).
    """
    if not entries:
        return []
    for entry in entries:
        check_entry(entry)
    head = conn.execute(
        sa.select(audit_head).where(audit_head.c.id == _HEAD_ID).with_for_update()
    ).first()
    if head is None:
        raise KeyringError(
            "the audit log has no head record: run `cpims-adapter keys init` before any disclosure."
        )
    version, key = keys.audit_key()
    at = now or utcnow()
    seq, mac = int(head.seq), str(head.mac)
    rows: list[dict[str, Any]] = []
    for entry in entries:
        seq += 1
        text = canonical_json(dict(entry)).decode("utf-8")
        mac = _entry_mac(key, bytes.fromhex(mac), seq, at, version, text)
        rows.append(
            {"seq": seq, "recorded_at": at, "key_version": version, "entry": text, "mac": mac}
        )
    conn.execute(audit_log.insert(), rows)
    conn.execute(
        audit_head.update()
        .where(audit_head.c.id == _HEAD_ID)
        .values(
            seq=seq, mac=mac, key_version=version, head_mac=_head_mac(key, seq, mac), updated_at=at
        )
    )
    return [int(row["seq"]) for row in rows]


class AuditLog:
    """Append to, read and verify the audit log in ``store`` with keys from ``keys``."""

    def __init__(self, store: StateStore, keys: AuditKeys) -> None:
        self.store = store
        self.keys = keys

    def append(
        self,
        entry: Mapping[str, Any],
        *,
        conn: Connection | None = None,
        now: datetime | None = None,
    ) -> int:
        """Append one entry; pass ``conn`` to commit it with the disclosure it records."""
        if conn is not None:
            return append_entry(conn, self.keys, entry, now=now)
        with self.store.transaction() as own:
            return append_entry(own, self.keys, entry, now=now)

    def head(self) -> AuditAnchor:
        """The current last ``(seq, mac)``: keep it somewhere the database cannot rewrite."""
        with self.store.transaction() as conn:
            row = conn.execute(sa.select(audit_head).where(audit_head.c.id == _HEAD_ID)).first()
        if row is None:
            return AuditAnchor(0, GENESIS.hex())
        return AuditAnchor(int(row.seq), str(row.mac))

    def entries(self, *, after_seq: int = 0, limit: int = 1000) -> list[AuditRecord]:
        """Entries in order, for review and subject-access requests."""
        query = (
            sa.select(audit_log)
            .where(audit_log.c.seq > after_seq)
            .order_by(audit_log.c.seq)
            .limit(limit)
        )
        with self.store.transaction() as conn:
            rows = conn.execute(query).all()
        return [AuditRecord(int(r.seq), r.recorded_at, json.loads(r.entry)) for r in rows]

    def verify(self, *, anchor: AuditAnchor | None = None) -> AuditReport:
        """Walk the whole chain and the head record; report every break by sequence number."""
        problems: list[str] = []
        prev_mac, prev_seq, count = GENESIS.hex(), 0, 0
        anchor_seen = anchor is None or anchor.seq == 0
        for row in self._rows():
            count += 1
            seq = int(row.seq)
            if seq != prev_seq + 1:
                problems.append(
                    f"seq {seq} follows seq {prev_seq}: entries {prev_seq + 1}..{seq - 1} "
                    "were deleted"
                    if seq > prev_seq + 1
                    else f"seq {seq} is out of order after seq {prev_seq}"
                )
            try:
                _, key = self.keys.audit_key(int(row.key_version))
            except KeyringError:
                problems.append(f"seq {seq}: MAC key version {row.key_version} is unknown")
                prev_mac, prev_seq = str(row.mac), seq
                continue
            if canonical_json(json.loads(row.entry)).decode("utf-8") != row.entry:
                problems.append(f"seq {seq}: stored entry is not canonical JSON (edited)")
            expected = _entry_mac(
                key, bytes.fromhex(prev_mac), seq, row.recorded_at, int(row.key_version), row.entry
            )
            if not hmac.compare_digest(expected, str(row.mac)):
                problems.append(
                    f"seq {seq}: MAC does not match (this entry was edited or moved, or the one "
                    "before it was deleted)"
                )
            if anchor is not None and seq == anchor.seq:
                anchor_seen = hmac.compare_digest(str(row.mac), anchor.mac)
                if not anchor_seen:
                    problems.append(f"seq {seq}: differs from the external anchor")
            prev_mac, prev_seq = str(row.mac), seq
        head_seq = self._check_head(prev_seq, prev_mac, count, problems)
        if anchor is not None and not anchor_seen and not any("anchor" in p for p in problems):
            problems.append(
                f"the external anchor names seq {anchor.seq}, which the log no longer holds "
                "(rolled back or truncated)"
            )
        if problems:
            # A broken chain is a suspected breach (privacy.md §6.7, §7 item 21): it opens an
            # incident. Problems name sequence numbers only, never an entry's content.
            with self.store.transaction() as conn:
                record_security_event(
                    conn,
                    SecurityEventKind.AUDIT_CHAIN_BROKEN,
                    department=None,
                    detail=f"audit verify found {len(problems)} problem(s); first: {problems[0]}",
                )
        return AuditReport(not problems, count, head_seq, tuple(problems))

    def _rows(self) -> Iterator[Any]:
        last = -1
        while True:
            with self.store.transaction() as conn:
                rows = conn.execute(
                    sa.select(audit_log)
                    .where(audit_log.c.seq > last)
                    .order_by(audit_log.c.seq)
                    .limit(_BATCH)
                ).all()
            if not rows:
                return
            yield from rows
            last = int(rows[-1].seq)

    def _check_head(
        self, last_seq: int, last_mac: str, count: int, problems: list[str]
    ) -> int | None:
        with self.store.transaction() as conn:
            head = conn.execute(sa.select(audit_head).where(audit_head.c.id == _HEAD_ID)).first()
            has_keys = conn.execute(sa.select(keys_table.c.id).limit(1)).first() is not None
        if head is None:
            if count or has_keys:
                # KeyRing.init writes the head with the keys, so keys without a head means it
                # was deleted, probably together with the whole log.
                problems.append("the audit head record is missing (log deleted or truncated)")
            return None
        try:
            _, key = self.keys.audit_key(int(head.key_version))
        except KeyringError:
            problems.append(f"audit head: MAC key version {head.key_version} is unknown")
            return int(head.seq)
        if not hmac.compare_digest(_head_mac(key, int(head.seq), str(head.mac)), head.head_mac):
            problems.append("audit head: its MAC does not match (the head record was edited)")
        if int(head.seq) > last_seq:
            problems.append(
                f"audit head names seq {head.seq} but the last entry is seq {last_seq}: "
                "the last entries were deleted"
            )
        elif int(head.seq) < last_seq:
            problems.append(
                f"audit head names seq {head.seq} but entries run to seq {last_seq}: "
                "entries were added outside the adapter"
            )
        elif not hmac.compare_digest(str(head.mac), last_mac):
            problems.append(f"audit head MAC differs from entry seq {last_seq}")
        return int(head.seq)


def _entry_mac(
    key: bytes, prev: bytes, seq: int, at: datetime, version: int, entry_text: str
) -> str:
    # Normalised to UTC: the store hands timestamps back as UTC whatever zone they came in.
    record = {
        "seq": seq,
        "at": at.astimezone(UTC).isoformat(),
        "key_version": version,
        "entry": entry_text,
    }
    return hmac.new(key, prev + canonical_json(record), hashlib.sha256).hexdigest()


def _head_mac(key: bytes, seq: int, mac: str) -> str:
    return hmac.new(key, f"cpims-audit-head|{seq}|{mac}".encode(), hashlib.sha256).hexdigest()
