"""Importing a department's CSV files: per-row rejects, whole-file rejects, processed files,
crash safety — against a real OpenSSH sftp server on 127.0.0.1 — plus the CSV format's
lossless round trip (departments.md §3, §5, §6)."""

from __future__ import annotations

import hashlib
import shutil
from collections.abc import Iterator
from datetime import UTC, datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from adapter.departments.csv_import import (
    InboundFormat,
    parse_file,
    read_csv,
    sha256_sidecar,
    write_csv,
)
from adapter.departments.files import FileConnector, document_csv, flatten_document
from adapter.errors import ConfigError
from adapter.mappings.vocabulary import COMPLETED, IN_PROGRESS
from tests.support.sftp_server import SftpServer

COURT_ORDERS = InboundFormat(
    "court_order", columns={"Case No.": "case_number", "Ref": "referral_key"}
)
# A court registry's export, as a clerk saves it from Excel. Row numbers as Excel shows them.
ORDERS_CSV = (
    "Ref,Court,Case No.,Order Type,Order Date,Effective From,Review Date,Status,Child Name\r\n"
    # row 2: good (the day-first date Excel writes in Pakistan)
    "ref-1,Child Protection Court Peshawar,CPC-12/2026,custody,05/03/2026,06/03/2026,,active,"
    "Ayesha Bibi\r\n"
    # row 3: an order type the vocabulary does not have
    "ref-2,Juvenile Court Lahore,JC-7/2026,adoption,2026-03-05,,,active,Bilal Khan\r\n"
    # row 4: an impossible date
    "ref-3,Family Court Multan,FC-9/2026,guardianship,31/02/2026,,,active,\r\n"
    # row 5: no referral key at all
    ",Family Court Multan,FC-10/2026,guardianship,2026-03-01,,,active,\r\n"
    # row 6: good, discharged
    "ref-4,Juvenile Court Lahore,JC-8/2026,bail,2026-03-07,,2026-06-07,discharged,\r\n"
)
SECRETS = ("adoption", "31/02/2026", "Ayesha", "Bilal", "FC-9/2026", "JC-7/2026")


@pytest.fixture
def courts(sftp: SftpServer) -> Iterator[FileConnector]:
    files = FileConnector("courts", sftp=sftp.settings(), inbound=COURT_ORDERS, timeout=5)
    try:
        yield files
    finally:
        files.close()


def drop_file(sftp: SftpServer, name: str, text: str, *, sidecar: bytes | None = None) -> None:
    """What the department does: put a file into the adapter's inbound directory."""
    inbound = sftp.root / "from_department"
    (inbound / name).write_bytes(text.encode("utf-8-sig"))
    if sidecar is not None:
        (inbound / f"{name}.sha256").write_bytes(sidecar)


def names(sftp: SftpServer, directory: str) -> list[str]:
    return sorted(p.name for p in (sftp.root / directory).iterdir())


# --- against the server ----------------------------------------------------------------------


def test_good_rows_are_imported_bad_rows_go_to_a_reject_file(
    courts: FileConnector, sftp: SftpServer
) -> None:
    drop_file(sftp, "orders-20260308.csv", ORDERS_CSV)

    imported = list(courts.status_updates(None))

    assert [(u.referral_key, u.status) for u, _ in imported] == [
        ("ref-1", IN_PROGRESS),
        ("ref-4", COMPLETED),
    ]
    first, watermark = imported[0]
    assert watermark == "orders-20260308.csv"
    assert first.record_type == "court_order"
    assert first.external_ref == "CPC-12/2026"
    assert dict(first.details) == {
        "court": "Child Protection Court Peshawar",
        "case_number": "CPC-12/2026",
        "order_type": "custody",
        "order_date": "2026-03-05",
        "effective_from": "2026-03-06",
        "order_status": "active",
    }
    assert first.updated_at is not None
    assert first.updated_at.astimezone(UTC) == datetime(2026, 3, 4, 19, 0, tzinfo=UTC)  # PKT

    report = (sftp.root / "rejects" / "orders-20260308.csv.rejects.csv").read_bytes()
    rows = read_csv(report)
    assert [(r["row"], r["field"]) for r in rows] == [
        ("3", "order_type"),
        ("4", "order_date"),
        ("5", "referral_key"),
    ]
    assert all(r["reason"] for r in rows)
    text = report.decode("utf-8-sig")
    assert not [s for s in SECRETS if s in text], "a reject file must not repeat the values"
    # The file moved to processed/ (with the import time in front), nothing left behind.
    assert names(sftp, "from_department") == ["processed"]
    [processed] = names(sftp, "from_department/processed")
    assert processed.endswith("-orders-20260308.csv")


def test_a_rerun_imports_nothing_new(courts: FileConnector, sftp: SftpServer) -> None:
    drop_file(sftp, "orders-1.csv", ORDERS_CSV)
    assert len(list(courts.status_updates(None))) == 2

    assert list(courts.status_updates("orders-1.csv")) == []
    assert list(courts.status_updates(None)) == []  # even without the watermark


def test_a_crash_mid_file_reimports_the_whole_file_with_the_same_versions(
    courts: FileConnector, sftp: SftpServer
) -> None:
    drop_file(sftp, "orders-2.csv", ORDERS_CSV)
    run = courts.status_updates(None)
    first, _ = next(run)
    del run  # the process died after the consumer took one row

    assert names(sftp, "from_department") == ["orders-2.csv"]  # not moved: not done
    again = [u for u, _ in courts.status_updates(None)]
    assert [u.referral_key for u in again] == ["ref-1", "ref-4"]
    # The consumer recognises the row it already applied (same key, same content version).
    assert (again[0].referral_key, again[0].version) == (first.referral_key, first.version)


def test_only_complete_files_are_read(courts: FileConnector, sftp: SftpServer) -> None:
    drop_file(sftp, "orders-3.csv.part", ORDERS_CSV)  # still being uploaded
    drop_file(sftp, "orders-3.csv.sha256", "")  # a sidecar alone is no file

    assert list(courts.status_updates(None)) == []
    assert names(sftp, "from_department") == ["orders-3.csv.part", "orders-3.csv.sha256"]


def test_a_file_with_a_matching_sidecar_is_imported(
    courts: FileConnector, sftp: SftpServer
) -> None:
    data = ORDERS_CSV.encode("utf-8-sig")
    drop_file(sftp, "orders-4.csv", ORDERS_CSV, sidecar=sha256_sidecar("orders-4.csv", data))

    assert len(list(courts.status_updates(None))) == 2
    [data_file, sidecar_file] = names(sftp, "from_department/processed")
    assert sidecar_file == f"{data_file}.sha256"  # the sidecar travels with its file


def test_a_corrupted_file_is_rejected_whole_with_a_clear_reason(
    courts: FileConnector, sftp: SftpServer
) -> None:
    sent = ORDERS_CSV.encode("utf-8-sig")
    truncated = ORDERS_CSV[: len(ORDERS_CSV) // 2]  # the upload broke off half-way
    drop_file(sftp, "orders-5.csv", truncated, sidecar=sha256_sidecar("orders-5.csv", sent))

    assert list(courts.status_updates(None)) == []

    assert names(sftp, "from_department") == []
    assert names(sftp, "rejects") == [
        "orders-5.csv",
        "orders-5.csv.rejects.csv",
        "orders-5.csv.sha256",
    ]
    [report] = read_csv((sftp.root / "rejects" / "orders-5.csv.rejects.csv").read_bytes())
    assert report["row"] == "0"
    assert report["reason"].startswith("checksum mismatch")


def test_what_the_adapter_sends_it_can_read_back(courts: FileConnector, sftp: SftpServer) -> None:
    # A department that echoes the adapter's own columns back (referral_key, order fields).
    order = {
        "referral_key": "ref-9",
        "court": "Sessions Court Quetta",
        "case_number": "S-1/2026",
        "order_type": "production",
        "order_date": "2026-04-01",
    }
    courts.deliver("referral", order, idempotency_key="echo-1")
    sent = sftp.root / "to_department" / "courts-referral-echo-1.csv"
    shutil.move(sent, sftp.root / "from_department" / sent.name)

    [(update, _)] = courts.status_updates(None)
    assert (update.referral_key, update.details["order_type"]) == ("ref-9", "production")


# --- the pure parser -------------------------------------------------------------------------


def test_a_missing_required_column_rejects_the_file_whole() -> None:
    parsed = parse_file(b"referral_key,court\r\nref-1,Family Court\r\n", COURT_ORDERS)
    assert parsed.refused == (
        "the header lacks the required column(s) case_number, order_date, order_type"
    )


def test_a_file_that_is_not_utf8_is_rejected_whole() -> None:
    parsed = parse_file("referral_key,status\r\nref-1,آ\r\n".encode("utf-16"), COURT_ORDERS)
    assert parsed.refused is not None
    assert "not UTF-8" in parsed.refused


def test_nadra_reconciliation_rows() -> None:
    fmt = InboundFormat("birth_registration")
    parsed = parse_file(
        b"case_code,match_status,registration_number\r\n"
        b"cp1.nadra.1.aa,match,1234567890123\r\n"
        b"cp1.nadra.1.bb,match,\r\n"
        b"cp1.nadra.1.cc,multiple,\r\n"
        b"cp1.nadra.1.dd,no_match,\r\n",
        fmt,
        resolve_case_code={
            "cp1.nadra.1.aa": "ref-a",
            "cp1.nadra.1.bb": "ref-b",
            "cp1.nadra.1.cc": "ref-c",
        }.get,
    )
    assert [(u.referral_key, u.status, u.external_ref) for u in parsed.updates] == [
        ("ref-a", COMPLETED, "1234567890123"),
        ("ref-c", IN_PROGRESS, None),
    ]
    assert [(r.row, r.field) for r in parsed.rejects] == [
        (3, "registration_number"),  # a match must say which registration
        (5, "case_code"),  # no referral the adapter sent has this case code
    ]


def test_case_code_alone_is_rejected_without_a_resolver() -> None:
    parsed = parse_file(
        b"case_code,match_status\r\ncp1.nadra.1.aa,no_match\r\n",
        InboundFormat("birth_registration"),
    )
    assert [(r.row, r.field) for r in parsed.rejects] == [(2, "referral_key")]


def test_an_unknown_record_type_or_field_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="record_type 'fir_link' is unknown"):
        InboundFormat("fir_link")
    with pytest.raises(ConfigError, match="unknown field"):
        InboundFormat("court_order", columns={"Name": "child_name"})


# --- the format ------------------------------------------------------------------------------

URDU = st.sampled_from(["عائشہ بی بی", "محمد علی، پشاور", 'کہا "نہیں"', "سطر\r\nدوسری", "ٹ"])
TEXT = st.one_of(URDU, st.text(st.characters(blacklist_categories=("Cs",))))


@given(st.dictionaries(TEXT.filter(bool), TEXT, min_size=1, max_size=6), st.integers(1, 3))
def test_csv_round_trips_any_unicode_losslessly(row: dict[str, str], copies: int) -> None:
    rows = [row] * copies
    assert read_csv(write_csv(rows)) == rows


@given(
    st.dictionaries(
        st.sampled_from(["referral_key", "note", "district"]),
        st.one_of(TEXT, st.none(), st.booleans(), st.integers(), st.lists(TEXT, max_size=3)),
        min_size=1,
    )
)
def test_a_document_is_read_back_as_the_row_it_was_flattened_to(body: dict[str, object]) -> None:
    assert read_csv(document_csv({"child": body, "kind": "referral"})) == [
        flatten_document({"child": body, "kind": "referral"})
    ]


def test_every_written_file_starts_with_the_byte_order_mark_excel_needs() -> None:
    data = write_csv([{"name": "عائشہ"}])
    assert data.startswith(b"\xef\xbb\xbf")
    assert hashlib.sha256(data).hexdigest() in sha256_sidecar("x.csv", data).decode()
