"""Signed CSV imports: the signature, all-or-nothing validation, provenance (issue 6 item 1)."""

from __future__ import annotations

from pathlib import Path

import pytest
import sqlalchemy as sa
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from adapter.privacy import list_security_events
from adapter.registry import (
    Establishment,
    ImportRefused,
    Outcome,
    Registry,
    SignatureInvalid,
)
from adapter.state import StateStore
from tests.registry.conftest import NOW, OFFICER, csv_row, request, write_signed_csv


def entry_count(store: StateStore) -> int:
    with store.transaction() as conn:
        return int(conn.execute(sa.text("SELECT count(*) FROM registry_entries")).scalar_one())


def test_signed_import_registers_every_row(
    registry: Registry,
    school: Establishment,
    officer_key: Ed25519PrivateKey,
    tmp_path: Path,
    store: StateStore,
) -> None:
    rows = [csv_row(i) for i in range(5)]
    rows.append(
        csv_row(9, cnic="", full_name="زینب بی بی", father_name="", full_name_urdu="زینب بی بی")
    )
    path, sig = write_signed_csv(tmp_path, rows, officer_key)
    progress: list[tuple[int, int | None]] = []
    result = registry.import_signed_csv(
        path, sig, OFFICER, now=NOW, on_progress=lambda done, total: progress.append((done, total))
    )
    assert (result.rows, result.created, result.unchanged) == (6, 6, 0)
    assert progress[-1] == (6, 6)  # what `registry import`'s progress bar shows at the end
    assert entry_count(store) == 6
    hit = request(cnic=rows[2]["cnic"])
    assert registry.check(hit, school, now=NOW).status is Outcome.DO_NOT_ENGAGE
    # The same file again is refused; a new extract repeating rows leaves them unchanged.
    with pytest.raises(ImportRefused):
        registry.import_signed_csv(path, sig, OFFICER, now=NOW)
    again, again_sig = write_signed_csv(
        tmp_path, [*rows[:2], csv_row(20)], officer_key, name="next"
    )
    second = registry.import_signed_csv(again, again_sig, OFFICER, now=NOW)
    assert (second.created, second.unchanged) == (1, 2)


def test_bad_signature_refuses_the_import_and_writes_nothing(
    registry: Registry, officer_key: Ed25519PrivateKey, tmp_path: Path, store: StateStore
) -> None:
    path, sig = write_signed_csv(tmp_path, [csv_row(i) for i in range(3)], officer_key)
    with path.open("a", encoding="utf-8") as handle:  # tampered after signing
        handle.write("NSOR-666,42101-6666666-6,Evil Row,,,,1990-01-01,ppc_377a,2020-01-01,shc\n")
    with pytest.raises(SignatureInvalid):
        registry.import_signed_csv(path, sig, OFFICER, now=NOW)
    assert entry_count(store) == 0
    assert [e.kind for e in list_security_events(store)] == ["registry_import_signature_invalid"]


def test_signature_by_another_key_or_unknown_officer_is_refused(
    registry: Registry, tmp_path: Path, store: StateStore
) -> None:
    path, sig = write_signed_csv(tmp_path, [csv_row(1)], Ed25519PrivateKey.generate())
    with pytest.raises(SignatureInvalid):
        registry.import_signed_csv(path, sig, OFFICER, now=NOW)
    with pytest.raises(SignatureInvalid):
        registry.import_signed_csv(path, sig, "someone.else", now=NOW)
    sig.write_text("not a signature")
    with pytest.raises(SignatureInvalid):
        registry.import_signed_csv(path, sig, OFFICER, now=NOW)
    assert entry_count(store) == 0


def test_one_invalid_row_refuses_the_whole_file(
    registry: Registry, officer_key: Ed25519PrivateKey, tmp_path: Path, store: StateStore
) -> None:
    rows = [csv_row(i) for i in range(4)]
    rows[1]["cnic"] = "35202-123-1"
    rows[2]["offence_code"] = "ppc_379"
    rows[3]["full_name"] = "Muh\u0430mmad Ali"  # Cyrillic а
    path, sig = write_signed_csv(tmp_path, rows, officer_key)
    with pytest.raises(ImportRefused) as caught:
        registry.import_signed_csv(path, sig, OFFICER, now=NOW)
    problems = caught.value.problems
    assert [p.split(":")[0] for p in problems] == ["line 3", "line 4", "line 5"]
    assert not any("35202" in p or "Muh" in p for p in problems)  # shapes, never values
    assert entry_count(store) == 0


def test_wrong_header_is_refused(
    registry: Registry, officer_key: Ed25519PrivateKey, tmp_path: Path
) -> None:
    path = tmp_path / "bad.csv"
    path.write_text("cnic,name\n35202-1234567-1,Ali\n", encoding="utf-8")
    sig = tmp_path / "bad.sig"
    from adapter.registry import sign_file

    sig.write_bytes(sign_file(path, officer_key))
    with pytest.raises(ImportRefused, match="header"):
        registry.import_signed_csv(path, sig, OFFICER, now=NOW)
