"""The file connector's outbound side against a real OpenSSH sftp server on 127.0.0.1
(``tests/support/sftp_server.py``): idempotent names, ``.part`` → rename, checksum sidecars, and
the host-key check (departments.md §6–§7)."""

from __future__ import annotations

import hashlib
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from adapter.departments.csv_import import read_csv, verify_sidecar
from adapter.departments.files import FileConnector, flatten_document
from adapter.errors import Fatal, MappingError, Retryable
from tests.support.servers import free_port
from tests.support.sftp_server import (
    SftpServer,
    new_client_key,
    other_host_key,
)

COURT_ORDER_REQUEST = {
    "referral_key": "7d9f8c3e-0b1a-4c55-9a51-2f0f1d1f0a01",
    "case_code": "cp1.courts.1.9b2e",
    "purpose": "court_order",
    "child": {"sex": "female", "birth_year": 2013, "district": "Peshawar"},
    "protection_concerns": ["neglect", "child_labour"],
    "urgent": True,
    "note": 'عائشہ، "ضلع" پشاور\nsecond line',
}


@pytest.fixture
def connector(sftp: SftpServer) -> Iterator[FileConnector]:
    files = FileConnector("courts", sftp=sftp.settings(), timeout=5)
    try:
        yield files
    finally:
        files.close()


def outbound(sftp: SftpServer) -> list[str]:
    return sorted(p.name for p in (sftp.root / "to_department").iterdir())


def test_the_same_message_sent_twice_makes_one_file(
    connector: FileConnector, sftp: SftpServer
) -> None:
    key = str(uuid.uuid4())
    connector.deliver("referral", COURT_ORDER_REQUEST, idempotency_key=key)
    connector.deliver("referral", COURT_ORDER_REQUEST, idempotency_key=key)

    name = f"courts-referral-{key}.csv"
    assert outbound(sftp) == [name, f"{name}.sha256"]  # no second file, no .part left over


def test_the_file_holds_the_document_as_one_row_and_its_sidecar_verifies(
    connector: FileConnector, sftp: SftpServer
) -> None:
    connector.deliver("referral", COURT_ORDER_REQUEST, idempotency_key="k-1")

    data = (sftp.root / "to_department" / "courts-referral-k-1.csv").read_bytes()
    sidecar = (sftp.root / "to_department" / "courts-referral-k-1.csv.sha256").read_bytes()
    assert verify_sidecar(data, sidecar) == (True, "checksum verified")
    # sha256sum format, so `sha256sum -c` works on the department's side too.
    assert sidecar.decode() == f"{hashlib.sha256(data).hexdigest()}  courts-referral-k-1.csv\n"
    [row] = read_csv(data)
    assert row == flatten_document(COURT_ORDER_REQUEST)
    assert row["child.sex"] == "female"  # nested objects become dotted columns
    assert row["protection_concerns"] == '["neglect","child_labour"]'  # lists are JSON text
    assert row["urgent"] == "true"
    assert row["note"] == COURT_ORDER_REQUEST["note"]  # Urdu, quotes, comma, newline intact


def test_a_reader_never_sees_a_partial_file_under_its_final_name(
    connector: FileConnector, sftp: SftpServer
) -> None:
    # Big enough that each upload takes several SFTP writes.
    document = {**COURT_ORDER_REQUEST, "note": "ب" * 400_000}
    directory = sftp.root / "to_department"
    seen: dict[str, bool] = {}
    done = threading.Event()

    def reader() -> None:
        # What a department's import job does: take *.csv only, verify against the sidecar.
        while not done.is_set():
            for path in directory.glob("*.csv"):
                try:
                    data = path.read_bytes()
                    sidecar = Path(f"{path}.sha256").read_bytes()
                except FileNotFoundError:
                    continue
                seen[path.name] = verify_sidecar(data, sidecar)[0] and seen.get(path.name, True)

    thread = threading.Thread(target=reader)
    thread.start()
    try:
        for number in range(12):
            connector.deliver("referral", document, idempotency_key=f"big-{number}")
    finally:
        done.set()
        thread.join()

    assert seen, "the reader never saw a file"
    assert all(seen.values()), "a reader saw an incomplete file under its final name"
    assert not [n for n in outbound(sftp) if n.endswith(".part")]


def test_a_wrong_host_key_is_fatal_and_nothing_is_sent(sftp: SftpServer, tmp_path: Path) -> None:
    known_hosts = sftp.write_known_hosts(tmp_path / "known_hosts", other_host_key())
    files = FileConnector("courts", sftp=sftp.settings(known_hosts_file=known_hosts), timeout=5)
    try:
        with pytest.raises(Fatal, match="host key does not match known_hosts_file"):
            files.deliver("referral", COURT_ORDER_REQUEST, idempotency_key="k-2")
    finally:
        files.close()
    assert outbound(sftp) == []


def test_an_unknown_host_is_never_trusted_on_first_use(sftp: SftpServer, tmp_path: Path) -> None:
    empty = tmp_path / "known_hosts"
    empty.write_text("")
    files = FileConnector("courts", sftp=sftp.settings(known_hosts_file=empty), timeout=5)
    try:
        with pytest.raises(Fatal, match="not in known_hosts_file"):
            files.deliver("referral", COURT_ORDER_REQUEST, idempotency_key="k-3")
    finally:
        files.close()
    assert outbound(sftp) == []
    assert empty.read_text() == ""  # nothing was learned either


def test_a_key_the_server_does_not_know_is_fatal(sftp: SftpServer, tmp_path: Path) -> None:
    other = new_client_key(tmp_path / "stranger_ed25519")
    files = FileConnector("courts", sftp=sftp.settings(private_key_file=other), timeout=5)
    try:
        with pytest.raises(Fatal, match="refused the key"):
            files.deliver("referral", COURT_ORDER_REQUEST, idempotency_key="k-4")
    finally:
        files.close()


def test_sftp_down_is_retryable(sftp: SftpServer) -> None:
    files = FileConnector("courts", sftp=sftp.settings(port=free_port()), timeout=5)
    try:
        with pytest.raises(Retryable, match="will retry"):
            files.deliver("referral", COURT_ORDER_REQUEST, idempotency_key="k-5")
    finally:
        files.close()


def test_a_missing_outbound_directory_is_fatal_and_names_the_setting(sftp: SftpServer) -> None:
    files = FileConnector("courts", sftp=sftp.settings(outbound_dir="outbox"), timeout=5)
    try:
        with pytest.raises(Fatal, match=r"\*_dir settings"):
            files.deliver("referral", COURT_ORDER_REQUEST, idempotency_key="k-6")
    finally:
        files.close()


def test_a_key_that_could_escape_the_directory_is_refused(connector: FileConnector) -> None:
    with pytest.raises(Fatal, match="file name"):
        connector.deliver("referral", COURT_ORDER_REQUEST, idempotency_key="../../etc/x")


def test_a_field_without_a_csv_form_is_a_mapping_error(connector: FileConnector) -> None:
    with pytest.raises(MappingError, match="'blob' holds a bytes"):
        connector.deliver("referral", {"blob": b"\x00"}, idempotency_key="k-7")


def test_check_signs_in_and_lists_without_writing(
    sftp: SftpServer, connector: FileConnector
) -> None:
    """`cpims-adapter check`: a login and a listing of both folders, nothing written."""
    (sftp.root / "from_department" / "answer.csv").write_text("x\n")
    said = connector.check()
    assert said.startswith("SFTP ") and "signed in" in said
    assert "listed to_department/ (0 files)" in said and "listed from_department/ (1 files)" in said
    assert outbound(sftp) == []
    down = FileConnector("courts", sftp=sftp.settings(port=free_port()), timeout=5)
    try:
        with pytest.raises(Retryable):
            down.check()
    finally:
        down.close()
    missing = FileConnector("courts", sftp=sftp.settings(outbound_dir="outbox"), timeout=5)
    try:
        with pytest.raises(Fatal, match="outbox"):
            missing.check()
    finally:
        missing.close()
