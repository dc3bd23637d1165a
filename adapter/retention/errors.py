"""Errors of retention, archives, statistics and backups."""

from __future__ import annotations

from adapter.errors import AdapterError, StateError


class RetentionError(AdapterError):
    """An archive cannot be written, opened or destroyed."""


class BackupError(StateError):
    """A backup or restore of the state store cannot be made (missing tool, wrong file,
    non-empty target, schema mismatch)."""
