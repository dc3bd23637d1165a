"""The key ring: generation, wrapping under the KEK, versions, rotation and status.

Library API behind ``cpims-adapter keys init | rotate DEPARTMENT | status``::

    ring = KeyRing.init(store, kek, departments=policy.departments)   # idempotent
    ring = KeyRing.open(store, kek)                                   # every later run
    rotation = ring.rotate("police")            # new version, crosswalk, 30-day grace
    for row in ring.status(): ...               # role, scope, version, state, age

Key roles (privacy.md §6.2): one AES-SIV-512 token key per department (case codes), one
HMAC-SHA256 key for the audit chain, one AES-256-GCM key for data at rest (outbox payloads).
Every key is stored in table ``keys`` wrapped with AES-GCM under the 32-byte KEK; the wrap's
associated data names role, scope and version, so a wrapped blob copied onto another row does
not unwrap. The KEK itself never touches the database.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum

import sqlalchemy as sa
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM, AESSIV
from sqlalchemy.engine import Connection

from adapter.clock import utcnow
from adapter.config.privacy import KEK_BYTES
from adapter.errors import KeyringError
from adapter.privacy import _codec
from adapter.privacy._tables import code_crosswalk, issued_codes
from adapter.privacy._tables import keys as keys_table
from adapter.privacy.audit import append_entry, init_head
from adapter.privacy.errors import CodeRefused
from adapter.privacy.events import SecurityEventKind, record_security_event_detached
from adapter.state import StateStore

DEFAULT_GRACE = timedelta(days=30)
_PAYLOAD_MAGIC = b"cpe1"
_BATCH = 500


class KeyRole(StrEnum):
    TOKEN = "token"  # noqa: S105 (a role name, not a secret)
    AUDIT = "audit"
    DATA = "data"


class KeyState(StrEnum):
    ACTIVE = "active"
    RETIRING = "retiring"  # still accepted until retire_after, never used for new codes
    DESTROYED = "destroyed"


_KEY_BYTES = {KeyRole.TOKEN: _codec.TOKEN_KEY_BYTES, KeyRole.AUDIT: 32, KeyRole.DATA: 32}


@dataclass(frozen=True)
class KeyStatus:
    """One row of ``keys status``: no key material, only its bookkeeping."""

    role: str
    scope: str
    version: int
    state: str
    created_at: datetime
    age_days: int
    retire_after: datetime | None


@dataclass(frozen=True)
class Rotation:
    """What ``keys rotate DEPARTMENT`` did. ``crosswalk`` pairs every code issued under the old
    version with its new code; the sync engine delivers it to the department."""

    department: str
    old_version: int
    new_version: int
    retire_after: datetime
    crosswalk: tuple[tuple[str, str], ...]


@dataclass
class _Key:
    role: KeyRole
    scope: str
    version: int
    state: KeyState
    material: bytes | None
    created_at: datetime
    retire_after: datetime | None


class KeyRing:
    """The unwrapped keys of one state store, held in memory for the life of a process.

    Build it with :meth:`init` or :meth:`open`, never directly. A rotation made by another
    process is seen after :meth:`reload`.
    """

    def __init__(self, store: StateStore, kek: bytes) -> None:
        if len(kek) != KEK_BYTES:
            raise KeyringError(f"the KEK must be {KEK_BYTES} bytes; see privacy.kek.")
        self.store = store
        self._kek = AESGCM(kek)
        self._keys: dict[tuple[KeyRole, str, int], _Key] = {}
        self._siv: dict[tuple[str, int], AESSIV] = {}
        self._active: dict[tuple[KeyRole, str], _Key] = {}

    def __repr__(self) -> str:  # never show key material, even in a debugger or traceback
        return f"<KeyRing {len(self._keys)} keys>"

    # -- construction -------------------------------------------------------------------

    @classmethod
    def init(
        cls,
        store: StateStore,
        kek: bytes,
        departments: Iterable[str],
        *,
        now: datetime | None = None,
    ) -> KeyRing:
        """Create every missing key (audit, data, one token key per department) and the audit
        head. Safe to run again: existing keys are kept, new departments get their first key.
        """
        now = now or utcnow()
        ring = cls(store, kek)
        with store.transaction() as conn:
            ring._load(conn)
            created: list[tuple[KeyRole, str]] = []
            for role in (KeyRole.AUDIT, KeyRole.DATA):
                if not ring._versions(role, ""):
                    ring._create(conn, role, "", 1, now)
                    created.append((role, ""))
            for department in sorted(set(departments)):
                if not _codec.DEPARTMENT_RE.match(department):
                    raise KeyringError(
                        f"department name '{department}' cannot appear in a case code: use "
                        "lowercase letters, digits and '_' (2-40 characters)."
                    )
                if not ring._versions(KeyRole.TOKEN, department):
                    ring._create(conn, KeyRole.TOKEN, department, 1, now)
                    created.append((KeyRole.TOKEN, department))
            init_head(conn, ring, now=now)
            for role, scope in created:
                entry = {"event": "key_created", "role": str(role), "key_version": 1}
                if scope:
                    entry["department"] = scope
                append_entry(conn, ring, entry, now=now)
        return ring

    @classmethod
    def open(cls, store: StateStore, kek: bytes) -> KeyRing:
        """Unwrap the keys already in ``store``. Raises KeyringError if there are none."""
        ring = cls(store, kek)
        ring.reload()
        if not ring._keys:
            raise KeyringError(
                "the state store holds no keys: run `cpims-adapter keys init` first."
            )
        return ring

    def reload(self) -> None:
        """Re-read the keys table (after another process rotated a key)."""
        with self.store.transaction() as conn:
            self._load(conn)

    # -- queries ------------------------------------------------------------------------

    @property
    def departments(self) -> list[str]:
        """Departments that have a token key."""
        return sorted({scope for role, scope, _ in self._keys if role is KeyRole.TOKEN})

    def status(self, *, now: datetime | None = None) -> list[KeyStatus]:
        """Every key version with its state and age in days (for ``keys status``)."""
        now = now or utcnow()
        return [
            KeyStatus(
                role=str(k.role),
                scope=k.scope,
                version=k.version,
                state=str(k.state),
                created_at=k.created_at,
                age_days=(now - k.created_at).days,
                retire_after=k.retire_after,
            )
            for k in sorted(self._keys.values(), key=lambda k: (k.role, k.scope, k.version))
        ]

    def audit_key(self, version: int | None = None) -> tuple[int, bytes]:
        """The audit MAC key of ``version`` (None = the current one) and its version."""
        key = self._key(KeyRole.AUDIT, "", version)
        assert key.material is not None
        return key.version, key.material

    # -- case codes (pure: nothing is written) --------------------------------------------

    def case_code(self, case_id: str, department: str) -> str:
        """The department's code for a Primero case ``id`` under its current token key."""
        key = self._key(KeyRole.TOKEN, department, None)
        try:
            return _codec.seal(self._siv_for(key), department, key.version, case_id)
        except ValueError:
            raise CodeRefused(
                "a case code needs the Primero case `id` (a UUID); this case has none or a "
                "malformed one.",
                kind=SecurityEventKind.MALFORMED_CODE,
                department=department,
            ) from None

    def open_case_code(self, code: str, department: str, *, now: datetime | None = None) -> str:
        """The case id inside ``code`` if ``department`` may present it; else CodeRefused.

        Refused: a malformed code, one issued to another department, one under an unknown,
        destroyed or past-grace version (no fallback to another key, privacy.md §7 item 10),
        and one that fails authentication. This method records nothing: see
        ``CaseCodes.resolve`` for the variant that raises the security event.
        """
        now = now or utcnow()
        parsed = _codec.parse(code)
        if parsed is None:
            raise CodeRefused(
                "case code is malformed (expected cp1.<department>.<version>.<52 base32>).",
                kind=SecurityEventKind.MALFORMED_CODE,
                department=department,
            )
        if parsed.department != department:
            # Name the claimed department only if it is one of ours: the code is input.
            claimed = parsed.department if parsed.department in self.departments else "unknown"
            raise CodeRefused(
                f"case code issued to department '{claimed}' was presented by "
                f"'{department}': refused.",
                kind=SecurityEventKind.WRONG_DEPARTMENT,
                department=department,
            )
        key = self._keys.get((KeyRole.TOKEN, department, parsed.version))
        if key is None:
            raise CodeRefused(
                f"case code names key version {parsed.version}, unknown for '{department}'.",
                kind=SecurityEventKind.UNKNOWN_KEY,
                department=department,
            )
        if key.state is KeyState.DESTROYED or (
            key.retire_after is not None and now > key.retire_after
        ):
            raise CodeRefused(
                f"case code is under retired key version {parsed.version} of '{department}'; "
                "the department must use the crosswalk to the current code.",
                kind=SecurityEventKind.RETIRED_KEY,
                department=department,
            )
        case_id = _codec.unseal(self._siv_for(key), parsed)
        if case_id is None:
            raise CodeRefused(
                f"case code failed authentication under '{department}' key version "
                f"{parsed.version}: forged, altered or from another department's key.",
                kind=SecurityEventKind.FORGED_CODE,
                department=department,
            )
        return case_id

    # -- rotation -------------------------------------------------------------------------

    def rotate(
        self,
        department: str,
        *,
        grace: timedelta = DEFAULT_GRACE,
        now: datetime | None = None,
        on_progress: Callable[[int, int | None], None] | None = None,
    ) -> Rotation:
        """New token key version for ``department``; re-issue every code issued so far
        (``on_progress(done, total)`` every thousand codes, for a progress bar).

        In one transaction: the new version becomes active, the old one "retiring" until
        ``now + grace`` (still accepted, never used for new codes, then refused), each code in
        ``issued_codes`` under the old version is opened and sealed again under the new one,
        and the pair goes to ``code_crosswalk``.
        """
        now = now or utcnow()
        old = self._key(KeyRole.TOKEN, department, None)
        retire_after = now + grace
        pairs: list[tuple[str, str]] = []
        with self._reload_on_error(), self.store.transaction() as conn:
            new = self._create(conn, KeyRole.TOKEN, department, old.version + 1, now)
            self._retire(conn, old, retire_after)
            old_codes = (
                conn.execute(
                    sa.select(issued_codes.c.code).where(
                        issued_codes.c.department == department,
                        issued_codes.c.key_version == old.version,
                    )
                )
                .scalars()
                .all()
            )
            for code in old_codes:
                case_id = self.open_case_code(code, department, now=now)
                new_code = _codec.seal(self._siv_for(new), department, new.version, case_id)
                pairs.append((code, new_code))
                if on_progress is not None and len(pairs) % 1000 == 0:
                    on_progress(len(pairs), len(old_codes))
            if on_progress is not None:
                on_progress(len(pairs), len(old_codes))
            for start in range(0, len(pairs), _BATCH):
                chunk = pairs[start : start + _BATCH]
                conn.execute(
                    code_crosswalk.insert(),
                    [
                        {
                            "department": department,
                            "old_code": o,
                            "new_code": n,
                            "old_version": old.version,
                            "new_version": new.version,
                            "created_at": now,
                        }
                        for o, n in chunk
                    ],
                )
                conn.execute(
                    issued_codes.insert(),
                    [
                        {
                            "code": n,
                            "department": department,
                            "key_version": new.version,
                            "issued_at": now,
                        }
                        for _, n in chunk
                    ],
                )
            append_entry(
                conn,
                self,
                {
                    "event": "key_rotated",
                    "role": str(KeyRole.TOKEN),
                    "department": department,
                    "old_version": old.version,
                    "new_version": new.version,
                    "count": len(pairs),
                },
                now=now,
            )
        return Rotation(department, old.version, new.version, retire_after, tuple(pairs))

    def rotate_data_key(self, *, now: datetime | None = None) -> int:
        """New data-at-rest key version. Old versions stay readable (payloads already in the
        outbox must still decrypt); they are never destroyed automatically."""
        return self._rotate_role(KeyRole.DATA, now)

    def rotate_audit_key(self, *, now: datetime | None = None) -> int:
        """New audit MAC key version. Old versions stay: verify needs them for old entries."""
        return self._rotate_role(KeyRole.AUDIT, now)

    def destroy_expired(self, *, now: datetime | None = None) -> list[KeyStatus]:
        """Erase the material of token keys whose grace window has ended (privacy.md §6.2
        "then destroy the old key and log it"). Returns what was destroyed."""
        now = now or utcnow()
        expired = [
            k
            for k in self._keys.values()
            if k.state is KeyState.RETIRING and k.retire_after is not None and now > k.retire_after
        ]
        with self.store.transaction() as conn:
            for key in expired:
                conn.execute(
                    keys_table.update()
                    .where(*_row(key))
                    .values(state=str(KeyState.DESTROYED), wrapped=None, destroyed_at=now)
                )
                key.state, key.material = KeyState.DESTROYED, None
                self._siv.pop((key.scope, key.version), None)
                append_entry(
                    conn,
                    self,
                    {
                        "event": "key_destroyed",
                        "role": str(key.role),
                        "department": key.scope or None,
                        "key_version": key.version,
                    },
                    now=now,
                )
        gone = {(str(k.role), k.scope, k.version) for k in expired}
        return [s for s in self.status(now=now) if (s.role, s.scope, s.version) in gone]

    # -- data at rest -----------------------------------------------------------------------

    def encrypt_payload(self, plaintext: bytes, *, context: bytes = b"") -> bytes:
        """AES-256-GCM under the current data key: ``cpe1 ‖ version(4) ‖ nonce(12) ‖ ct``.

        ``context`` (e.g. the outbox row's idempotency key) is bound as associated data, so a
        blob moved to another row does not decrypt.
        """
        key = self._key(KeyRole.DATA, "", None)
        assert key.material is not None
        header = _PAYLOAD_MAGIC + key.version.to_bytes(4, "big")
        nonce = os.urandom(12)
        return header + nonce + AESGCM(key.material).encrypt(nonce, plaintext, header + context)

    def decrypt_payload(self, blob: bytes, *, context: bytes = b"") -> bytes:
        """Reverse :meth:`encrypt_payload`. Raises KeyringError if the blob was altered, moved
        to another context, or needs a key this store no longer has."""
        if len(blob) < 8 + 12 + 16 or not blob.startswith(_PAYLOAD_MAGIC):
            raise KeyringError("encrypted payload is truncated or not in the cpe1 format.")
        header, nonce, body = blob[:8], blob[8:20], blob[20:]
        version = int.from_bytes(header[4:8], "big")
        key = self._keys.get((KeyRole.DATA, "", version))
        if key is None or key.material is None:
            raise KeyringError(f"encrypted payload needs data key version {version}, not held.")
        try:
            return AESGCM(key.material).decrypt(nonce, body, header + context)
        except InvalidTag:
            # An altered or moved blob is a key-access anomaly (privacy.md §6.7); the caller
            # may be inside a transaction, hence the detached write.
            record_security_event_detached(
                self.store,
                SecurityEventKind.KEY_ACCESS_ANOMALY,
                department=None,
                detail=(
                    f"a data-at-rest payload failed authentication under data key version {version}"
                ),
            )
            raise KeyringError(
                "encrypted payload failed authentication (altered, or a different context)."
            ) from None

    # -- internals --------------------------------------------------------------------------

    def _rotate_role(self, role: KeyRole, now: datetime | None) -> int:
        now = now or utcnow()
        old = self._key(role, "", None)
        with self._reload_on_error(), self.store.transaction() as conn:
            new = self._create(conn, role, "", old.version + 1, now)
            self._retire(conn, old, None)
            append_entry(
                conn,
                self,
                {
                    "event": "key_rotated",
                    "role": str(role),
                    "old_version": old.version,
                    "new_version": new.version,
                },
                now=now,
            )
        return new.version

    @contextmanager
    def _reload_on_error(self) -> Iterator[None]:
        # The in-memory ring is updated as rows are written; if the transaction rolls back,
        # re-read the table so memory never claims a key the store does not have.
        try:
            yield
        except BaseException:
            self.reload()
            raise

    def _versions(self, role: KeyRole, scope: str) -> list[_Key]:
        return sorted(
            (k for (r, s, _), k in self._keys.items() if r is role and s == scope),
            key=lambda k: k.version,
        )

    def _key(self, role: KeyRole, scope: str, version: int | None) -> _Key:
        if version is None:
            cached = self._active.get((role, scope))
            if cached is not None and cached.state is KeyState.ACTIVE:
                return cached  # the hot path: every case code asks for the current key
            active = [k for k in self._versions(role, scope) if k.state is KeyState.ACTIVE]
            if not active:
                what = f"{role} key for department '{scope}'" if scope else f"{role} key"
                raise KeyringError(
                    f"no active {what}: run `cpims-adapter keys init` (it adds missing keys)."
                )
            self._active[(role, scope)] = active[-1]
            return active[-1]
        key = self._keys.get((role, scope, version))
        if key is None or key.material is None:
            raise KeyringError(f"{role} key version {version} is not held by this store.")
        return key

    def _siv_for(self, key: _Key) -> AESSIV:
        cached = self._siv.get((key.scope, key.version))
        if cached is None:
            assert key.material is not None
            cached = self._siv[(key.scope, key.version)] = AESSIV(key.material)
        return cached

    def _create(
        self, conn: Connection, role: KeyRole, scope: str, version: int, now: datetime
    ) -> _Key:
        material = secrets.token_bytes(_KEY_BYTES[role])
        nonce = os.urandom(12)
        wrapped = nonce + self._kek.encrypt(nonce, material, _wrap_ad(role, scope, version))
        conn.execute(
            keys_table.insert().values(
                role=str(role),
                scope=scope,
                version=version,
                state=str(KeyState.ACTIVE),
                wrapped=wrapped,
                created_at=now,
            )
        )
        key = _Key(role, scope, version, KeyState.ACTIVE, material, now, None)
        self._keys[(role, scope, version)] = key
        return key

    def _retire(self, conn: Connection, key: _Key, retire_after: datetime | None) -> None:
        conn.execute(
            keys_table.update()
            .where(*_row(key))
            .values(state=str(KeyState.RETIRING), retire_after=retire_after)
        )
        key.state, key.retire_after = KeyState.RETIRING, retire_after

    def _load(self, conn: Connection) -> None:
        keys: dict[tuple[KeyRole, str, int], _Key] = {}
        for row in conn.execute(sa.select(keys_table)):
            role = KeyRole(row.role)
            material = None
            if row.wrapped is not None:
                blob = bytes(row.wrapped)
                try:
                    material = self._kek.decrypt(
                        blob[:12], blob[12:], _wrap_ad(role, row.scope, row.version)
                    )
                except InvalidTag:
                    # A key-access anomaly (privacy.md §6.7): a wrong KEK or an altered row.
                    # Recorded from a thread: this runs inside the caller's transaction.
                    whose = f" of '{row.scope}'" if row.scope else ""
                    record_security_event_detached(
                        self.store,
                        SecurityEventKind.KEY_ACCESS_ANOMALY,
                        department=row.scope or None,
                        detail=(
                            f"the KEK given did not unwrap the {role} key{whose} version "
                            f"{row.version}"
                        ),
                    )
                    raise KeyringError(
                        "the KEK does not open the keys in the state store: wrong "
                        "CPIMS_ADAPTER_PRIVACY__KEK / privacy.kek_file, or a key row was "
                        "altered."
                    ) from None
            keys[(role, row.scope, int(row.version))] = _Key(
                role,
                row.scope,
                int(row.version),
                KeyState(row.state),
                material,
                row.created_at,
                row.retire_after,
            )
        self._keys = keys
        self._siv.clear()
        self._active.clear()


def _wrap_ad(role: KeyRole, scope: str, version: int) -> bytes:
    return f"cpims-adapter key|{role}|{scope}|{version}".encode()


def _row(key: _Key) -> tuple[sa.ColumnElement[bool], ...]:
    return (
        keys_table.c.role == str(key.role),
        keys_table.c.scope == key.scope,
        keys_table.c.version == key.version,
    )
