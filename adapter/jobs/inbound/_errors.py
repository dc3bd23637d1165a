"""The inbound service's refusals: data the API maps to HTTP statuses (adapter/api/errors.py)."""

from __future__ import annotations

from adapter.errors import AdapterError


class InboundError(AdapterError):
    """A message that cannot be accepted. ``code`` is stable (clients key on it); ``field``
    names the part of the message at fault. Messages never carry a value from the request."""

    code = "inbound_refused"

    def __init__(self, message: str, *, field: str | None = None) -> None:
        super().__init__(message)
        self.field = field


class MessageIdReused(InboundError):
    """The message id was used before by this department for a different message."""

    code = "message_id_reused"


class CaseCodeRefused(InboundError):
    """The case code is not this department's (or is forged, or under a retired key)."""

    code = "case_code_refused"


class UnknownReferral(InboundError):
    """No referral with this key was sent to this department."""

    code = "unknown_referral"


class ReferralClosed(InboundError):
    """The referral is finished (or not one the department can respond to)."""

    code = "referral_closed"


class UnknownDistrict(InboundError):
    """The child's district is not a location code Primero knows."""

    code = "unknown_district"
