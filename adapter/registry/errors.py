"""Errors of the offender registry, each under the one hierarchy of ``adapter.errors``.

Messages name the field or reference and the fix, never a CNIC, a name or a date of birth: an
error that echoed an identifier would rebuild the NADRA SMS oracle (privacy.md §3).
"""

from __future__ import annotations

from adapter.errors import AdapterError, PolicyViolation


class RegistryError(AdapterError):
    """Base class of every registry error."""


class ImportRefused(RegistryError):
    """A registry import was refused; nothing was written. ``problems`` name lines and
    columns only."""

    def __init__(self, message: str, *, problems: tuple[str, ...] = ()) -> None:
        super().__init__(message)
        self.problems = problems


class SignatureInvalid(ImportRefused):
    """The detached signature does not verify with the named officer's public key."""


class RequestRejected(RegistryError, PolicyViolation):
    """A check or registration request was malformed or broke a rule; ``reason`` is a stable
    code (``invalid_request``, ``consent_reused``, ``unknown_purpose`` …)."""

    def __init__(self, message: str, *, reason: str) -> None:
        super().__init__(message)
        self.reason = reason


class ConsentRefUsed(RequestRejected):
    """The consent reference was used before: each one is single-use (privacy.md §6.6.7)."""


class AccessDenied(RegistryError):
    """The caller may not use the registry now."""


class AuthenticationFailed(AccessDenied):
    """No establishment holds this API key."""


class EstablishmentLocked(AccessDenied):
    """The establishment is locked after an anomaly; a registry officer must unlock it."""


class QuotaExceeded(AccessDenied):
    """The establishment's daily or monthly quota is used up; ``retry_after`` in seconds."""

    def __init__(self, message: str, *, retry_after: int) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class UnknownReference(RegistryError):
    """No check, entry, appeal, worker or establishment has this reference (or it belongs to
    another establishment: the two are never told apart)."""


class InvalidState(RegistryError):
    """The action does not apply in the record's current state (e.g. resolving a check twice)."""
