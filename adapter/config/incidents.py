"""Settings of breach handling (privacy policy §3.4), mounted by ``adapter.config`` as
``[incidents]``."""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, SecretStr

from adapter.errors import ConfigError


class IncidentSettings(BaseModel):
    """Who is told about a suspected breach, by when, and through which mail server."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    # Policy §3.4: the data-protection officer is notified within 24 hours.
    notify_within_hours: int = Field(24, ge=1, le=72)
    # Addresses of the data-protection officer (and deputies) who receive incident notices.
    dpo_emails: list[str] = []
    # Per department, who receives the notice when an incident affects it (privacy.md §6.7
    # "notify the DPO and the affected departments"), e.g. {police = ["it@police.example"]}.
    department_contacts: dict[str, list[str]] = {}
    # The mail server that carries notices (flat keys: one [incidents] table to read).
    smtp_host: str = "127.0.0.1"
    smtp_port: int = Field(587, ge=1, le=65535)
    smtp_starttls: bool = True
    smtp_username: str | None = None
    smtp_password: SecretStr | None = None
    smtp_password_file: Path | None = None
    sender: str = "cpims-adapter@localhost"
    # A notice the server did not take is tried again after this many minutes (doubling, at
    # most 60), until it is sent: a breach notice is never given up.
    retry_minutes: int = Field(5, ge=1, le=60)

    def smtp_secret(self) -> str | None:
        """The SMTP password from ``smtp_password`` or ``smtp_password_file``."""
        if self.smtp_password is not None and self.smtp_password.get_secret_value():
            return self.smtp_password.get_secret_value()
        if self.smtp_password_file is None:
            return None
        try:
            return self.smtp_password_file.read_text(encoding="utf-8").strip()
        except OSError as exc:
            raise ConfigError(
                f"incidents.smtp_password_file: cannot read the secret file ({exc.strerror})."
            ) from None
