"""Keys: generated once, wrapped under the KEK, versioned; the KEK from env or a safe file;
payload encryption at rest."""

from __future__ import annotations

import base64
import secrets
import uuid
from pathlib import Path

import pytest
import sqlalchemy as sa

from adapter.errors import ConfigError
from adapter.privacy import AuditLog, KeyRing, KeyringError, PrivacySettings, new_kek
from adapter.privacy._tables import keys as keys_table
from adapter.state import StateStore

from .conftest import NOW


def test_init_creates_every_role_and_is_idempotent(store: StateStore, kek: bytes) -> None:
    ring = KeyRing.init(store, kek, ["health", "police"], now=NOW)
    status = {(s.role, s.scope): s for s in ring.status(now=NOW)}
    assert set(status) == {("audit", ""), ("data", ""), ("token", "health"), ("token", "police")}
    assert all(s.version == 1 and s.state == "active" and s.age_days == 0 for s in status.values())
    case_id = str(uuid.uuid4())
    before = ring.case_code(case_id, "health")
    again = KeyRing.init(store, kek, ["health", "police", "courts"], now=NOW)
    assert again.case_code(case_id, "health") == before  # existing keys are never replaced
    assert again.departments == ["courts", "health", "police"]
    events = [r.entry["event"] for r in AuditLog(store, again).entries()]
    assert events.count("key_created") == 5


def test_keys_are_stored_wrapped(store: StateStore, kek: bytes) -> None:
    ring = KeyRing.init(store, kek, ["health"], now=NOW)
    _, audit_key = ring.audit_key()
    with store.transaction() as conn:
        blobs = [bytes(b) for b in conn.execute(sa.select(keys_table.c.wrapped)).scalars()]
    assert blobs and all(audit_key not in blob for blob in blobs)
    assert all(kek not in blob for blob in blobs)


def test_wrong_kek_is_a_clear_error(store: StateStore, kek: bytes) -> None:
    KeyRing.init(store, kek, ["health"], now=NOW)
    with pytest.raises(KeyringError, match="KEK does not open the keys") as info:
        KeyRing.open(store, secrets.token_bytes(32))
    assert isinstance(info.value, ConfigError)


def test_open_before_init_says_what_to_run(store: StateStore, kek: bytes) -> None:
    with pytest.raises(KeyringError, match="keys init"):
        KeyRing.open(store, kek)


def test_a_wrapped_key_moved_to_another_row_does_not_unwrap(store: StateStore, kek: bytes) -> None:
    KeyRing.init(store, kek, ["health", "police"], now=NOW)
    with store.transaction() as conn:
        police = conn.execute(
            sa.select(keys_table.c.wrapped).where(keys_table.c.scope == "police")
        ).scalar()
        conn.execute(
            keys_table.update().where(keys_table.c.scope == "health").values(wrapped=police)
        )
    with pytest.raises(KeyringError):
        KeyRing.open(store, kek)


def test_payload_encryption_round_trip_binding_and_rotation(ring: KeyRing) -> None:
    blob = ring.encrypt_payload(b'{"name": "x"}', context=b"outbox:1")
    assert blob.startswith(b"cpe1") and b"name" not in blob
    assert ring.decrypt_payload(blob, context=b"outbox:1") == b'{"name": "x"}'
    with pytest.raises(KeyringError, match="failed authentication"):
        ring.decrypt_payload(blob, context=b"outbox:2")
    tampered = blob[:-1] + bytes([blob[-1] ^ 1])
    with pytest.raises(KeyringError):
        ring.decrypt_payload(tampered, context=b"outbox:1")
    with pytest.raises(KeyringError, match="truncated"):
        ring.decrypt_payload(b"junk")
    assert ring.rotate_data_key(now=NOW) == 2
    newer = ring.encrypt_payload(b"later")
    assert newer[4:8] == (2).to_bytes(4, "big")
    # Payloads written before the rotation still decrypt.
    assert ring.decrypt_payload(blob, context=b"outbox:1") == b'{"name": "x"}'


def test_audit_key_rotation_keeps_the_chain_verifiable(store: StateStore, ring: KeyRing) -> None:
    log = AuditLog(store, ring)
    log.append({"event": "test"}, now=NOW)
    assert ring.rotate_audit_key(now=NOW) == 2
    log.append({"event": "test"}, now=NOW)
    report = log.verify()
    assert report.ok, report.problems


def test_kek_from_settings(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    value = new_kek()
    assert PrivacySettings(kek=value).load_kek() == base64.b64decode(value)
    with pytest.raises(KeyringError, match="not valid base64") as info:
        PrivacySettings(kek="CANARY-not-base64!").load_kek()
    assert "CANARY" not in str(info.value)
    with pytest.raises(KeyringError, match="needs 32"):
        PrivacySettings(kek=base64.b64encode(b"short").decode()).load_kek()
    with pytest.raises(KeyringError, match="no key-encryption key"):
        PrivacySettings().load_kek()
    outside = tmp_path / "kek"
    outside.write_text(value + "\n", encoding="ascii")
    outside.chmod(0o600)
    assert PrivacySettings(kek_file=outside).load_kek() == base64.b64decode(value)
    with pytest.raises(KeyringError, match="both set"):
        PrivacySettings(kek=value, kek_file=outside).load_kek()
    outside.chmod(0o644)
    with pytest.raises(KeyringError, match="chmod 600"):
        PrivacySettings(kek_file=outside).load_kek()


def test_kek_file_inside_a_repository_is_refused(tmp_path: Path) -> None:
    (tmp_path / ".git").mkdir()
    inside = tmp_path / "config" / "kek"
    inside.parent.mkdir()
    inside.write_text(new_kek(), encoding="ascii")
    inside.chmod(0o600)
    with pytest.raises(KeyringError, match="inside the git work tree"):
        PrivacySettings(kek_file=inside).load_kek()


def test_settings_reject_unknown_keys() -> None:
    with pytest.raises(ValueError, match="extra"):
        PrivacySettings.model_validate({"kek_fiel": "/etc/kek"})
    assert repr(PrivacySettings(kek=new_kek())).count("**********") == 1
