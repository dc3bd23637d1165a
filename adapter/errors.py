"""The one exception hierarchy of cpims-adapter.

Catch the level you care about: ``AdapterError`` for everything, ``PrimeroError`` for anything
Primero said or failed to say, ``DestinationError`` for a department system.

Messages name the field, the problem and the fix. They never carry personal data: no names,
identifiers, query strings or request/response bodies — only HTTP methods, resource paths with
record UUIDs, status codes, field *names* and Primero's message keys.
"""

from __future__ import annotations


class AdapterError(Exception):
    """Base class of every error cpims-adapter raises on purpose."""


class ConfigError(AdapterError):
    """The configuration is missing, malformed or names an unknown key."""


class KeyringError(ConfigError):
    """The key-encryption key is missing or wrong, or the keys were never initialised."""


class StateError(AdapterError):
    """The state store cannot be opened, migrated or written."""


class StateStoreUnavailable(StateError):
    """The state store cannot be reached: the database is down or restarting, or the network
    to it is cut. Transient: the service waits and retries by itself, and a run it cut off is
    recorded as ``interrupted`` (not failed, not abandoned) once the store is back."""


class LeaseHeld(StateError):
    """Another process holds the lease for this job; this run must not start."""


# --- Primero -------------------------------------------------------------------------------


class PrimeroError(AdapterError):
    """Primero answered with an error, or could not be reached.

    ``status`` is the HTTP status (None when no response arrived), ``method`` and ``resource``
    locate the call (the path only: never the query string, which may hold search terms).
    """

    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        method: str | None = None,
        resource: str | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.method = method
        self.resource = resource


class PrimeroAuthError(PrimeroError):
    """Primero refused the credentials (401). Never retried more than once: six failures lock
    the account for 30 minutes (primero-api.md §2)."""


class PrimeroLockedOut(PrimeroAuthError):
    """Primero reports the integration account as locked."""


class PrimeroForbidden(PrimeroError):
    """The integration role lacks a permission (403)."""


class PrimeroNotPermitted(PrimeroError):
    """A write-back needs a grant the integration role lacks: Primero refused it (403) or
    answered 200 without storing the form's fields. ``grant`` names the Primero form, field or
    permission and the role change an administrator makes (configuration names only, never a
    value). The message waits for the grant: retried, never a dead letter."""

    def __init__(
        self,
        message: str,
        *,
        grant: str,
        status: int | None = None,
        method: str | None = None,
        resource: str | None = None,
    ) -> None:
        super().__init__(message, status=status, method=method, resource=resource)
        self.grant = grant


class PrimeroNotFound(PrimeroError):
    """The record or resource does not exist, or is outside the account's scope (404)."""


class UnknownCase(PrimeroNotFound):
    """No case visible to the adapter's account has the id, short id or case_id_display given,
    or more than one has it (``ambiguous``). The message never repeats the reference."""

    def __init__(self, message: str, *, ambiguous: bool = False, **kw: object) -> None:
        super().__init__(message, **kw)  # type: ignore[arg-type]
        self.ambiguous = ambiguous


class InvalidCaseReference(AdapterError, ValueError):
    """What was given as a case is neither a record UUID nor a short id / case_id_display: a
    usage error (a name, a CNIC, a typo). The message never repeats it: it may be personal data."""


class PrimeroConflict(PrimeroError):
    """A record with this id already exists (409)."""


class PrimeroValidationError(PrimeroError):
    """Primero rejected the payload (422). ``fields`` lists the offending field names."""

    def __init__(self, message: str, *, fields: list[str] | None = None, **kw: object) -> None:
        super().__init__(message, **kw)  # type: ignore[arg-type]
        self.fields = fields or []


class PrimeroRateLimited(PrimeroError):
    """Primero throttled the call (429). ``retry_after`` is in seconds when Primero said."""

    def __init__(self, message: str, *, retry_after: float | None = None, **kw: object) -> None:
        super().__init__(message, **kw)  # type: ignore[arg-type]
        self.retry_after = retry_after


class PrimeroUnavailable(PrimeroError):
    """Primero kept answering 5xx (or 503 during a configuration update) after the retries."""

    def __init__(self, message: str, *, retry_after: float | None = None, **kw: object) -> None:
        super().__init__(message, **kw)  # type: ignore[arg-type]
        self.retry_after = retry_after


class PrimeroTimeout(PrimeroError):
    """Primero did not answer within the configured timeout, or the connection failed."""


class PrimeroUnreachable(PrimeroTimeout):
    """Nothing could be reached at primero.url before this client ever got an answer: the
    connection was refused or the host name does not resolve. Not retried: it needs a fix
    (the URL, or starting Primero), and the next scheduled run tries again."""


class PrimeroProtocolError(PrimeroError):
    """Primero's answer did not have the expected shape (malformed JSON, missing keys)."""


class PrimeroNoOp(PrimeroError):
    """Primero answered 200 but did not apply the change (e.g. a referral status transition that
    is not allowed from the current status; primero-api.md §5.3)."""


class PrimeroVersionError(PrimeroError):
    """The Primero server is older than the adapter supports."""


# --- Departments, policy, mapping ----------------------------------------------------------


class DestinationError(AdapterError):
    """A department system failed to take a delivery."""


class Retryable(DestinationError):
    """A transient failure: try again later."""


class Unreachable(Retryable):
    """No connection to the department's server (refused, no route, DNS, TLS, connect
    timeout): its address, the network or the server itself needs a look."""


class RateLimited(Retryable):
    """The destination asked us to slow down; ``retry_after`` seconds when it said."""

    def __init__(self, message: str, *, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class Fatal(DestinationError):
    """A permanent failure: retrying the same payload cannot succeed."""


class PolicyViolation(AdapterError):
    """A disclosure would break the privacy policy (consent, sensitivity, allow-list)."""


class MappingError(AdapterError):
    """A record cannot be mapped to the destination's format."""
