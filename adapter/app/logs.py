"""Logging as every command sets it up: adapter.logs' handler, with the privacy layer's
redacting filter on it (never personal data in a log line)."""

from __future__ import annotations

from adapter import logs
from adapter.privacy import RedactingFilter


def configure_logging(level: str = "INFO", fmt: str = "text") -> None:
    """Send adapter logs to stderr (stdout is for command output), redacted."""
    logs.configure_logging(level, fmt, filters=[RedactingFilter()])
