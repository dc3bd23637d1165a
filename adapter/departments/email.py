"""E-mail, the last-resort transport of a file drop (departments.md §6–§7).

One message per file: the CSV as an attachment under its idempotent file name, the SHA-256 in
the body (a ``sha256sum`` line), and a ``Message-ID`` made from the file name.

E-mail cannot be made exactly-once: when the server accepted a message but the connection
dropped before its answer reached us, the outbox sends it again. A duplicate therefore carries
the same file name, checksum and Message-ID, so the receiver (or its mail system, which often
drops a repeated Message-ID) keeps one file per name and drops the rest.

Failures are classified for the outbox: an unreachable server, a dropped connection or a 4xx
answer is ``Retryable``; a 5xx refusal, refused credentials, or a server that does not offer
STARTTLS when ``starttls`` is set is ``Fatal`` — a referral is never sent in clear text because
TLS was unavailable.
"""

from __future__ import annotations

import logging
from email.message import EmailMessage
from email.utils import formatdate

from adapter.config import EmailSettings
from adapter.errors import Fatal
from adapter.smtp import SmtpServer

logger = logging.getLogger("adapter.departments")


class EmailDrop:
    """Sends files to the department's mailbox over SMTP (STARTTLS when configured)."""

    def __init__(
        self, settings: EmailSettings, *, department: str = "*", timeout: float = 30.0
    ) -> None:
        if not settings.recipients:
            raise Fatal("email: recipients is empty; list the department's mailbox.")
        self.settings = settings
        self.department = department
        self.timeout = timeout

    @property
    def where(self) -> str:
        return f"{self.settings.smtp_host}:{self.settings.smtp_port}"

    def message(self, name: str, data: bytes, sha256: str) -> EmailMessage:
        """The message carrying one file; the same file always makes the same message."""
        settings = self.settings
        message = EmailMessage()
        message["From"] = settings.sender
        message["To"] = ", ".join(settings.recipients)
        # The subject and headers carry only the file name (department, kind and an opaque
        # key): never anything about the child.
        message["Subject"] = f"cpims-adapter file {name}"
        message["Date"] = formatdate(usegmt=True)
        domain = settings.sender.rpartition("@")[2] or "cpims-adapter.invalid"
        message["Message-ID"] = f"<{name}@{domain}>"
        message["X-CPIMS-File"] = name
        message.set_content(
            f"{sha256}  {name}\n\n"
            "The line above is the SHA-256 of the attached file (sha256sum format).\n"
            "This file was sent by e-mail because the SFTP drop could not be used. The same file\n"
            "may arrive more than once: keep one file per file name and drop the others.\n"
        )
        message.add_attachment(data, maintype="text", subtype="csv", filename=name)
        return message

    def server(self) -> SmtpServer:
        settings = self.settings
        return SmtpServer(
            settings.smtp_host,
            settings.smtp_port,
            settings.starttls,
            settings.username,
            settings.secret(self.department),
        )

    def send_file(self, name: str, data: bytes, sha256: str) -> None:
        """Send one file; raises ``Retryable`` or ``Fatal``."""
        settings = self.settings
        refused = self.server().send(
            self.message(name, data, sha256),
            settings.sender,
            list(settings.recipients),
            timeout=self.timeout,
        )
        if refused:
            # Some recipients took it: a retry would duplicate it for them, so report and go on.
            logger.warning(
                "email: some recipients refused a file",
                extra={"smtp_host": self.where, "refused": len(refused)},
            )
        logger.info("file sent by email", extra={"smtp_host": self.where, "file": name})
