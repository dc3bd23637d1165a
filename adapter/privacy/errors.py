"""Errors of the privacy layer, each a subclass of the one hierarchy in ``adapter.errors``.

Like every adapter error, their messages name the field, file or key and the fix, never a value
taken from a case, a policy file or a secret.
"""

from __future__ import annotations

from adapter.errors import ConfigError, MappingError, PolicyViolation


class PolicyFileError(ConfigError):
    """A disclosure-policy file in ``config/policy/`` is missing, malformed or inconsistent."""


class CodeRefused(PolicyViolation):
    """A presented case code was refused: wrong department, forged, or under a retired or
    unknown key version. ``kind`` is the security-event kind recorded for it."""

    def __init__(self, message: str, *, kind: str, department: str | None = None) -> None:
        super().__init__(message)
        self.kind = kind
        self.department = department


class OverrideRejected(PolicyViolation):
    """A consent override or S3 approval does not meet privacy.md §6.3 (basis, legal reference,
    requester ≠ approver, expiry ≤ 72 h)."""


class IdentifierError(MappingError, ValueError):
    """An identifier (CNIC, B-Form/CRC, phone number) is malformed. The message says what is
    wrong with its shape, never the value."""
