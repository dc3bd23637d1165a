"""E-mail, the file connector's last resort, against a real SMTP server on 127.0.0.1
(aiosmtpd, ``tests/support/smtp_sink.py``; departments.md §6–§7)."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from pathlib import Path

import pytest

from adapter.config import EmailSettings, SftpSettings
from adapter.departments.csv_import import read_csv
from adapter.departments.files import FileConnector, flatten_document
from adapter.errors import Fatal, Retryable
from tests.support.servers import free_port
from tests.support.sftp_server import new_client_key
from tests.support.smtp_sink import SmtpSink, start_smtp_sink

DOCUMENT = {
    "referral_key": "3c1b7e8a-5f0d-4f7e-9d8c-0a1b2c3d4e5f",
    "case_code": "cp1.courts.1.77aa",
    "child": {"sex": "male", "district": "ملتان"},
}
KEY = "0b8e2f7c-9d1a-5e3b-8c4d-6f7a8b9c0d1e"
NAME = f"courts-cancel-{KEY}.csv"


@pytest.fixture
def sink() -> Iterator[SmtpSink]:
    server = start_smtp_sink()
    try:
        yield server
    finally:
        server.stop()


def email_settings(sink: SmtpSink, **changes: object) -> EmailSettings:
    values: dict[str, object] = {
        "smtp_host": "127.0.0.1",
        "smtp_port": sink.port,
        "starttls": False,  # a loopback sink; production keeps the default (True)
        "sender": "cpims-adapter@cpu.example.gov.pk",
        "recipients": ["registrar@courts.example.gov.pk"],
    }
    values.update(changes)
    return EmailSettings.model_validate(values)


@pytest.fixture
def sftp_down(tmp_path: Path) -> SftpSettings:
    """Valid SFTP settings whose server is down (nothing listens on the port)."""
    known_hosts = tmp_path / "known_hosts"
    known_hosts.write_text("")
    return SftpSettings(
        host="127.0.0.1",
        port=free_port(),
        username="cpims",
        private_key_file=new_client_key(tmp_path / "client_ed25519"),
        known_hosts_file=known_hosts,
    )


def test_sftp_down_falls_back_to_email_with_the_file_attached(
    sink: SmtpSink, sftp_down: SftpSettings
) -> None:
    files = FileConnector(
        "courts", sftp=sftp_down, email=email_settings(sink), email_kinds={"cancel"}, timeout=5
    )
    try:
        files.deliver("cancel", DOCUMENT, idempotency_key=KEY)
    finally:
        files.close()

    [received] = sink.messages
    assert received.rcpt_tos == ["registrar@courts.example.gov.pk"]
    [attachment] = list(received.message.iter_attachments())
    assert attachment.get_filename() == NAME  # the same idempotent name as over SFTP
    assert attachment.get_content_type() == "text/csv"
    data = attachment.get_payload(decode=True)
    assert isinstance(data, bytes)
    assert read_csv(data) == [flatten_document(DOCUMENT)]
    digest = hashlib.sha256(data).hexdigest()
    body = received.message.get_body(preferencelist=("plain",))
    assert body is not None
    assert f"{digest}  {NAME}" in body.get_content()  # the checksum in the body
    # The subject names the file only: nothing about the child travels in the headers.
    assert str(received.message["Subject"]).strip() == f"cpims-adapter file {NAME}"


def test_a_duplicate_email_carries_the_same_file_name_and_message_id(sink: SmtpSink) -> None:
    # E-mail cannot be exactly-once: a resend after a lost answer must be recognisable.
    files = FileConnector("courts", email=email_settings(sink), timeout=5)
    files.deliver("cancel", DOCUMENT, idempotency_key=KEY)
    files.deliver("cancel", DOCUMENT, idempotency_key=KEY)

    first, second = sink.messages
    assert first.message["Message-ID"] == second.message["Message-ID"]
    names = [next(m.message.iter_attachments()).get_filename() for m in (first, second)]
    assert names == [NAME, NAME]


def test_email_is_not_used_for_kinds_the_mapping_does_not_allow(
    sink: SmtpSink, sftp_down: SftpSettings
) -> None:
    files = FileConnector(
        "courts", sftp=sftp_down, email=email_settings(sink), email_kinds={"cancel"}, timeout=5
    )
    with pytest.raises(Retryable):
        files.deliver("referral", DOCUMENT, idempotency_key=KEY)
    assert sink.messages == []


def test_starttls_configured_but_not_offered_is_fatal_and_nothing_is_sent(sink: SmtpSink) -> None:
    files = FileConnector("courts", email=email_settings(sink, starttls=True), timeout=5)
    with pytest.raises(Fatal, match="does not offer STARTTLS"):
        files.deliver("cancel", DOCUMENT, idempotency_key=KEY)
    assert sink.messages == []


def test_smtp_down_is_retryable() -> None:
    settings = EmailSettings(
        smtp_host="127.0.0.1",
        smtp_port=free_port(),
        starttls=False,
        sender="cpims-adapter@cpu.example.gov.pk",
        recipients=["registrar@courts.example.gov.pk"],
    )
    files = FileConnector("courts", email=settings, timeout=5)
    with pytest.raises(Retryable, match="will retry"):
        files.deliver("cancel", DOCUMENT, idempotency_key=KEY)


def test_check_reaches_the_mail_server_and_sends_nothing(sink: SmtpSink) -> None:
    files = FileConnector("courts", email=email_settings(sink), timeout=5)
    assert files.check() == f"email 127.0.0.1:{sink.port}: connected"
    assert sink.messages == []
    refusing = FileConnector("courts", email=email_settings(sink, starttls=True), timeout=5)
    with pytest.raises(Fatal, match="does not offer STARTTLS"):
        refusing.check()
