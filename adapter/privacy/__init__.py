"""Privacy by construction: disclosure policy, consent gate, case codes, keys, audit, redaction.

The sync engine's calls, in the order data flows (STYLE.md: Primero → policy → pseudonymise →
map → outbox):

* :class:`DisclosurePolicy` ``.decide(case, department, purpose, stage, ...)`` → :class:`Disclosure`
  (pure), or :class:`DisclosureGate` ``.disclose(...)``, which also records and audits it;
* :class:`KeyRing` (``init`` / ``open`` / ``rotate`` / ``status``, ``encrypt_payload``), and
  :class:`CaseCodes` (resolve a code a department presents; short printed codes);
* :class:`AuditLog` ``.verify()``; :class:`RedactingFilter` on every log handler;
* identifier and name normalisation in :mod:`adapter.privacy.normalise`.

privacy.md §6 is the design; each module's docstring says where it departs from it and why.
"""

from adapter.config.privacy import PrivacySettings, new_kek
from adapter.errors import KeyringError
from adapter.privacy.audit import AuditAnchor, AuditLog, AuditReport
from adapter.privacy.codes import CaseCodes, new_short_code, normalise_short_code
from adapter.privacy.consent import (
    ConsentDecision,
    ConsentOverride,
    OverrideBasis,
    check_consent,
)
from adapter.privacy.deletion import (
    DeletionRequest,
    mark_deletion_delivered,
    pending_deletion_requests,
    queue_deletion_request,
)
from adapter.privacy.disclosure import CaseCoder, Disclosure, DisclosurePolicy, Stage
from adapter.privacy.errors import (
    CodeRefused,
    IdentifierError,
    OverrideRejected,
    PolicyFileError,
)
from adapter.privacy.events import SecurityEvent, SecurityEventKind, list_security_events
from adapter.privacy.explain import Explanation, FieldExplanation, explain
from adapter.privacy.gate import DisclosureGate
from adapter.privacy.keys import KeyRing, KeyStatus, Rotation
from adapter.privacy.log_filter import RedactingFilter, redact, sensitive_values
from adapter.privacy.normalise import (
    Phone,
    ScriptProfile,
    format_cnic,
    is_mixed_script,
    mask_cnic,
    name_key,
    normalise_cnic,
    normalise_crc,
    normalise_phone,
    script_profile,
)
from adapter.privacy.policy import PolicySet
from adapter.privacy.probe import Gazetteer, Population
from adapter.privacy.sensitivity import Sensitivity, classify

__all__ = [
    "AuditAnchor",
    "AuditLog",
    "AuditReport",
    "CaseCoder",
    "CaseCodes",
    "CodeRefused",
    "ConsentDecision",
    "ConsentOverride",
    "DeletionRequest",
    "Disclosure",
    "DisclosureGate",
    "DisclosurePolicy",
    "Explanation",
    "FieldExplanation",
    "Gazetteer",
    "IdentifierError",
    "KeyRing",
    "KeyStatus",
    "KeyringError",
    "OverrideBasis",
    "OverrideRejected",
    "Phone",
    "PolicyFileError",
    "PolicySet",
    "Population",
    "PrivacySettings",
    "RedactingFilter",
    "Rotation",
    "ScriptProfile",
    "SecurityEvent",
    "SecurityEventKind",
    "Sensitivity",
    "Stage",
    "check_consent",
    "classify",
    "explain",
    "format_cnic",
    "is_mixed_script",
    "list_security_events",
    "mark_deletion_delivered",
    "mask_cnic",
    "name_key",
    "new_kek",
    "new_short_code",
    "normalise_cnic",
    "normalise_crc",
    "normalise_phone",
    "normalise_short_code",
    "pending_deletion_requests",
    "queue_deletion_request",
    "redact",
    "script_profile",
    "sensitive_values",
]
