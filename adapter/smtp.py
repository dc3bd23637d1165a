"""Sending one e-mail over SMTP, with failures sorted the way delivery needs them: ``Retryable``
(the server is away, busy, or refuses for now) or ``Fatal`` (a setting is wrong: retrying
cannot help). The e-mail fallback of file departments and the breach notices both use it.

Messages name the server and the setting to fix (``keys``), never an address or the content.
"""

from __future__ import annotations

import smtplib
import ssl
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from email.message import EmailMessage

from adapter.errors import Fatal, Retryable


@dataclass(frozen=True)
class SmtpServer:
    """Where and how to send. ``label`` starts every error ("email", "incidents mail");
    ``keys`` names the credential settings in messages (e.g. "incidents.smtp_username /
    smtp_password"), ``senders`` the sender/recipient settings."""

    host: str
    port: int
    starttls: bool
    username: str | None
    password: str | None
    label: str = "email"
    keys: str = "username/password"
    senders: str = "sender and recipients"

    @property
    def where(self) -> str:
        return f"{self.host}:{self.port}"

    def send(
        self, message: EmailMessage, sender: str, recipients: list[str], *, timeout: float = 30.0
    ) -> dict[str, tuple[int, bytes]]:
        """Send ``message``; returns the recipients the server refused while taking it for
        others (retrying would duplicate it for those who got it). Raises Retryable / Fatal."""
        with self._signed_in(timeout, "send") as smtp:
            return smtp.send_message(message, from_addr=sender, to_addrs=recipients)

    def check(self, *, timeout: float = 10.0) -> str:
        """Connect, STARTTLS and sign in as a send would, then NOOP; nothing is sent."""
        with self._signed_in(timeout, "reach") as smtp:
            smtp.noop()
        tls = "STARTTLS, " if self.starttls else ""
        return f"{self.label} {self.where}: {tls}{'signed in' if self.username else 'connected'}"

    @contextmanager
    def _signed_in(self, timeout: float, what: str) -> Iterator[smtplib.SMTP]:
        """An SMTP session after EHLO, STARTTLS and login; every failure as Retryable or Fatal."""
        prefix = f"{self.label} {self.where}"
        try:
            with smtplib.SMTP(self.host, self.port, timeout=timeout) as smtp:
                smtp.ehlo()
                if self.starttls:
                    smtp.starttls(context=ssl.create_default_context())
                    smtp.ehlo()
                if self.username:
                    smtp.login(self.username, self.password or "")
                yield smtp
        except smtplib.SMTPNotSupportedError:
            raise Fatal(
                f"{prefix}: the server does not offer STARTTLS; nothing was sent. Use a server "
                "with TLS (starttls = false only for a loopback relay)."
            ) from None
        except ssl.SSLCertVerificationError:
            raise Fatal(
                f"{prefix}: the server's TLS certificate did not verify; nothing was sent. Fix "
                "the certificate or the smtp_host name."
            ) from None
        except smtplib.SMTPAuthenticationError:
            raise Fatal(f"{prefix}: the server refused {self.keys}; fix the credentials.") from None
        except smtplib.SMTPRecipientsRefused as exc:
            codes = [code for code, _ in exc.recipients.values()]
            raise self._for_code("refused every recipient", min(codes, default=550)) from None
        except smtplib.SMTPResponseException as exc:
            raise self._for_code("refused the message", exc.smtp_code) from None
        except (OSError, smtplib.SMTPException) as exc:
            raise Retryable(
                f"{prefix}: could not {what} ({type(exc).__name__}); will retry."
            ) from None

    def _for_code(self, what: str, code: int) -> Retryable | Fatal:
        # SMTP: 4xx is a transient refusal (greylisting, full mailbox), 5xx a permanent one.
        prefix = f"{self.label} {self.where}"
        if 400 <= code < 500:
            return Retryable(f"{prefix}: the server {what} with {code}; will retry.")
        return Fatal(
            f"{prefix}: the server {what} with {code}; check {self.senders} with the mail "
            "administrator."
        )
