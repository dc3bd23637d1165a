"""The offender registry (issue 6; privacy.md §3, §6.6): entries from court orders and signed
imports, and a minimal, audited, abuse-resistant check for establishments recruiting for work
with children.

* :class:`Registry` is the library API (``open``, ``import_signed_csv``, ``ingest_conviction``,
  ``check``, ``review_queue``/``resolve``, ``subject_access``, ``appeal``, ``remove``,
  ``register_worker``, ``notifications``);
* :mod:`adapter.registry.matching` holds the pure name rules and the outcome table;
* :mod:`adapter.registry.api` builds the HTTP router (``build_router``) and a standalone app;
* :class:`RegistrySettings` is the ``[registry]`` configuration section.

A check answers CLEAR, PENDING_REVIEW or DO_NOT_ENGAGE and nothing else: never a name, an
offence or whether a CNIC is known (the NADRA SMS anti-pattern, privacy.md §3).
"""

from adapter.config.registry import RegistrySettings
from adapter.registry.errors import (
    AccessDenied,
    AuthenticationFailed,
    ConsentRefUsed,
    EstablishmentLocked,
    ImportRefused,
    InvalidState,
    QuotaExceeded,
    RegistryError,
    RequestRejected,
    SignatureInvalid,
    UnknownReference,
)
from adapter.registry.ingest import CSV_COLUMNS, file_sha256, sign_file
from adapter.registry.matching import Outcome
from adapter.registry.models import (
    AppealItem,
    CheckAnswer,
    CheckRecord,
    CheckRequest,
    ConvictionOrder,
    EntryStatus,
    Establishment,
    ImportResult,
    IngestResult,
    Notification,
    RegistryEventKind,
    ReviewDetail,
    ReviewItem,
    SubjectAccessRow,
    WorkerRegistration,
)
from adapter.registry.registry import Registry

__all__ = [
    "CSV_COLUMNS",
    "AccessDenied",
    "AppealItem",
    "AuthenticationFailed",
    "CheckAnswer",
    "CheckRecord",
    "CheckRequest",
    "ConsentRefUsed",
    "ConvictionOrder",
    "EntryStatus",
    "Establishment",
    "EstablishmentLocked",
    "ImportRefused",
    "ImportResult",
    "IngestResult",
    "InvalidState",
    "Notification",
    "Outcome",
    "QuotaExceeded",
    "Registry",
    "RegistryError",
    "RegistryEventKind",
    "RegistrySettings",
    "RequestRejected",
    "ReviewDetail",
    "ReviewItem",
    "SignatureInvalid",
    "SubjectAccessRow",
    "UnknownReference",
    "WorkerRegistration",
    "file_sha256",
    "sign_file",
]
