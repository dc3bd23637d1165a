"""The Primero v2 client (primero-api.md): authentication without lock-outs, retries, incremental
listing that never skips a case, cases, referrals, write-back and configuration.

    from adapter.primero import PrimeroClient

    with PrimeroClient.from_settings(settings.primero) as primero:
        primero.check_version()
        for page in primero.iter_case_pages(cursor, signpost, fields=allow_list):
            ...  # checkpoint page.checkpoint after handling page.records

Errors are the classes of :mod:`adapter.errors` (``PrimeroError`` and its subclasses).
"""

from adapter.primero._paging import format_bound
from adapter.primero._referrals import referral_payload
from adapter.primero._versions import parse_version
from adapter.primero.client import PrimeroClient
from adapter.primero.models import (
    Capabilities,
    Capability,
    CasePage,
    CreateResult,
    HealthStatus,
    Record,
    ReferralOutcome,
    UpdateResult,
)

__all__ = [
    "Capabilities",
    "Capability",
    "CasePage",
    "CreateResult",
    "HealthStatus",
    "PrimeroClient",
    "Record",
    "ReferralOutcome",
    "UpdateResult",
    "format_bound",
    "parse_version",
    "referral_payload",
]
